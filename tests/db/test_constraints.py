"""Each constraint at head rejects what it must, and lets through what it must not reject.

Every case runs in a transaction that is rolled back, on top of two small tenants: organization
1 ("alpha") and organization 2 ("beta"), each with users, a post, a professional, a student, an
appointment, a role, a credit balance; alpha also has an availability rule and a time slot.
A rejected statement must fail on the named constraint (psycopg's `diag.constraint_name`).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

SEED = """
INSERT INTO organizations (id, name, subdomain) VALUES (1, 'Alpha', 'alpha'), (2, 'Beta', 'beta');
INSERT INTO users (id, organization_id, email, created_at, updated_at) VALUES
    (11, 1, 'ana@alpha.test', now(), now()), (12, 1, 'bob@alpha.test', now(), now()),
    (21, 2, 'ana@beta.test', now(), now());
INSERT INTO posts (id, organization_id, created_at, updated_at) VALUES
    (11, 1, now(), now()), (21, 2, now(), now());
INSERT INTO professionals (id, organization_id, user_id) VALUES (11, 1, 11), (12, 1, 12), (21, 2, 21);
INSERT INTO students (id, organization_id, guardian_id, first_name, last_name) VALUES
    (11, 1, 12, 'Cleo', 'Alpha'), (21, 2, 21, 'Dan', 'Beta');
INSERT INTO appointments (id, organization_id, professional_id, student_id, client_id,
                          starts_at, ends_at) VALUES
    (11, 1, 11, 11, 12, '2025-07-21 10:00+00', '2025-07-21 11:00+00'),
    (21, 2, 21, 21, 21, '2025-07-21 10:00+00', '2025-07-21 11:00+00');
INSERT INTO roles (id, organization_id, name) VALUES (11, 1, 'admin'), (21, 2, 'admin');
INSERT INTO user_roles (organization_id, user_id, role_id) VALUES (1, 11, 11);
INSERT INTO credit_balances (id, organization_id, user_id, balance) VALUES (11, 1, 12, 5), (21, 2, 21, 5);
INSERT INTO availability_rules (professional_id, organization_id, day_of_week, start_time, end_time)
    VALUES (11, 1, 1, '09:00', '12:00');
INSERT INTO time_slots (professional_id, organization_id, date, start_time, end_time) VALUES
    (11, 1, '2025-07-21', '09:00', '10:00');
"""  # noqa: E501


def _like(organization: int, user: int, post: int) -> str:
    return (
        "INSERT INTO likes (organization_id, user_id, post_id, created_at, updated_at) "
        f"VALUES ({organization}, {user}, {post}, now(), now())"
    )


def _appointment(organization: int, professional: int, student: str, client: int) -> str:
    return (
        "INSERT INTO appointments (organization_id, professional_id, student_id, client_id, "
        "starts_at, ends_at) "
        f"VALUES ({organization}, {professional}, {student}, {client}, "
        "'2025-07-22 10:00+00', '2025-07-22 11:00+00')"
    )


def _transaction(
    *,
    user: int = 12,
    balance: int = 11,
    appointment: str = "NULL",
    amount: int = 3,
    kind: str = "purchase",
    status: str = "pending",
) -> str:
    return (
        "INSERT INTO credit_transactions (organization_id, user_id, credit_balance_id, "
        "appointment_id, amount, transaction_type, status) "
        f"VALUES (1, {user}, {balance}, {appointment}, {amount}, '{kind}', '{status}')"
    )


def _rule(
    professional: int = 11,
    day: int = 1,
    start: str = "13:00",
    end: str = "14:00",
    active: str = "true",
) -> str:
    return (
        "INSERT INTO availability_rules (professional_id, organization_id, day_of_week, "
        f"start_time, end_time, active) VALUES ({professional}, 1, {day}, '{start}', '{end}', "
        f"{active})"
    )


def _slot(
    *,
    professional: int = 11,
    start: str = "10:00",
    end: str = "11:00",
    appointment: str = "NULL",
    available: str = "true",
    day: str = "2025-07-21",
) -> str:
    return (
        "INSERT INTO time_slots (professional_id, organization_id, appointment_id, date, "
        f"start_time, end_time, available) VALUES ({professional}, 1, {appointment}, '{day}', "
        f"'{start}', '{end}', {available})"
    )


def _organization(subdomain: str, name: str = "Gamma", status: str = "active") -> str:
    return (
        "INSERT INTO organizations (name, subdomain, status) "
        f"VALUES ('{name}', '{subdomain}', '{status}')"
    )


def _user(organization: int = 1, email: str = "new@alpha.test", role: str = "client") -> str:
    return (
        "INSERT INTO users (organization_id, email, role, created_at, updated_at) "
        f"VALUES ({organization}, '{email}', '{role}', now(), now())"
    )


# A row of one tenant pointing at another tenant's row, for every composite foreign key.
CROSS_TENANT = [
    pytest.param(_like(1, 21, 11), "fk_likes_user", id="like-of-other-tenants-user"),
    pytest.param(_like(1, 11, 21), "fk_likes_post", id="like-of-other-tenants-post"),
    pytest.param(
        "INSERT INTO students (organization_id, guardian_id, first_name, last_name) "
        "VALUES (1, 21, 'Eve', 'Alpha')",
        "fk_students_guardian",
        id="student-with-other-tenants-guardian",
    ),
    pytest.param(
        "INSERT INTO professionals (organization_id, user_id) VALUES (1, 21)",
        "fk_professionals_user",
        id="professional-is-other-tenants-user",
    ),
    pytest.param(
        _appointment(1, 21, "11", 12),
        "fk_appointments_professional",
        id="appointment-with-other-tenants-professional",
    ),
    pytest.param(
        _appointment(1, 11, "21", 12),
        "fk_appointments_student",
        id="appointment-for-other-tenants-student",
    ),
    pytest.param(
        _appointment(1, 11, "11", 21),
        "fk_appointments_client",
        id="appointment-for-other-tenants-client",
    ),
    pytest.param(
        "INSERT INTO user_roles (organization_id, user_id, role_id) VALUES (1, 21, 11)",
        "fk_user_roles_user",
        id="role-given-to-other-tenants-user",
    ),
    pytest.param(
        "INSERT INTO user_roles (organization_id, user_id, role_id) VALUES (1, 12, 21)",
        "fk_user_roles_role",
        id="other-tenants-role-given",
    ),
    pytest.param(
        "INSERT INTO credit_balances (organization_id, user_id) VALUES (1, 21)",
        "fk_credit_balances_user",
        id="balance-of-other-tenants-user",
    ),
    pytest.param(
        _transaction(user=21), "fk_credit_transactions_user", id="transaction-of-other-tenants-user"
    ),
    pytest.param(
        _transaction(balance=21),
        "fk_credit_transactions_credit_balance",
        id="transaction-on-other-tenants-balance",
    ),
    pytest.param(
        _transaction(appointment="21", amount=-1, kind="appointment_debit"),
        "fk_credit_transactions_appointment",
        id="transaction-for-other-tenants-appointment",
    ),
    pytest.param(
        _rule(professional=21),
        "fk_availability_rules_professional",
        id="rule-of-other-tenants-professional",
    ),
    pytest.param(
        _slot(professional=21),
        "fk_time_slots_professional",
        id="slot-of-other-tenants-professional",
    ),
    pytest.param(
        _slot(appointment="21", available="false"),
        "fk_time_slots_appointment",
        id="slot-booked-by-other-tenants-appointment",
    ),
]

REJECTED = [
    # Vocabularies and states.
    pytest.param(
        _transaction(kind="gift"), "chk_valid_transaction_type", id="unknown-transaction-type"
    ),
    pytest.param(
        _transaction(status="done"), "chk_credit_transactions_status", id="unknown-tx-status"
    ),
    pytest.param(_organization("gamma", status="deleted"), "chk_organizations_status",
                 id="unknown-organization-status"),
    pytest.param(
        "UPDATE students SET state = 'enrolled' WHERE id = 11", "chk_students_state",
        id="unknown-student-state",
    ),
    pytest.param(
        "UPDATE appointments SET state = 'booked' WHERE id = 11", "chk_appointments_state",
        id="unknown-appointment-state",
    ),
    pytest.param(_user(role="owner"), "chk_users_role", id="unknown-user-role"),
    # Amount signs.
    pytest.param(_transaction(amount=-3), "chk_credit_transactions_amount_sign",
                 id="negative-purchase"),
    pytest.param(_transaction(amount=0), "chk_credit_transactions_amount_sign",
                 id="zero-purchase"),
    pytest.param(_transaction(amount=-3, kind="cancellation_refund"),
                 "chk_credit_transactions_amount_sign", id="negative-refund"),
    pytest.param(_transaction(amount=3, kind="appointment_debit"),
                 "chk_credit_transactions_amount_sign", id="positive-debit"),
    pytest.param(_transaction(amount=0, kind="admin_adjustment"),
                 "chk_credit_transactions_amount_sign", id="zero-adjustment"),
    # Money and counters.
    pytest.param("UPDATE credit_balances SET balance = -1 WHERE id = 11",
                 "chk_credit_balances_balance_non_negative", id="negative-balance"),
    pytest.param("UPDATE credit_balances SET lifetime_purchased = -1 WHERE id = 11",
                 "chk_credit_balances_lifetime_purchased_non_negative",
                 id="negative-lifetime-purchased"),
    pytest.param("UPDATE credit_balances SET lifetime_used = -1 WHERE id = 11",
                 "chk_credit_balances_lifetime_used_non_negative", id="negative-lifetime-used"),
    pytest.param("UPDATE appointments SET price_cents = -1 WHERE id = 11",
                 "chk_appointments_price_non_negative", id="negative-appointment-price"),
    pytest.param("UPDATE appointments SET currency = 'ars' WHERE id = 11",
                 "chk_appointments_currency_format", id="lower-case-appointment-currency"),
    pytest.param("UPDATE appointments SET duration_minutes = 0 WHERE id = 11",
                 "chk_appointments_duration_positive", id="zero-appointment-duration"),
    pytest.param("UPDATE appointments SET ends_at = starts_at WHERE id = 11",
                 "chk_appointments_time_order", id="appointment-ends-when-it-starts"),
    pytest.param("UPDATE professionals SET session_duration_minutes = 0 WHERE id = 11",
                 "chk_professionals_session_duration_positive", id="zero-session-duration"),
    pytest.param("UPDATE professionals SET buffer_minutes = -5 WHERE id = 11",
                 "chk_professionals_buffer_non_negative", id="negative-buffer"),
    pytest.param("UPDATE professionals SET session_price_cents = -1 WHERE id = 11",
                 "chk_professionals_price_non_negative", id="negative-session-price"),
    pytest.param("UPDATE professionals SET currency = 'usd' WHERE id = 11",
                 "chk_professionals_currency_format", id="lower-case-professional-currency"),
    # Organizations.
    pytest.param(_organization("Gamma"), "chk_organizations_subdomain_format",
                 id="upper-case-subdomain"),
    pytest.param(_organization("-gamma"), "chk_organizations_subdomain_format",
                 id="subdomain-starting-with-hyphen"),
    pytest.param(_organization("gamma-"), "chk_organizations_subdomain_format",
                 id="subdomain-ending-with-hyphen"),
    pytest.param(_organization("gam_ma"), "chk_organizations_subdomain_format",
                 id="subdomain-with-underscore"),
    pytest.param(_organization("gam.ma"), "chk_organizations_subdomain_format",
                 id="subdomain-with-dot"),
    pytest.param(_organization(""), "chk_organizations_subdomain_format", id="empty-subdomain"),
    pytest.param(_organization("g" * 64), "chk_organizations_subdomain_format",
                 id="subdomain-longer-than-a-dns-label"),
    pytest.param(_organization("gamma", name="   "), "chk_organizations_name_present",
                 id="blank-organization-name"),
    pytest.param(_organization("alpha"), "index_organizations_on_subdomain",
                 id="duplicate-subdomain"),
    # Weekly availability.
    pytest.param(_rule(day=7), "chk_valid_day_of_week", id="day-of-week-7"),
    pytest.param(_rule(day=-1), "chk_valid_day_of_week", id="day-of-week-minus-1"),
    pytest.param(_rule(start="14:00", end="13:00"), "chk_availability_rules_time_order",
                 id="rule-ending-before-it-starts"),
    pytest.param(_rule(start="11:00", end="13:00"), "excl_availability_rules_no_overlap",
                 id="overlapping-active-rules"),
    pytest.param(_rule(start="10:00", end="11:00"), "excl_availability_rules_no_overlap",
                 id="rule-inside-another"),
    # Time slots.
    pytest.param(_slot(start="09:00", end="09:30"), "idx_unique_time_slot",
                 id="duplicate-slot-start"),
    pytest.param(_slot(start="09:30", end="10:30"), "excl_time_slots_no_overlap",
                 id="overlapping-slot"),
    pytest.param(_slot(start="08:00", end="11:00"), "excl_time_slots_no_overlap",
                 id="slot-around-another"),
    pytest.param(_slot(start="11:00", end="10:00"), "chk_time_slots_time_order",
                 id="slot-ending-before-it-starts"),
    pytest.param(_slot(appointment="11", available="true"), "chk_time_slots_booked_not_available",
                 id="booked-slot-still-available"),
    pytest.param(
        "UPDATE time_slots SET appointment_id = 11, available = false WHERE professional_id = 11;"
        + _slot(appointment="11", available="false"),
        "index_time_slots_on_organization_id_and_appointment_id",
        id="two-slots-for-one-appointment",
    ),
    # Uniqueness within a tenant.
    pytest.param(_user(email="ana@alpha.test"), "index_users_on_organization_id_and_email",
                 id="duplicate-email-in-tenant"),
    pytest.param(
        "UPDATE users SET jti = (SELECT jti FROM users WHERE id = 11) WHERE id = 12",
        "index_users_on_jti", id="duplicate-jti",
    ),
    pytest.param(
        "UPDATE users SET reset_password_token = 't' WHERE id IN (11, 12)",
        "index_users_on_reset_password_token", id="duplicate-reset-password-token",
    ),
    pytest.param("INSERT INTO professionals (organization_id, user_id) VALUES (1, 11)",
                 "index_professionals_on_organization_id_and_user_id",
                 id="second-professional-row-for-a-user"),
    pytest.param("INSERT INTO roles (organization_id, name) VALUES (1, 'admin')",
                 "index_roles_on_organization_id_and_name", id="duplicate-role-name"),
    pytest.param("INSERT INTO user_roles (organization_id, user_id, role_id) VALUES (1, 11, 11)",
                 "index_user_roles_on_organization_id_and_user_id_and_role_id",
                 id="role-given-twice"),
    pytest.param("INSERT INTO credit_balances (organization_id, user_id) VALUES (1, 12)",
                 "idx_unique_user_credit_balance", id="second-balance-for-a-user"),
    # Organization references.
    pytest.param(_user(organization=99), "fk_users_organization", id="user-of-missing-tenant"),
    pytest.param(
        "INSERT INTO posts (organization_id, created_at, updated_at) VALUES (99, now(), now())",
        "fk_posts_organization", id="post-of-missing-tenant",
    ),
    pytest.param("DELETE FROM organizations WHERE id = 2", "fk_users_organization",
                 id="tenant-with-rows-cannot-be-deleted"),
]  # fmt: skip

ACCEPTED = [
    pytest.param(_slot(start="10:00", end="11:00"), id="adjacent-slot-after"),
    pytest.param(_slot(start="08:00", end="09:00"), id="adjacent-slot-before"),
    pytest.param(_slot(professional=12, start="09:00", end="10:00"), id="same-slot-other-pro"),
    pytest.param(_slot(start="09:00", end="10:00", day="2025-07-22"), id="same-slot-other-day"),
    pytest.param(_rule(start="12:00", end="14:00"), id="adjacent-rule"),
    pytest.param(_rule(start="10:00", end="11:00", active="false"), id="overlapping-inactive-rule"),
    pytest.param(_rule(start="10:00", end="11:00", day=2), id="same-hours-other-day"),
    pytest.param(_rule(professional=12, start="10:00", end="11:00"), id="same-hours-other-pro"),
    pytest.param(_user(organization=2, email="ana@alpha.test"), id="same-email-other-tenant"),
    pytest.param(
        "INSERT INTO users (organization_id, created_at, updated_at) VALUES "
        "(1, now(), now()), (1, now(), now())",
        id="several-users-without-email",
    ),
    pytest.param(_transaction(amount=-2, kind="admin_adjustment"), id="negative-adjustment"),
    pytest.param(_transaction(amount=2, kind="admin_adjustment"), id="positive-adjustment"),
    pytest.param(_transaction(amount=2, kind="cancellation_refund"), id="refund"),
    pytest.param(_transaction(amount=-1, kind="appointment_debit", appointment="11"), id="debit"),
    pytest.param(_appointment(1, 11, "NULL", 12), id="appointment-without-student"),
    pytest.param(_slot(appointment="11", available="false"), id="booked-slot"),
    pytest.param(_organization("g" * 63), id="subdomain-of-63-characters"),
    pytest.param(_organization("a1-b2"), id="subdomain-with-digits-and-hyphen"),
]  # fmt: skip


@pytest.fixture
def seeded(migrated_engine: Engine) -> Iterator[Connection]:
    with migrated_engine.connect() as connection:
        connection.begin()
        for statement in SEED.split(";"):
            if statement.strip():
                connection.execute(text(statement))
        try:
            yield connection
        finally:
            connection.rollback()


def _run(connection: Connection, sql: str) -> None:
    for statement in sql.split(";"):
        connection.execute(text(statement))


def _violated_constraint(error: DBAPIError) -> str | None:
    assert isinstance(error.orig, psycopg.Error)
    return error.orig.diag.constraint_name


@pytest.mark.parametrize(("sql", "constraint"), CROSS_TENANT + REJECTED)
def test_constraint_rejects(seeded: Connection, sql: str, constraint: str) -> None:
    with pytest.raises(DBAPIError) as raised:
        _run(seeded, sql)
    assert _violated_constraint(raised.value) == constraint, raised.value.orig


@pytest.mark.parametrize("sql", ACCEPTED)
def test_constraint_accepts(seeded: Connection, sql: str) -> None:
    _run(seeded, sql)


def test_every_composite_foreign_key_has_a_cross_tenant_case(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as connection:
        composite = set(
            connection.scalars(
                text(
                    "SELECT conname FROM pg_constraint "
                    "WHERE contype = 'f' AND cardinality(conkey) > 1 "
                    "AND connamespace = 'public'::regnamespace"
                )
            )
        )
    assert composite == {case.values[1] for case in CROSS_TENANT}


def test_user_roles_go_with_their_user_and_their_role(seeded: Connection) -> None:
    _run(
        seeded,
        "INSERT INTO users (id, organization_id, created_at, updated_at) "
        "VALUES (13, 1, now(), now());"
        "INSERT INTO roles (id, organization_id, name) VALUES (12, 1, 'staff');"
        "INSERT INTO user_roles (organization_id, user_id, role_id) "
        "VALUES (1, 13, 11), (1, 12, 12);"
        "DELETE FROM users WHERE id = 13;"
        "DELETE FROM roles WHERE id = 12",
    )
    remaining = seeded.execute(text("SELECT user_id, role_id FROM user_roles")).all()
    assert [tuple(row) for row in remaining] == [(11, 11)]
