"""Which tenant the running code works for: a context variable, safe across threads and tasks.

`tenant_scope(organization_id)` sets the current tenant for a block (a request, a Job, a test);
`require_tenant()` reads it or raises; `without_tenant()` is the explicit administrator path that
works across tenants. Context variables are copied into asyncio tasks and are per thread, so two
requests served concurrently never see each other's tenant. This is acts_as_tenant's
`with_tenant` / `current_tenant` / `without_tenant` contract.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager


class TenancyError(Exception):
    """Base of the tenancy errors; `message` is one line saying what is wrong and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoTenantError(TenancyError):
    """Tenant-owned data was used with no tenant declared and no explicit `without_tenant()`."""


class TenantMismatchError(TenancyError):
    """A row of one tenant was written while another tenant is current."""


class ImmutableTenantError(TenancyError):
    """A row's `organization_id` was changed: rows never move between tenants."""


_CURRENT_TENANT: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "rayces_current_tenant", default=None
)
_ALL_TENANTS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "rayces_all_tenants", default=False
)


def current_tenant() -> int | None:
    """The current tenant's organization id, or None (no tenant, or `without_tenant()`)."""
    return None if _ALL_TENANTS.get() else _CURRENT_TENANT.get()


def working_without_tenant() -> bool:
    """Whether the caller opted out of tenant scoping with `without_tenant()`."""
    return _ALL_TENANTS.get()


def require_tenant() -> int:
    """The current tenant's organization id; raises `NoTenantError` when there is none."""
    tenant = current_tenant()
    if tenant is None:
        raise NoTenantError(
            "no tenant is declared: wrap the work in tenant_scope(organization_id), "
            "or in without_tenant() to work across tenants on purpose"
        )
    return tenant


@contextmanager
def tenant_scope(organization_id: int) -> Iterator[int]:
    """Work for `organization_id` inside the block (nested scopes restore the outer one)."""
    if isinstance(organization_id, bool) or not isinstance(organization_id, int):
        raise TypeError(f"organization_id must be an int, not {type(organization_id).__name__}")
    tenant_token = _CURRENT_TENANT.set(organization_id)
    all_token = _ALL_TENANTS.set(False)
    try:
        yield organization_id
    finally:
        _ALL_TENANTS.reset(all_token)
        _CURRENT_TENANT.reset(tenant_token)


@contextmanager
def without_tenant() -> Iterator[None]:
    """Work across every tenant inside the block: the administrator's explicit opt-out.

    The application-level scoping is off; the database's row-level security still applies to
    the connection's role, so cross-tenant work needs the migrating (owner) role too.
    """
    token = _ALL_TENANTS.set(True)
    try:
        yield
    finally:
        _ALL_TENANTS.reset(token)
