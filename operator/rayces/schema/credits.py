"""The credit ledger: one balance per user and tenant, and the transactions that move it.

Amounts are whole credits as integers. The balance columns are kept by the domain layer's
ledger; the CHECKs here make sure no bug can drive them below zero.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, CheckConstraint, Index, text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import conv

from rayces.schema.base import (
    Base,
    CreatedUpdatedAt,
    IdentityKey,
    TenantOwned,
    tenant_foreign_key,
    tenant_join,
    tenant_unique_key,
)
from rayces.schema.states import (
    CreditTransactionStatus,
    CreditTransactionType,
    check_in,
    credit_amount_sign_check,
)

if TYPE_CHECKING:
    from rayces.schema.appointments import Appointment
    from rayces.schema.myhub import User
    from rayces.schema.organizations import Organization


class CreditBalance(IdentityKey, TenantOwned, CreatedUpdatedAt, Base):
    """A user's credits in their organization, with lifetime totals."""

    __tablename__ = "credit_balances"
    __table_args__ = (
        tenant_unique_key(),
        tenant_foreign_key("user_id", "users"),
        Index("idx_unique_user_credit_balance", "organization_id", "user_id", unique=True),
        Index("idx_org_balance_lookup", "organization_id", "balance"),
        CheckConstraint("balance >= 0", name="balance_non_negative"),
        CheckConstraint("lifetime_purchased >= 0", name="lifetime_purchased_non_negative"),
        CheckConstraint("lifetime_used >= 0", name="lifetime_used_non_negative"),
    )

    user_id: Mapped[int] = mapped_column(BigInteger)
    balance: Mapped[int] = mapped_column(server_default=text("0"))
    lifetime_purchased: Mapped[int] = mapped_column(server_default=text("0"))
    lifetime_used: Mapped[int] = mapped_column(server_default=text("0"))

    organization: Mapped[Organization] = relationship(back_populates="credit_balances")
    user: Mapped[User] = relationship(
        primaryjoin=tenant_join("User", "CreditBalance", "user_id"),
        back_populates="credit_balance",
    )
    transactions: Mapped[list[CreditTransaction]] = relationship(
        primaryjoin=tenant_join("CreditBalance", "CreditTransaction", "credit_balance_id"),
        back_populates="credit_balance",
        order_by="CreditTransaction.id",
    )


class CreditTransaction(IdentityKey, TenantOwned, CreatedUpdatedAt, Base):
    """One movement of credits: a purchase, a debit for an appointment, a refund, an adjustment."""

    __tablename__ = "credit_transactions"
    __table_args__ = (
        tenant_foreign_key("user_id", "users"),
        tenant_foreign_key("credit_balance_id", "credit_balances"),
        tenant_foreign_key("appointment_id", "appointments"),
        Index("idx_credit_trans_org_user_date", "organization_id", "user_id", "created_at"),
        Index("idx_credit_trans_org_status", "organization_id", "status"),
        Index("idx_credit_trans_payment_ref", "payment_reference"),
        # A payment is recorded once per organization (revision 20250718000017).
        Index(
            "index_credit_transactions_on_org_id_and_payment_reference",
            "organization_id",
            "payment_reference",
            unique=True,
            postgresql_where=text("payment_reference IS NOT NULL"),
        ),
        Index(
            "index_credit_transactions_on_org_id_and_credit_balance_id",
            "organization_id",
            "credit_balance_id",
        ),
        Index(
            "index_credit_transactions_on_org_id_and_appointment_id",
            "organization_id",
            "appointment_id",
        ),
        # The plan's name, kept: it does not follow the `chk_<table>_<purpose>` rule.
        CheckConstraint(
            check_in("transaction_type", CreditTransactionType),
            name=conv("chk_valid_transaction_type"),
        ),
        CheckConstraint(check_in("status", CreditTransactionStatus), name="status"),
        CheckConstraint(credit_amount_sign_check(), name="amount_sign"),
    )

    user_id: Mapped[int] = mapped_column(BigInteger)
    credit_balance_id: Mapped[int] = mapped_column(BigInteger)
    appointment_id: Mapped[int | None] = mapped_column(BigInteger)
    amount: Mapped[int]
    transaction_type: Mapped[str]
    status: Mapped[str] = mapped_column(server_default=CreditTransactionStatus.PENDING.value)
    # Nullable, as the plan writes it (unlike the other tables' metadata).
    metadata_: Mapped[dict[str, Any] | None] = mapped_column(
        "metadata", server_default=text("'{}'::jsonb")
    )
    payment_method: Mapped[str | None]
    payment_reference: Mapped[str | None]
    processed_at: Mapped[dt.datetime | None]

    organization: Mapped[Organization] = relationship(back_populates="credit_transactions")
    user: Mapped[User] = relationship(
        primaryjoin=tenant_join("User", "CreditTransaction", "user_id"),
        back_populates="credit_transactions",
    )
    credit_balance: Mapped[CreditBalance] = relationship(
        primaryjoin=tenant_join("CreditBalance", "CreditTransaction", "credit_balance_id"),
        back_populates="transactions",
    )
    appointment: Mapped[Appointment | None] = relationship(
        primaryjoin=tenant_join("Appointment", "CreditTransaction", "appointment_id"),
        back_populates="credit_transactions",
    )
