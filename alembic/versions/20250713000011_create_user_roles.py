"""Create user_roles: which roles a user holds; rows go with their user or role.

Revision ID: 20250713000011
Revises: 20250713000010
Create Date: 2025-07-13 00:00:11
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20250713000011"
down_revision: str | None = "20250713000010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = ("table user_roles",)


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            name,
            postgresql.TIMESTAMP(timezone=True, precision=6),
            server_default=sa.text("now()"),
            nullable=False,
        )
        for name in ("created_at", "updated_at")
    ]


def upgrade() -> None:
    op.create_table(
        "user_roles",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("organization_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("role_id", sa.BigInteger(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="user_roles_pkey"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name="fk_user_roles_organization"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "user_id"],
            ["users.organization_id", "users.id"],
            name="fk_user_roles_user",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "role_id"],
            ["roles.organization_id", "roles.id"],
            name="fk_user_roles_role",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "index_user_roles_on_organization_id_and_user_id_and_role_id",
        "user_roles",
        ["organization_id", "user_id", "role_id"],
        unique=True,
    )
    op.create_index(
        "index_user_roles_on_organization_id_and_role_id",
        "user_roles",
        ["organization_id", "role_id"],
    )


def downgrade() -> None:
    op.drop_table("user_roles")
