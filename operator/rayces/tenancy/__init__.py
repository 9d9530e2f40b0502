"""The current-tenant context and tenant-scoped sessions.

Application code declares its tenant with `tenant_scope(organization_id)`; sessions made by a
factory passed through `scope_sessions` then filter every query to that tenant, stamp new rows
with it, and declare it to PostgreSQL so that row-level security agrees. `without_tenant()` is
the explicit way to work across tenants.
"""

from rayces.tenancy.context import (
    ImmutableTenantError,
    NoTenantError,
    TenancyError,
    TenantMismatchError,
    current_tenant,
    require_tenant,
    tenant_scope,
    without_tenant,
)
from rayces.tenancy.sessions import TENANT_SETTING, declare_tenant, scope_sessions

__all__ = [
    "TENANT_SETTING",
    "ImmutableTenantError",
    "NoTenantError",
    "TenancyError",
    "TenantMismatchError",
    "current_tenant",
    "declare_tenant",
    "require_tenant",
    "scope_sessions",
    "tenant_scope",
    "without_tenant",
]
