"""Create organizations: the tenants.

Revision ID: 20250713000001
Revises: 20240606034427
Create Date: 2025-07-13 00:00:01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20250713000001"
down_revision: str | None = "20240606034427"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = ("table organizations",)


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("subdomain", sa.String(), nullable=False),
        sa.Column("status", sa.String(), server_default=sa.text("'active'"), nullable=False),
        sa.Column("time_zone", sa.String(), server_default=sa.text("'UTC'"), nullable=False),
        sa.Column(
            "settings",
            postgresql.JSONB(),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True, precision=6),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True, precision=6),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="organizations_pkey"),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'archived')", name="chk_organizations_status"
        ),
        # A DNS label: the subdomain is also the tenant's slug (the Organization resource's name).
        sa.CheckConstraint(
            "subdomain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'",
            name="chk_organizations_subdomain_format",
        ),
        sa.CheckConstraint("length(btrim(name)) > 0", name="chk_organizations_name_present"),
    )
    op.create_index("index_organizations_on_subdomain", "organizations", ["subdomain"], unique=True)


def downgrade() -> None:
    op.drop_table("organizations")
