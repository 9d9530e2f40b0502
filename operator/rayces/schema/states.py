"""The vocabularies of the booking schema's state and type columns, in one place.

Each vocabulary is a `StrEnum` whose values are exactly what the column may hold. The models
build their CHECK constraints from these enums (`check_in`), the domain layer builds its state
machines on them, and a database test checks that the CHECKs the Alembic revisions create accept
exactly these values. The revisions themselves spell the values out literally: an old revision
must keep its meaning even after a vocabulary here grows.

Members compare equal to their string values, so `appointment.state == AppointmentState.DRAFT`
works on the plain strings the models load.
"""

from __future__ import annotations

import enum


class OrganizationStatus(enum.StrEnum):
    """`organizations.status`: whether a tenant may be used."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    ARCHIVED = "archived"


class UserRole(enum.StrEnum):
    """`users.role`: what a user is within their organization."""

    ADMIN = "admin"
    STAFF = "staff"
    PROFESSIONAL = "professional"
    CLIENT = "client"


class StudentState(enum.StrEnum):
    """`students.state`: the student's lifecycle, from admission to discharge."""

    ADMISSION = "admission"
    ACTIVE = "active"
    INACTIVE = "inactive"
    DISCHARGED = "discharged"


class AppointmentState(enum.StrEnum):
    """`appointments.state`: the booking's lifecycle."""

    DRAFT = "draft"
    PRE_CONFIRMED = "pre_confirmed"
    CONFIRMED = "confirmed"
    EXECUTED = "executed"
    CANCELLED = "cancelled"


class CreditTransactionType(enum.StrEnum):
    """`credit_transactions.transaction_type`: why credits moved."""

    PURCHASE = "purchase"
    CANCELLATION_REFUND = "cancellation_refund"
    APPOINTMENT_DEBIT = "appointment_debit"
    ADMIN_ADJUSTMENT = "admin_adjustment"


class CreditTransactionStatus(enum.StrEnum):
    """`credit_transactions.status`: how far a credit movement got."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


CREDIT_AMOUNT_SIGN: dict[CreditTransactionType, str] = {
    CreditTransactionType.PURCHASE: "> 0",
    CreditTransactionType.CANCELLATION_REFUND: "> 0",
    CreditTransactionType.APPOINTMENT_DEBIT: "< 0",
    CreditTransactionType.ADMIN_ADJUSTMENT: "<> 0",
}
"""The sign `credit_transactions.amount` must have for each type, as a SQL comparison with 0.

Credits come in on purchases and refunds, go out on appointment debits, and move either way on
an admin adjustment, which is never a no-op.
"""


def sql_string_list(values: type[enum.StrEnum] | tuple[str, ...]) -> str:
    """The values as a parenthesised SQL list of string literals: `('a', 'b')`."""
    # The values are fixed identifiers chosen in this module, but quote-doubling keeps the
    # rendered SQL valid even if one ever contains an apostrophe.
    literals = ", ".join("'" + str(value).replace("'", "''") + "'" for value in values)
    return f"({literals})"


def check_in(column: str, values: type[enum.StrEnum] | tuple[str, ...]) -> str:
    """SQL for a CHECK that `column` holds one of `values`: `column IN ('a', 'b')`.

    This is the form the platform plan writes its checks in (`chk_valid_transaction_type`).
    """
    return f"{column} IN {sql_string_list(values)}"


def credit_amount_sign_check(
    type_column: str = "transaction_type", amount_column: str = "amount"
) -> str:
    """SQL for a CHECK that each transaction's amount has its type's sign (`CREDIT_AMOUNT_SIGN`).

    A `CASE` without `ELSE`: an unknown type yields NULL, which a CHECK lets through, because
    rejecting unknown types is the vocabulary CHECK's job (one constraint, one reason to fail).
    """
    branches = "".join(
        f" WHEN '{transaction_type}' THEN {amount_column} {comparison}"
        for transaction_type, comparison in CREDIT_AMOUNT_SIGN.items()
    )
    return f"CASE {type_column}{branches} END"


VOCABULARIES: dict[tuple[str, str], type[enum.StrEnum]] = {
    ("organizations", "status"): OrganizationStatus,
    ("users", "role"): UserRole,
    ("students", "state"): StudentState,
    ("appointments", "state"): AppointmentState,
    ("credit_transactions", "transaction_type"): CreditTransactionType,
    ("credit_transactions", "status"): CreditTransactionStatus,
}
"""Which `(table, column)` each vocabulary guards; the tests walk this table."""
