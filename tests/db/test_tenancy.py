"""Tenant scoping in the application: the acts_as_tenant contract on SQLAlchemy sessions.

Most checks run as the migrating role, which row-level security does not restrict, so what they
see is the application layer's filtering alone; the last ones run as `rayces_app` and show the
session declaring its tenant to PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, event, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from tests.db.tenant_rows import create_organization, create_tenant_rows

from rayces.schema import Appointment, Organization, Professional, Role, User
from rayces.tenancy import (
    ImmutableTenantError,
    NoTenantError,
    TenantMismatchError,
    current_tenant,
    require_tenant,
    scope_sessions,
    tenant_scope,
    without_tenant,
)


@dataclass(frozen=True)
class Tenants:
    a: int
    b: int
    rows: dict[int, dict[str, int]]


@pytest.fixture(scope="module")
def tenants(migrated_engine: Engine) -> Tenants:
    with migrated_engine.begin() as connection:
        a = create_organization(connection, "scope-a")
        b = create_organization(connection, "scope-b")
        rows = {a: create_tenant_rows(connection, a), b: create_tenant_rows(connection, b)}
    return Tenants(a, b, rows)


@pytest.fixture
def session(migrated_engine: Engine) -> Iterator[Session]:
    factory = scope_sessions(sessionmaker(migrated_engine))
    with factory() as session:
        yield session
        session.rollback()


def test_queries_see_only_the_current_tenant(session: Session, tenants: Tenants) -> None:
    with tenant_scope(tenants.a):
        roles = session.scalars(select(Role)).all()
    assert [(role.organization_id, role.id) for role in roles] == [
        (tenants.a, tenants.rows[tenants.a]["roles"])
    ]


def test_relationship_loads_are_scoped_too(session: Session, tenants: Tenants) -> None:
    with tenant_scope(tenants.b):
        organization = session.get(Organization, tenants.b)
        assert organization is not None
        assert {user.organization_id for user in organization.users} == {tenants.b}
        (appointment,) = session.scalars(select(Appointment)).all()
        assert appointment.professional.organization_id == tenants.b


def test_a_bulk_update_touches_only_the_current_tenant(session: Session, tenants: Tenants) -> None:
    with tenant_scope(tenants.a):
        result = session.execute(update(Role).values(description="scoped"))
    assert result.rowcount == 1  # type: ignore[attr-defined]
    with without_tenant():
        described = session.scalars(
            select(Role.organization_id).where(Role.description == "scoped")
        )
        assert described.all() == [tenants.a]


def test_no_tenant_raises_unless_explicitly_without(session: Session, tenants: Tenants) -> None:
    with pytest.raises(NoTenantError, match="no tenant declared"):
        session.scalars(select(Professional)).all()
    with without_tenant():
        organizations = {p.organization_id for p in session.scalars(select(Professional))}
    assert {tenants.a, tenants.b} <= organizations


def test_organizations_themselves_need_no_tenant(session: Session, tenants: Tenants) -> None:
    subdomains = session.scalars(select(Organization.subdomain)).all()
    assert {"scope-a", "scope-b"} <= set(subdomains)


def test_new_rows_get_the_current_tenant(session: Session, tenants: Tenants) -> None:
    with tenant_scope(tenants.a):
        role = Role(name="reception")
        session.add(role)
        session.flush()
    assert role.organization_id == tenants.a


def test_a_new_row_needs_a_tenant(session: Session) -> None:
    session.add(Role(name="orphan"))
    with pytest.raises(NoTenantError):
        session.flush()


def test_a_row_for_another_tenant_is_refused(session: Session, tenants: Tenants) -> None:
    with tenant_scope(tenants.a):
        session.add(Role(name="intruder", organization_id=tenants.b))
        with pytest.raises(TenantMismatchError, match=f"current tenant is {tenants.a}"):
            session.flush()


def test_changing_organization_id_is_refused(session: Session, tenants: Tenants) -> None:
    with without_tenant():
        role = session.get(Role, tenants.rows[tenants.a]["roles"])
        assert role is not None
        role.organization_id = tenants.b
        with pytest.raises(ImmutableTenantError, match="rows never change tenant"):
            session.flush()


def test_threads_keep_their_own_tenant() -> None:
    seen: dict[int, list[int | None]] = {}
    barrier = threading.Barrier(2)

    def work(tenant: int) -> None:
        with tenant_scope(tenant):
            barrier.wait()
            seen[tenant] = [current_tenant(), require_tenant()]

    threads = [threading.Thread(target=work, args=(tenant,)) for tenant in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {1: [1, 1], 2: [2, 2]}
    assert current_tenant() is None


def test_asyncio_tasks_keep_their_own_tenant() -> None:
    async def work(tenant: int) -> int:
        with tenant_scope(tenant):
            await asyncio.sleep(0)
            return require_tenant()

    async def both() -> list[int]:
        return list(await asyncio.gather(work(7), work(8)))

    assert asyncio.run(both()) == [7, 8]


@pytest.fixture
def application_session(migrated_engine: Engine) -> Iterator[Session]:
    """A scoped session whose connections run as `rayces_app` (RLS applies)."""
    engine = migrated_engine.execution_options()

    @event.listens_for(engine, "begin")
    def become_application(connection: object) -> None:
        connection.exec_driver_sql("SET LOCAL ROLE rayces_app")  # type: ignore[attr-defined]

    factory = scope_sessions(sessionmaker(engine))
    with factory() as session:
        yield session
        session.rollback()


def test_the_session_declares_its_tenant_to_postgresql(
    application_session: Session, tenants: Tenants
) -> None:
    with tenant_scope(tenants.b):
        users = application_session.scalars(select(User)).all()
        declared = application_session.scalar(text("SELECT public.current_organization_id()"))
        raw = application_session.execute(text("SELECT count(*), min(organization_id) FROM users"))
    assert [user.organization_id for user in users] == [tenants.b]
    assert declared == tenants.b
    # Hand-written SQL in the same session sees what RLS allows: tenant B only.
    assert raw.one() == (1, tenants.b)


def test_plain_sql_sees_a_tenant_set_after_the_transaction_began(
    application_session: Session, tenants: Tenants
) -> None:
    application_session.execute(text("SELECT 1"))  # the transaction begins with no tenant
    with tenant_scope(tenants.a):
        visible = application_session.execute(text("SELECT organization_id FROM roles")).all()
    assert visible == [(tenants.a,)]
