"""Row-level security: hand-written SQL as `rayces_app` cannot cross from one tenant to another.

Two organizations get one row in every tenant-owned table. Then, as the application role with
tenant A declared (`set_config('app.current_organization_id', A, true)`), every table is attacked
with plain SQL: read B's rows, update them, delete them, insert a row for B, and make an A row
reference B's row through each composite foreign key. The same runs with no tenant declared and
with a tenant id that does not exist. The migrating role (the table owner) sees everything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg.errors
import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from tests.db.tenant_rows import (
    TENANT_REFERENCES,
    TENANT_TABLES,
    create_organization,
    create_tenant_rows,
)

APPLICATION_ROLE = "rayces_app"
NONEXISTENT_TENANT = 987_654_321


@dataclass(frozen=True)
class Tenants:
    a: int
    b: int
    rows: dict[int, dict[str, int]]


@pytest.fixture(scope="module")
def tenants(migrated_engine: Engine) -> Tenants:
    with migrated_engine.begin() as connection:
        a = create_organization(connection, "tenant-a")
        b = create_organization(connection, "tenant-b")
        rows = {a: create_tenant_rows(connection, a), b: create_tenant_rows(connection, b)}
    return Tenants(a, b, rows)


@pytest.fixture
def owner(migrated_engine: Engine) -> Iterator[Connection]:
    with migrated_engine.connect() as connection:
        yield connection
        connection.rollback()


def as_application(connection: Connection, tenant: int | None) -> None:
    """Become `rayces_app` for this transaction, with `tenant` declared (or none)."""
    connection.execute(text(f"SET LOCAL ROLE {APPLICATION_ROLE}"))
    if tenant is not None:
        connection.execute(
            text("SELECT set_config('app.current_organization_id', :tenant, true)"),
            {"tenant": str(tenant)},
        )


def row_as_json(connection: Connection, table: str, row_id: int) -> dict[str, Any]:
    document = connection.scalar(
        text(f"SELECT to_jsonb(t) FROM {table} t WHERE id = :id"), {"id": row_id}
    )
    assert isinstance(document, dict)
    return document


def insert_json(connection: Connection, table: str, row: dict[str, Any]) -> None:
    connection.execute(
        text(
            f"INSERT INTO {table} SELECT * FROM jsonb_populate_record(NULL::{table}, "
            "CAST(:row AS jsonb))"
        ),
        {"row": json.dumps(row)},
    )


def sqlstate(error: DBAPIError) -> str | None:
    original = error.orig
    return original.sqlstate if isinstance(original, psycopg.Error) else None


TABLES = [pytest.param(table, id=table) for table in TENANT_TABLES]


def test_the_application_role_exists_without_login(owner: Connection) -> None:
    can_login = owner.scalar(
        text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :role"), {"role": APPLICATION_ROLE}
    )
    assert can_login is False


@pytest.mark.parametrize("table", TABLES)
def test_rls_is_enabled_with_one_policy(owner: Connection, table: str) -> None:
    enabled, policies = owner.execute(
        text(
            "SELECT c.relrowsecurity, (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)"
            " FROM pg_class c WHERE c.oid = CAST(:table AS regclass)"
        ),
        {"table": table},
    ).one()
    assert enabled is True
    assert policies == 1


@pytest.mark.parametrize("table", TABLES)
def test_read_sees_only_the_declared_tenant(
    owner: Connection, tenants: Tenants, table: str
) -> None:
    as_application(owner, tenants.a)
    visible = owner.execute(text(f"SELECT organization_id, id FROM {table}")).all()
    assert visible == [(tenants.a, tenants.rows[tenants.a][table])]
    by_id = owner.scalar(
        text(f"SELECT count(*) FROM {table} WHERE id = :id"), {"id": tenants.rows[tenants.b][table]}
    )
    assert by_id == 0


@pytest.mark.parametrize("table", TABLES)
def test_update_of_another_tenants_row_touches_nothing(
    owner: Connection, tenants: Tenants, table: str
) -> None:
    as_application(owner, tenants.a)
    result = owner.execute(
        text(f"UPDATE {table} SET updated_at = updated_at WHERE organization_id = :b"),
        {"b": tenants.b},
    )
    assert result.rowcount == 0


@pytest.mark.parametrize("table", TABLES)
def test_moving_a_row_to_another_tenant_is_refused(
    owner: Connection, tenants: Tenants, table: str
) -> None:
    as_application(owner, tenants.a)
    with pytest.raises(DBAPIError) as caught:
        owner.execute(
            text(f"UPDATE {table} SET organization_id = :b WHERE id = :id"),
            {"b": tenants.b, "id": tenants.rows[tenants.a][table]},
        )
    # 42501: the row-level security policy refused the new row. The completed purchase is
    # refused earlier still: its state trigger freezes completed transactions (23514).
    assert sqlstate(caught.value) == ("23514" if table == "credit_transactions" else "42501")


@pytest.mark.parametrize("table", TABLES)
def test_delete_of_another_tenants_row_removes_nothing(
    owner: Connection, tenants: Tenants, table: str
) -> None:
    as_application(owner, tenants.a)
    result = owner.execute(
        text(f"DELETE FROM {table} WHERE organization_id <> :a"), {"a": tenants.a}
    )
    assert result.rowcount == 0


@pytest.mark.parametrize("table", TABLES)
def test_insert_for_another_tenant_is_refused(
    owner: Connection, tenants: Tenants, table: str
) -> None:
    row = row_as_json(owner, table, tenants.rows[tenants.b][table])
    row["id"] += 1_000_000
    if "payment_reference" in row:
        row["payment_reference"] = None
    if table == "time_slots":
        row["start_time"], row["end_time"], row["appointment_id"] = "15:00", "16:00", None
    as_application(owner, tenants.a)
    with pytest.raises(DBAPIError) as caught:
        insert_json(owner, table, row)
    assert sqlstate(caught.value) == "42501"


@pytest.mark.parametrize(
    ("child", "column", "parent"),
    [
        pytest.param(*reference, id=f"{reference[0]}.{reference[1]}")
        for reference in TENANT_REFERENCES
    ],
)
def test_reference_to_another_tenants_row_is_refused(
    owner: Connection, tenants: Tenants, child: str, column: str, parent: str
) -> None:
    row = row_as_json(owner, child, tenants.rows[tenants.a][child])
    row["id"] += 1_000_000
    row[column] = tenants.rows[tenants.b][parent]
    if "payment_reference" in row:
        row["payment_reference"] = None
    if child == "time_slots":
        row["available"] = False
        row["start_time"], row["end_time"] = "15:00", "16:00"
        if column != "appointment_id":
            row["appointment_id"] = None
    as_application(owner, tenants.a)
    with pytest.raises(DBAPIError) as caught:
        insert_json(owner, child, row)
    # 23503: the composite foreign key finds no (tenant A, B's id) row.
    assert sqlstate(caught.value) == "23503"


@pytest.mark.parametrize("table", TABLES)
def test_no_tenant_declared_sees_and_writes_nothing(
    owner: Connection, tenants: Tenants, table: str
) -> None:
    row = row_as_json(owner, table, tenants.rows[tenants.a][table])
    as_application(owner, None)
    assert owner.scalar(text(f"SELECT count(*) FROM {table}")) == 0
    assert owner.execute(text(f"DELETE FROM {table}")).rowcount == 0
    assert owner.execute(text(f"UPDATE {table} SET updated_at = now()")).rowcount == 0
    row["id"] += 2_000_000
    with pytest.raises(DBAPIError) as caught:
        insert_json(owner, table, row)
    assert sqlstate(caught.value) == "42501"


@pytest.mark.parametrize("table", TABLES)
def test_a_tenant_that_does_not_exist_sees_nothing(
    owner: Connection, tenants: Tenants, table: str
) -> None:
    as_application(owner, NONEXISTENT_TENANT)
    assert owner.scalar(text(f"SELECT count(*) FROM {table}")) == 0
    assert owner.execute(text(f"DELETE FROM {table}")).rowcount == 0


def test_organizations_show_only_the_declared_one(owner: Connection, tenants: Tenants) -> None:
    as_application(owner, tenants.a)
    assert owner.scalars(text("SELECT id FROM organizations")).all() == [tenants.a]
    with pytest.raises(DBAPIError) as caught:
        owner.execute(text("UPDATE organizations SET name = 'x'"))
    assert sqlstate(caught.value) == "42501"  # no UPDATE privilege


def test_a_tenant_that_does_not_exist_cannot_insert(owner: Connection, tenants: Tenants) -> None:
    row = row_as_json(owner, "roles", tenants.rows[tenants.a]["roles"])
    row.update(id=row["id"] + 3_000_000, organization_id=NONEXISTENT_TENANT, name="ghost")
    as_application(owner, NONEXISTENT_TENANT)
    with pytest.raises(DBAPIError) as caught:
        insert_json(owner, "roles", row)
    assert sqlstate(caught.value) == "23503"  # fk_roles_organization


@pytest.mark.parametrize("table", TABLES)
def test_the_migrating_role_sees_every_tenant(
    owner: Connection, tenants: Tenants, table: str
) -> None:
    organizations = owner.scalars(
        text(f"SELECT DISTINCT organization_id FROM {table} ORDER BY 1")
    ).all()
    assert organizations == sorted([tenants.a, tenants.b])
