"""The current-tenant context and tenant-scoped sessions."""
