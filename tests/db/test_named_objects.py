"""Every index and constraint at head exists under its design name, with the design's columns.

Also the index set's rules: every foreign key is covered by an index whose leading columns are
the key's columns, no index is a leading-prefix duplicate of another, every name is explicit
and at most 63 characters (PostgreSQL would silently truncate a longer one).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Connection, Engine, text

from rayces.migrations.online_operations import IDENTIFIER_MAX_LENGTH


@dataclass(frozen=True)
class ExpectedIndex:
    table: str
    name: str
    columns: tuple[str | None, ...]  # None: an expression (the exclusion constraints' ranges)
    unique: bool = False
    method: str = "btree"


def _index(table: str, name: str, *columns: str | None, unique: bool = False) -> ExpectedIndex:
    return ExpectedIndex(table, name, tuple(columns), unique)


def _gist(table: str, name: str, *columns: str | None) -> ExpectedIndex:
    return ExpectedIndex(table, name, tuple(columns), method="gist")


# The names the platform plan itself writes (as `name:` or as Rails' default for add_index).
PLAN_INDEXES = [
    _index("credit_balances", "idx_unique_user_credit_balance", "organization_id", "user_id",
           unique=True),
    _index("credit_balances", "idx_org_balance_lookup", "organization_id", "balance"),
    _index("credit_transactions", "idx_credit_trans_org_user_date",
           "organization_id", "user_id", "created_at"),
    _index("credit_transactions", "idx_credit_trans_org_status", "organization_id", "status"),
    _index("credit_transactions", "idx_credit_trans_payment_ref", "payment_reference"),
    _index("availability_rules", "idx_availability_lookup",
           "professional_id", "day_of_week", "active"),
    _index("availability_rules", "idx_org_availability", "organization_id", "active"),
    _index("time_slots", "idx_unique_time_slot", "professional_id", "date", "start_time",
           unique=True),
    _index("time_slots", "idx_available_slots", "professional_id", "date", "available"),
    _index("time_slots", "idx_org_date_slots", "organization_id", "date"),
    _index("users", "index_users_on_organization_id_and_role", "organization_id", "role"),
    _index("professionals", "index_professionals_on_organization_id_and_specialization",
           "organization_id", "specialization"),
]  # fmt: skip

# The rest of docs/schema-design.md: primary keys, tenant keys, FK-covering and unique indexes.
DESIGN_INDEXES = [
    *(
        _index(table, f"{table}_pkey", "id", unique=True)
        for table in (
            "organizations", "users", "posts", "likes", "students", "professionals",
            "appointments", "roles", "user_roles", "credit_balances", "credit_transactions",
            "availability_rules", "time_slots",
        )
    ),
    *(
        _index(table, f"uq_{table}_organization_id_id", "organization_id", "id", unique=True)
        for table in (
            "users", "posts", "students", "professionals", "appointments", "roles",
            "credit_balances",
        )
    ),
    _index("organizations", "index_organizations_on_subdomain", "subdomain", unique=True),
    _index("users", "index_users_on_organization_id_and_email", "organization_id", "email",
           unique=True),
    _index("users", "index_users_on_reset_password_token", "reset_password_token", unique=True),
    _index("users", "index_users_on_jti", "jti", unique=True),
    _index("likes", "index_likes_on_organization_id_and_user_id", "organization_id", "user_id"),
    _index("likes", "index_likes_on_organization_id_and_post_id", "organization_id", "post_id"),
    _index("students", "index_students_on_organization_id_and_guardian_id",
           "organization_id", "guardian_id"),
    _index("students", "index_students_on_organization_id_and_state", "organization_id", "state"),
    _index("professionals", "index_professionals_on_organization_id_and_user_id",
           "organization_id", "user_id", unique=True),
    _index("appointments", "index_appointments_on_org_id_and_professional_id_and_starts_at",
           "organization_id", "professional_id", "starts_at"),
    _index("appointments", "index_appointments_on_organization_id_and_student_id",
           "organization_id", "student_id"),
    _index("appointments", "index_appointments_on_organization_id_and_client_id",
           "organization_id", "client_id"),
    _index("appointments", "index_appointments_on_organization_id_and_state",
           "organization_id", "state"),
    _index("roles", "index_roles_on_organization_id_and_name", "organization_id", "name",
           unique=True),
    _index("user_roles", "index_user_roles_on_organization_id_and_user_id_and_role_id",
           "organization_id", "user_id", "role_id", unique=True),
    _index("user_roles", "index_user_roles_on_organization_id_and_role_id",
           "organization_id", "role_id"),
    _index("credit_transactions", "index_credit_transactions_on_org_id_and_credit_balance_id",
           "organization_id", "credit_balance_id"),
    _index("credit_transactions", "index_credit_transactions_on_org_id_and_appointment_id",
           "organization_id", "appointment_id"),
    _index("credit_transactions", "index_credit_transactions_on_org_id_and_payment_reference",
           "organization_id", "payment_reference", unique=True),
    _index("availability_rules", "index_availability_rules_on_org_id_and_professional_id",
           "organization_id", "professional_id"),
    _gist("availability_rules", "excl_availability_rules_no_overlap",
          "organization_id", "professional_id", "day_of_week", None),
    _index("time_slots", "index_time_slots_on_organization_id_and_appointment_id",
           "organization_id", "appointment_id", unique=True),
    _gist("time_slots", "excl_time_slots_no_overlap", "organization_id", "professional_id", None),
]  # fmt: skip

EXPECTED_INDEXES = PLAN_INDEXES + DESIGN_INDEXES


@dataclass(frozen=True)
class ExpectedConstraint:
    table: str
    name: str
    kind: str  # pg_constraint.contype: c check, f foreign key, u unique, x exclusion
    columns: tuple[str, ...] = ()
    referred: str | None = None
    referred_columns: tuple[str, ...] = ()
    on_delete: str = "a"  # pg_constraint.confdeltype: a no action, c cascade


def _check(table: str, name: str) -> ExpectedConstraint:
    return ExpectedConstraint(table, name, "c")


def _tenant_fk(
    table: str, name: str, column: str, referred: str, on_delete: str = "a"
) -> ExpectedConstraint:
    return ExpectedConstraint(
        table, name, "f", ("organization_id", column), referred, ("organization_id", "id"),
        on_delete,
    )  # fmt: skip


TENANT_TABLES = (
    "users", "posts", "likes", "students", "professionals", "appointments", "roles",
    "user_roles", "credit_balances", "credit_transactions", "availability_rules", "time_slots",
)  # fmt: skip

EXPECTED_CONSTRAINTS = [
    # The plan's own names.
    _check("credit_transactions", "chk_valid_transaction_type"),
    _check("availability_rules", "chk_valid_day_of_week"),
    # Every tenant-owned table belongs to an organization.
    *(
        ExpectedConstraint(
            table, f"fk_{table}_organization", "f", ("organization_id",), "organizations", ("id",)
        )
        for table in TENANT_TABLES
    ),
    *(
        ExpectedConstraint(table, f"uq_{table}_organization_id_id", "u", ("organization_id", "id"))
        for table in (
            "users", "posts", "students", "professionals", "appointments", "roles",
            "credit_balances",
        )
    ),
    _tenant_fk("likes", "fk_likes_user", "user_id", "users"),
    _tenant_fk("likes", "fk_likes_post", "post_id", "posts"),
    _tenant_fk("students", "fk_students_guardian", "guardian_id", "users"),
    _tenant_fk("professionals", "fk_professionals_user", "user_id", "users"),
    _tenant_fk("appointments", "fk_appointments_professional", "professional_id", "professionals"),
    _tenant_fk("appointments", "fk_appointments_student", "student_id", "students"),
    _tenant_fk("appointments", "fk_appointments_client", "client_id", "users"),
    _tenant_fk("user_roles", "fk_user_roles_user", "user_id", "users", on_delete="c"),
    _tenant_fk("user_roles", "fk_user_roles_role", "role_id", "roles", on_delete="c"),
    _tenant_fk("credit_balances", "fk_credit_balances_user", "user_id", "users"),
    _tenant_fk("credit_transactions", "fk_credit_transactions_user", "user_id", "users"),
    _tenant_fk("credit_transactions", "fk_credit_transactions_credit_balance",
               "credit_balance_id", "credit_balances"),
    _tenant_fk("credit_transactions", "fk_credit_transactions_appointment",
               "appointment_id", "appointments"),
    _tenant_fk("availability_rules", "fk_availability_rules_professional",
               "professional_id", "professionals"),
    _tenant_fk("time_slots", "fk_time_slots_professional", "professional_id", "professionals"),
    _tenant_fk("time_slots", "fk_time_slots_appointment", "appointment_id", "appointments"),
    _check("organizations", "chk_organizations_status"),
    _check("organizations", "chk_organizations_subdomain_format"),
    _check("organizations", "chk_organizations_name_present"),
    _check("users", "chk_users_role"),
    _check("students", "chk_students_state"),
    _check("appointments", "chk_appointments_state"),
    _check("appointments", "chk_appointments_time_order"),
    _check("appointments", "chk_appointments_price_non_negative"),
    _check("appointments", "chk_appointments_currency_format"),
    _check("appointments", "chk_appointments_duration_positive"),
    _check("professionals", "chk_professionals_session_duration_positive"),
    _check("professionals", "chk_professionals_buffer_non_negative"),
    _check("professionals", "chk_professionals_price_non_negative"),
    _check("professionals", "chk_professionals_currency_format"),
    _check("credit_balances", "chk_credit_balances_balance_non_negative"),
    _check("credit_balances", "chk_credit_balances_lifetime_purchased_non_negative"),
    _check("credit_balances", "chk_credit_balances_lifetime_used_non_negative"),
    _check("credit_transactions", "chk_credit_transactions_status"),
    _check("credit_transactions", "chk_credit_transactions_amount_sign"),
    _check("availability_rules", "chk_availability_rules_time_order"),
    _check("time_slots", "chk_time_slots_time_order"),
    _check("time_slots", "chk_time_slots_booked_not_available"),
    ExpectedConstraint("availability_rules", "excl_availability_rules_no_overlap", "x"),
    ExpectedConstraint("time_slots", "excl_time_slots_no_overlap", "x"),
]  # fmt: skip


@dataclass(frozen=True)
class ActualIndex:
    table: str
    name: str
    columns: tuple[str | None, ...]
    unique: bool
    method: str
    partial: bool
    valid: bool
    backs_constraint: bool


_INDEXES = text(
    """
    SELECT t.relname, i.relname,
           (SELECT array_agg(a.attname ORDER BY k.position)
              FROM unnest(x.indkey[0:x.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, position)
              LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum),
           x.indisunique, am.amname, x.indpred IS NOT NULL, x.indisvalid,
           EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid
                                                   AND c.conrelid = x.indrelid)
      FROM pg_index x
      JOIN pg_class i ON i.oid = x.indexrelid
      JOIN pg_class t ON t.oid = x.indrelid
      JOIN pg_am am ON am.oid = i.relam
     WHERE t.relnamespace = 'public'::regnamespace AND t.relname <> 'alembic_version'
    """
)

_CONSTRAINTS = text(
    """
    SELECT c.relname, con.conname, con.contype::text,
           coalesce((SELECT array_agg(a.attname ORDER BY k.position)
                       FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, position)
                       JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum),
                    '{}'),
           r.relname,
           coalesce((SELECT array_agg(a.attname ORDER BY k.position)
                       FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, position)
                       JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum),
                    '{}'),
           con.confdeltype::text, con.convalidated
      FROM pg_constraint con
      JOIN pg_class c ON c.oid = con.conrelid
      LEFT JOIN pg_class r ON r.oid = con.confrelid
     WHERE con.connamespace = 'public'::regnamespace AND c.relname <> 'alembic_version'
       AND con.contype <> 'n'
    """
)


@pytest.fixture(scope="module")
def connection(migrated_engine: Engine) -> Iterator[Connection]:
    with migrated_engine.connect() as connection:
        yield connection


@pytest.fixture(scope="module")
def indexes(connection: Connection) -> dict[str, ActualIndex]:
    return {
        row[1]: ActualIndex(row[0], row[1], tuple(row[2]), *row[3:])
        for row in connection.execute(_INDEXES)
    }


@pytest.fixture(scope="module")
def constraints(connection: Connection) -> dict[str, tuple[ExpectedConstraint, bool]]:
    actual = {}
    for row in connection.execute(_CONSTRAINTS):
        table, name, kind, key_columns, referred, referred_columns, on_delete, valid = row
        if kind == "p":
            continue
        if kind != "f":
            # Checks and exclusions are compared by name; unique keys by their columns too.
            key_columns = key_columns if kind == "u" else []
            referred_columns, on_delete = [], "a"
        actual[name] = (
            ExpectedConstraint(
                table, name, kind, tuple(key_columns), referred, tuple(referred_columns), on_delete
            ),
            valid,
        )
    return actual


@pytest.mark.parametrize("expected", EXPECTED_INDEXES, ids=lambda index: index.name)
def test_index_exists_with_its_columns(
    indexes: dict[str, ActualIndex], expected: ExpectedIndex
) -> None:
    assert expected.name in indexes, f"index {expected.name} is missing"
    actual = indexes[expected.name]
    assert (actual.table, actual.columns, actual.unique, actual.method) == (
        expected.table,
        expected.columns,
        expected.unique,
        expected.method,
    )
    assert actual.valid


def test_no_index_beyond_the_design(indexes: dict[str, ActualIndex]) -> None:
    assert set(indexes) - {index.name for index in EXPECTED_INDEXES} == set()


@pytest.mark.parametrize("expected", EXPECTED_CONSTRAINTS, ids=lambda constraint: constraint.name)
def test_constraint_exists_and_is_validated(
    constraints: dict[str, tuple[ExpectedConstraint, bool]], expected: ExpectedConstraint
) -> None:
    assert expected.name in constraints, f"constraint {expected.name} is missing"
    actual, valid = constraints[expected.name]
    assert actual == expected
    assert valid, f"{expected.name} was left NOT VALID"


def test_no_constraint_beyond_the_design(
    constraints: dict[str, tuple[ExpectedConstraint, bool]],
) -> None:
    assert set(constraints) - {constraint.name for constraint in EXPECTED_CONSTRAINTS} == set()


def test_every_foreign_key_is_covered_by_an_index(
    indexes: dict[str, ActualIndex], constraints: dict[str, tuple[ExpectedConstraint, bool]]
) -> None:
    uncovered = []
    for constraint, _ in constraints.values():
        if constraint.kind != "f":
            continue
        key = set(constraint.columns)
        covering = [
            index.name
            for index in indexes.values()
            if index.table == constraint.table
            and not index.partial
            and set(index.columns[: len(key)]) == key
        ]
        if not covering:
            uncovered.append(constraint.name)
    assert uncovered == []


def test_no_index_is_a_leading_prefix_of_another(indexes: dict[str, ActualIndex]) -> None:
    redundant = [
        (index.name, other.name)
        for index in indexes.values()
        for other in indexes.values()
        if index.name != other.name
        and index.table == other.table
        and index.method == other.method
        and not index.unique
        and not index.backs_constraint
        and not index.partial
        and other.columns[: len(index.columns)] == index.columns
    ]
    assert redundant == []


def test_every_name_is_explicit_and_fits(
    indexes: dict[str, ActualIndex], constraints: dict[str, tuple[ExpectedConstraint, bool]]
) -> None:
    expected = {index.name for index in EXPECTED_INDEXES} | {
        constraint.name for constraint in EXPECTED_CONSTRAINTS
    }
    assert all(len(name) <= IDENTIFIER_MAX_LENGTH for name in expected)
    # A truncated name would differ from the design's, so equality proves none was truncated.
    assert set(indexes) | set(constraints) == expected
