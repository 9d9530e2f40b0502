"""Tenant-scoped SQLAlchemy sessions: every ORM query filtered, every new row stamped.

`scope_sessions(factory)` installs three session event hooks on a `sessionmaker` (or a `Session`
class):

- `after_begin` declares the current tenant to PostgreSQL for the transaction
  (`set_config('app.current_organization_id', id, true)`), so row-level security agrees with the
  application; `do_orm_execute` re-declares it if the tenant changed within a transaction;
- `do_orm_execute` adds `organization_id = <tenant>` to every SELECT, UPDATE and DELETE on a
  tenant-owned model, relationship loads included (`with_loader_criteria`), and refuses such a
  statement when no tenant is declared and the caller did not opt out with `without_tenant()`;
- `before_flush` gives new tenant-owned rows the tenant's `organization_id`, refuses a row
  belonging to another tenant, and refuses any change of `organization_id`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, with_loader_criteria

from rayces.schema.base import TenantOwned
from rayces.tenancy.context import (
    ImmutableTenantError,
    NoTenantError,
    TenantMismatchError,
    current_tenant,
    require_tenant,
    working_without_tenant,
)

#: The session setting row-level security reads (`current_organization_id()`).
TENANT_SETTING = "app.current_organization_id"

_DECLARED = "rayces_declared_tenant"


def declare_tenant(connection: Connection, organization_id: int | None) -> None:
    """Declare `organization_id` to PostgreSQL for the connection's current transaction.

    `None` declares no tenant: row-level security then shows nothing tenant-owned.
    """
    connection.execute(
        text("SELECT set_config(:setting, :value, true)"),
        {
            "setting": TENANT_SETTING,
            "value": "" if organization_id is None else str(organization_id),
        },
    )


def _is_tenant_owned(mapper_class: type[Any]) -> bool:
    return issubclass(mapper_class, TenantOwned)


def _after_begin(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    tenant = current_tenant()
    if tenant is not None:
        declare_tenant(connection, tenant)
    session.info[_DECLARED] = tenant


def _do_orm_execute(state: ORMExecuteState) -> None:
    tenant = current_tenant()
    session = state.session
    # The transaction may have begun before the tenant was set (or under another one): declare
    # it before any statement, plain SQL included, so RLS sees what the application sees.
    if tenant is not None:
        connection = session.connection()  # begins the transaction: `after_begin` declares
        if session.info.get(_DECLARED, None) != tenant:
            declare_tenant(connection, tenant)
            session.info[_DECLARED] = tenant
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if not any(_is_tenant_owned(mapper.class_) for mapper in state.all_mappers):
        return
    if working_without_tenant():
        return
    if tenant is None:
        names = ", ".join(sorted(m.class_.__name__ for m in state.all_mappers))
        raise NoTenantError(
            f"query on tenant-owned {names} with no tenant declared: wrap it in "
            "tenant_scope(organization_id), or in without_tenant() to work across tenants"
        )
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantOwned,
            lambda cls: cls.organization_id == tenant,
            include_aliases=True,
        )
    )


def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    tenant = current_tenant()
    for row in session.new:
        if not isinstance(row, TenantOwned):
            continue
        # Typed as int, but None until someone sets it.
        organization_id: int | None = row.__dict__.get("organization_id")
        organization = getattr(row, "organization", None)
        if organization_id is None and organization is not None:
            organization_id = organization.id
            if organization_id is None:
                continue  # a new organization: the flush sets its id on the row
        if organization_id is None:
            if working_without_tenant():
                raise NoTenantError(
                    f"new {type(row).__name__} has no organization_id: set it, since "
                    "without_tenant() gives new rows none"
                )
            organization_id = require_tenant()
        elif tenant is not None and organization_id != tenant:
            raise TenantMismatchError(
                f"new {type(row).__name__} belongs to organization {organization_id}, "
                f"but the current tenant is {tenant}: create it inside its own tenant_scope"
            )
        row.organization_id = organization_id
    for row in session.dirty:
        if not isinstance(row, TenantOwned):
            continue
        history = inspect(row).attrs.organization_id.history
        if history.deleted and history.added and history.deleted[0] is not None:
            raise ImmutableTenantError(
                f"{type(row).__name__} {getattr(row, 'id', '?')} cannot move from organization "
                f"{history.deleted[0]} to {history.added[0]}: rows never change tenant"
            )
        if tenant is not None and row.organization_id != tenant:
            raise TenantMismatchError(
                f"{type(row).__name__} {getattr(row, 'id', '?')} belongs to organization "
                f"{row.organization_id}, not to the current tenant {tenant}"
            )


def scope_sessions(factory: Any) -> Any:
    """Install tenant scoping on a `sessionmaker` or `Session` class; returns it."""
    event.listen(factory, "after_begin", _after_begin)
    event.listen(factory, "do_orm_execute", _do_orm_execute)
    event.listen(factory, "before_flush", _before_flush)
    return factory
