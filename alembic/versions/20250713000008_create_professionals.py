"""Create professionals: users who give appointments (one professional row per user).

Revision ID: 20250713000008
Revises: 20250713000007
Create Date: 2025-07-13 00:00:08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20250713000008"
down_revision: str | None = "20250713000007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = ("table professionals",)


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
        "professionals",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("organization_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="professionals_pkey"),
        sa.UniqueConstraint("organization_id", "id", name="uq_professionals_organization_id_id"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name="fk_professionals_organization"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "user_id"],
            ["users.organization_id", "users.id"],
            name="fk_professionals_user",
        ),
    )
    op.create_index(
        "index_professionals_on_organization_id_and_user_id",
        "professionals",
        ["organization_id", "user_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("professionals")
