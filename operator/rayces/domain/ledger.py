"""The credit ledger: credits move only through completed transactions, and balances follow.

Every movement is one SQL statement: it updates the user's balance row (which locks it until
the transaction ends) only when the result stays at or above zero, and records the completed
transaction from the same statement, so a balance and its transactions can never disagree and
concurrent movements on one balance serialize on its row lock without losing an update. The
invariant, for every user of every organization:

    balance            = sum(amount)            of completed transactions
    lifetime_purchased = sum(amount > 0)        of completed transactions
    lifetime_used      = sum(-amount, amount<0) of completed transactions

A payment reference is recorded at most once per organization (a unique index), so a purchase
delivered twice is refused by the database, not by a read-then-write.

Appointments: confirming one that `uses_credit` debits one session's credits
(`organizations.settings.credits_per_session`, default 1); cancelling it refunds them when the
cancellation comes at least `organizations.settings.cancellation_refund_hours` (default 24) before
it starts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rayces.domain.errors import DuplicatePaymentError, InsufficientCreditsError, InvalidInputError
from rayces.domain.lifecycle import AppointmentLifecycle
from rayces.schema import Appointment
from rayces.schema.states import AppointmentState, CreditTransactionType
from rayces.tenancy import require_tenant

DEFAULT_CREDITS_PER_SESSION = 1
DEFAULT_CANCELLATION_REFUND_HOURS = 24
PAYMENT_REFERENCE_INDEX = "index_credit_transactions_on_org_id_and_payment_reference"

_SIGN_OK = {
    CreditTransactionType.PURCHASE: lambda amount: amount > 0,
    CreditTransactionType.CANCELLATION_REFUND: lambda amount: amount > 0,
    CreditTransactionType.APPOINTMENT_DEBIT: lambda amount: amount < 0,
    CreditTransactionType.ADMIN_ADJUSTMENT: lambda amount: amount != 0,
}
_SIGN_WORDS = {
    CreditTransactionType.PURCHASE: "positive",
    CreditTransactionType.CANCELLATION_REFUND: "positive",
    CreditTransactionType.APPOINTMENT_DEBIT: "negative",
    CreditTransactionType.ADMIN_ADJUSTMENT: "non-zero",
}

#: The one statement of a movement: the balance (locked, never below zero) and its transaction.
MOVEMENT_SQL = """\
WITH moved AS (
    UPDATE credit_balances
    SET balance = balance + :amount,
        lifetime_purchased = lifetime_purchased + greatest(:amount, 0),
        lifetime_used = lifetime_used + greatest(-:amount, 0),
        updated_at = now()
    WHERE organization_id = :organization_id AND user_id = :user_id
      AND balance + :amount >= 0
    RETURNING id, balance
)
INSERT INTO credit_transactions (
    organization_id, user_id, credit_balance_id, appointment_id, amount, transaction_type,
    status, processed_at, metadata, payment_method, payment_reference
)
SELECT :organization_id, :user_id, moved.id, :appointment_id, :amount, :transaction_type,
       'completed', now(), CAST(:metadata AS jsonb), :payment_method, :payment_reference
FROM moved
RETURNING id, (SELECT balance FROM moved)"""


@dataclass(frozen=True)
class LedgerEntry:
    """A completed movement: its transaction and the balance right after it."""

    transaction_id: int
    amount: int
    balance: int


def _check_amount(amount: int, transaction_type: str) -> CreditTransactionType:
    try:
        kind = CreditTransactionType(transaction_type)
    except ValueError:
        allowed = ", ".join(CreditTransactionType)
        raise InvalidInputError(
            f"unknown transaction type {transaction_type!r}; use one of {allowed}"
        ) from None
    if isinstance(amount, bool) or not isinstance(amount, int) or not _SIGN_OK[kind](amount):
        raise InvalidInputError(
            f"a {kind} needs a {_SIGN_WORDS[kind]} whole number of credits, not {amount!r}"
        )
    return kind


def add_credits(
    session: Session,
    user_id: int,
    amount: int,
    transaction_type: str = CreditTransactionType.PURCHASE,
    metadata: Mapping[str, Any] | None = None,
    *,
    payment_reference: str | None = None,
    payment_method: str | None = None,
    appointment_id: int | None = None,
) -> LedgerEntry:
    """Move `amount` credits on `user_id`'s balance in the current tenant (the plan's method).

    The balance is created on the first purchase. On `InsufficientCreditsError` nothing changed
    and the session's transaction is still usable; on `DuplicatePaymentError` too (the insert ran
    in a savepoint).

    :param amount: positive for purchases and refunds, negative for debits, non-zero for
        adjustments.
    :raises InvalidInputError: the amount's sign does not fit the type, or the type is unknown.
    """
    kind = _check_amount(amount, transaction_type)
    organization_id = require_tenant()
    parameters = {
        "organization_id": organization_id,
        "user_id": user_id,
        "appointment_id": appointment_id,
        "amount": amount,
        "transaction_type": str(kind),
        "metadata": json.dumps(dict(metadata or {})),
        "payment_method": payment_method,
        "payment_reference": payment_reference,
    }
    for attempt in range(2):
        row = _move(session, parameters)
        if row is not None:
            return LedgerEntry(transaction_id=int(row[0]), amount=amount, balance=int(row[1]))
        current = session.execute(
            text(
                "SELECT balance FROM credit_balances "
                "WHERE organization_id = :organization_id AND user_id = :user_id"
            ),
            parameters,
        ).scalar()
        if current is not None or amount < 0 or attempt:
            raise InsufficientCreditsError(
                f"user {user_id} has {current or 0} credits in organization {organization_id}; "
                f"moving {amount} would take the balance below zero, so nothing was changed"
            )
        session.execute(
            text(
                "INSERT INTO credit_balances (organization_id, user_id) "
                "VALUES (:organization_id, :user_id) ON CONFLICT DO NOTHING"
            ),
            parameters,
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _move(session: Session, parameters: Mapping[str, Any]) -> Any:
    if parameters["payment_reference"] is None:
        return session.execute(text(MOVEMENT_SQL), parameters).first()
    savepoint = session.begin_nested()
    try:
        row = session.execute(text(MOVEMENT_SQL), parameters).first()
    except IntegrityError as error:
        savepoint.rollback()
        original = error.orig
        if (
            isinstance(original, psycopg.Error)
            and original.diag.constraint_name == PAYMENT_REFERENCE_INDEX
        ):
            raise DuplicatePaymentError(
                f"payment reference {parameters['payment_reference']!r} is already recorded in "
                f"organization {parameters['organization_id']}; it was not applied again"
            ) from None
        raise
    savepoint.commit()
    return row


def _settings(session: Session, organization_id: int) -> dict[str, Any]:
    settings = session.execute(
        text("SELECT settings FROM organizations WHERE id = :id"), {"id": organization_id}
    ).scalar()
    return dict(settings or {})


def credits_per_session(session: Session) -> int:
    """Credits one session costs in the current tenant (`settings.credits_per_session`)."""
    value = _settings(session, require_tenant()).get("credits_per_session")
    return int(value) if value is not None else DEFAULT_CREDITS_PER_SESSION


def refund_window(session: Session) -> dt.timedelta:
    """How long before its start a cancellation is refunded (`cancellation_refund_hours`)."""
    value = _settings(session, require_tenant()).get("cancellation_refund_hours")
    hours = float(value) if value is not None else DEFAULT_CANCELLATION_REFUND_HOURS
    return dt.timedelta(hours=hours)


def confirm_appointment(
    session: Session, appointment: Appointment, *, now: dt.datetime | None = None
) -> LedgerEntry | None:
    """Confirm `appointment`; when it `uses_credit`, debit its client one session's credits.

    :raises IllegalTransitionError: it cannot be confirmed from its state.
    :raises InsufficientCreditsError: the client's balance does not cover the session.
    """
    AppointmentLifecycle(appointment).confirm(now=now)
    session.flush()
    if not appointment.uses_credit:
        return None
    return add_credits(
        session,
        appointment.client_id,
        -credits_per_session(session),
        CreditTransactionType.APPOINTMENT_DEBIT,
        {"appointment_id": appointment.id},
        appointment_id=appointment.id,
    )


def cancel_appointment(
    session: Session,
    appointment: Appointment,
    reason: str,
    *,
    now: dt.datetime | None = None,
) -> LedgerEntry | None:
    """Cancel `appointment`; refund what its confirmation debited if cancelled early enough.

    :returns: the refund, or None when nothing was debited or the cancellation is too late.
    """
    now = now or dt.datetime.now(dt.UTC)
    was_confirmed = appointment.state == AppointmentState.CONFIRMED
    AppointmentLifecycle(appointment).cancel(reason, now=now)
    session.flush()
    if not (appointment.uses_credit and was_confirmed):
        return None
    if now > appointment.starts_at - refund_window(session):
        return None
    debited = session.execute(
        text(
            "SELECT coalesce(-sum(amount), 0) FROM credit_transactions "
            "WHERE organization_id = :organization_id AND appointment_id = :appointment_id "
            "AND status = 'completed' "
            "AND transaction_type IN ('appointment_debit', 'cancellation_refund')"
        ),
        {"organization_id": appointment.organization_id, "appointment_id": appointment.id},
    ).scalar_one()
    if debited <= 0:
        return None
    return add_credits(
        session,
        appointment.client_id,
        int(debited),
        CreditTransactionType.CANCELLATION_REFUND,
        {"appointment_id": appointment.id, "reason": reason},
        appointment_id=appointment.id,
    )
