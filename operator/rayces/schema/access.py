"""Per-tenant roles and which users hold them.

`users.role` is the coarse kind of user (see `states.UserRole`); these tables are the tenant's
own named roles with their permissions, assigned to users through `user_roles`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Index, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rayces.schema.base import (
    Base,
    CreatedUpdatedAt,
    IdentityKey,
    TenantOwned,
    tenant_foreign_key,
    tenant_join,
    tenant_unique_key,
)

if TYPE_CHECKING:
    from rayces.schema.myhub import User
    from rayces.schema.organizations import Organization


class Role(IdentityKey, TenantOwned, CreatedUpdatedAt, Base):
    """A named set of permissions within one tenant."""

    __tablename__ = "roles"
    __table_args__ = (
        tenant_unique_key(),
        Index("index_roles_on_organization_id_and_name", "organization_id", "name", unique=True),
    )

    name: Mapped[str]
    description: Mapped[str | None] = mapped_column(Text)
    permissions: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))

    organization: Mapped[Organization] = relationship(back_populates="roles")
    assignments: Mapped[list[RoleAssignment]] = relationship(
        primaryjoin=tenant_join("Role", "RoleAssignment", "role_id"),
        back_populates="role",
        # The database deletes them with their role (ON DELETE CASCADE).
        passive_deletes=True,
    )


class RoleAssignment(IdentityKey, TenantOwned, CreatedUpdatedAt, Base):
    """A user holding a role (a row of `user_roles`); it goes with either of them."""

    __tablename__ = "user_roles"
    __table_args__ = (
        tenant_foreign_key("user_id", "users", ondelete="CASCADE"),
        tenant_foreign_key("role_id", "roles", ondelete="CASCADE"),
        Index(
            "index_user_roles_on_organization_id_and_user_id_and_role_id",
            "organization_id",
            "user_id",
            "role_id",
            unique=True,
        ),
        Index("index_user_roles_on_organization_id_and_role_id", "organization_id", "role_id"),
    )

    user_id: Mapped[int] = mapped_column(BigInteger)
    role_id: Mapped[int] = mapped_column(BigInteger)

    organization: Mapped[Organization] = relationship(back_populates="role_assignments")
    user: Mapped[User] = relationship(
        primaryjoin=tenant_join("User", "RoleAssignment", "user_id"),
        back_populates="role_assignments",
    )
    role: Mapped[Role] = relationship(
        primaryjoin=tenant_join("Role", "RoleAssignment", "role_id"), back_populates="assignments"
    )
