"""The migrated database's state CHECKs accept exactly the values of `rayces.schema.states`.

The revisions spell the allowed values out literally (they never import live code), so nothing
but this test notices when a vocabulary and its CHECK drift apart.

Each CHECK is taken from the migrated database as PostgreSQL renders it and put on a probe table
holding only its column, so no other constraint of the real table (a foreign key, the credit
amount's sign) can accept or reject a value in its place.
"""

from __future__ import annotations

import enum
import re

import psycopg.errors
import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from rayces.schema import states

VOCABULARY_CHECKS = [
    pytest.param(
        "organizations", "status", "chk_organizations_status", states.OrganizationStatus,
        id="organization-status",
    ),
    pytest.param("users", "role", "chk_users_role", states.UserRole, id="user-role"),
    pytest.param(
        "students", "state", "chk_students_state", states.StudentState, id="student-state"
    ),
    pytest.param(
        "appointments", "state", "chk_appointments_state", states.AppointmentState,
        id="appointment-state",
    ),
    pytest.param(
        "credit_transactions", "transaction_type", "chk_valid_transaction_type",
        states.CreditTransactionType, id="credit-transaction-type",
    ),
    pytest.param(
        "credit_transactions", "status", "chk_credit_transactions_status",
        states.CreditTransactionStatus, id="credit-transaction-status",
    ),
]  # fmt: skip


def test_every_vocabulary_has_a_check_case() -> None:
    covered = {(case.values[0], case.values[1]) for case in VOCABULARY_CHECKS}
    assert covered == set(states.VOCABULARIES)


def _check_definition(connection: Connection, table: str, constraint: str) -> str:
    definition = connection.execute(
        text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:table AS regclass) AND conname = :constraint AND contype = 'c'"
        ),
        {"table": table, "constraint": constraint},
    ).scalar_one_or_none()
    assert definition is not None, f"no CHECK {constraint} on {table} in the migrated database"
    return str(definition)


def _accepts(connection: Connection, value: str) -> bool:
    savepoint = connection.begin_nested()
    try:
        connection.execute(text("INSERT INTO vocabulary_probe VALUES (:value)"), {"value": value})
    except IntegrityError as error:
        savepoint.rollback()
        assert isinstance(error.orig, psycopg.errors.CheckViolation), error
        return False
    savepoint.commit()
    return True


@pytest.mark.parametrize(("table", "column", "constraint", "vocabulary"), VOCABULARY_CHECKS)
def test_check_accepts_exactly_the_vocabulary(
    migrated_engine: Engine,
    table: str,
    column: str,
    constraint: str,
    vocabulary: type[enum.StrEnum],
) -> None:
    allowed = [member.value for member in vocabulary]
    with migrated_engine.connect() as connection:
        definition = _check_definition(connection, table, constraint)
        # The probe column has the real column's type; the CHECK is the migrated one, verbatim.
        connection.execute(
            text(f"CREATE TEMP TABLE vocabulary_probe AS SELECT {column} FROM {table} WITH NO DATA")
        )
        connection.execute(text(f"ALTER TABLE vocabulary_probe ADD CONSTRAINT probe {definition}"))

        accepted = {value: _accepts(connection, value) for value in allowed}
        rejected_lookalikes = {
            value: not _accepts(connection, value)
            for value in ("bogus", "", allowed[0].upper(), f" {allowed[0]}")
        }
        connection.rollback()

    assert accepted == dict.fromkeys(allowed, True)
    assert rejected_lookalikes == dict.fromkeys(rejected_lookalikes, True)
    # Probing finds a missing value; reading the literals also finds an extra one.
    assert set(re.findall(r"'([^']*)'::", definition)) == set(allowed), definition
