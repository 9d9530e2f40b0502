"""Create credit_balances: one prepaid-credit account per user and organization.

As the plan writes it (`idx_unique_user_credit_balance`, `idx_org_balance_lookup`), without the
`t.references` single-column indexes, with a composite foreign key to users and `>= 0` checks.

Revision ID: 20250718000012
Revises: 20250713000011
Create Date: 2025-07-18 00:00:12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20250718000012"
down_revision: str | None = "20250713000011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = ("table credit_balances",)


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
        "credit_balances",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("organization_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("balance", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("lifetime_purchased", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("lifetime_used", sa.Integer(), server_default=sa.text("0"), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="credit_balances_pkey"),
        sa.UniqueConstraint("organization_id", "id", name="uq_credit_balances_organization_id_id"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name="fk_credit_balances_organization"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "user_id"],
            ["users.organization_id", "users.id"],
            name="fk_credit_balances_user",
        ),
        sa.CheckConstraint("balance >= 0", name="chk_credit_balances_balance_non_negative"),
        sa.CheckConstraint(
            "lifetime_purchased >= 0", name="chk_credit_balances_lifetime_purchased_non_negative"
        ),
        sa.CheckConstraint(
            "lifetime_used >= 0", name="chk_credit_balances_lifetime_used_non_negative"
        ),
    )
    # Unique constraint per user per organization.
    op.create_index(
        "idx_unique_user_credit_balance",
        "credit_balances",
        ["organization_id", "user_id"],
        unique=True,
    )
    # Performance index for queries.
    op.create_index("idx_org_balance_lookup", "credit_balances", ["organization_id", "balance"])


def downgrade() -> None:
    op.drop_table("credit_balances")
