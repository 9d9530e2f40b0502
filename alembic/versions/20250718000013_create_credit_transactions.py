"""Create credit_transactions: the ledger of credit purchases, debits, refunds and adjustments.

As the plan writes it (`idx_credit_trans_*`, `chk_valid_transaction_type`), without the
`t.references` single-column indexes; beyond it: composite foreign keys, a status CHECK, an
amount-sign CHECK, and indexes covering the credit balance and appointment foreign keys.

Revision ID: 20250718000013
Revises: 20250718000012
Create Date: 2025-07-18 00:00:13
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20250718000013"
down_revision: str | None = "20250718000012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = ("table credit_transactions",)


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
        "credit_transactions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("organization_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("credit_balance_id", sa.BigInteger(), nullable=False),
        sa.Column("appointment_id", sa.BigInteger()),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("transaction_type", sa.String(), nullable=False),
        sa.Column("status", sa.String(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("metadata", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb")),
        sa.Column("payment_method", sa.String()),
        sa.Column("payment_reference", sa.String()),
        sa.Column("processed_at", postgresql.TIMESTAMP(timezone=True, precision=6)),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="credit_transactions_pkey"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name="fk_credit_transactions_organization"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "user_id"],
            ["users.organization_id", "users.id"],
            name="fk_credit_transactions_user",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "credit_balance_id"],
            ["credit_balances.organization_id", "credit_balances.id"],
            name="fk_credit_transactions_credit_balance",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "appointment_id"],
            ["appointments.organization_id", "appointments.id"],
            name="fk_credit_transactions_appointment",
        ),
        # Check constraint for transaction types (the plan's, word for word).
        sa.CheckConstraint(
            "transaction_type IN ('purchase', 'cancellation_refund', 'appointment_debit', "
            "'admin_adjustment')",
            name="chk_valid_transaction_type",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'completed', 'failed', 'cancelled')",
            name="chk_credit_transactions_status",
        ),
        # Credits come in as positive amounts and go out as negative ones. An unknown type
        # yields NULL here (passes) and is rejected by chk_valid_transaction_type instead.
        sa.CheckConstraint(
            "CASE transaction_type"
            " WHEN 'purchase' THEN amount > 0"
            " WHEN 'cancellation_refund' THEN amount > 0"
            " WHEN 'appointment_debit' THEN amount < 0"
            " WHEN 'admin_adjustment' THEN amount <> 0"
            " END",
            name="chk_credit_transactions_amount_sign",
        ),
    )
    op.create_index(
        "idx_credit_trans_org_user_date",
        "credit_transactions",
        ["organization_id", "user_id", "created_at"],
    )
    op.create_index(
        "idx_credit_trans_org_status", "credit_transactions", ["organization_id", "status"]
    )
    # Payment providers call back with their reference only, before the tenant is known.
    op.create_index("idx_credit_trans_payment_ref", "credit_transactions", ["payment_reference"])
    op.create_index(
        "index_credit_transactions_on_org_id_and_credit_balance_id",
        "credit_transactions",
        ["organization_id", "credit_balance_id"],
    )
    op.create_index(
        "index_credit_transactions_on_org_id_and_appointment_id",
        "credit_transactions",
        ["organization_id", "appointment_id"],
    )


def downgrade() -> None:
    op.drop_table("credit_transactions")
