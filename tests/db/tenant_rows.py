"""One row in every tenant-owned table for an organization, written in plain SQL.

The isolation tests attack these rows from another tenant; they are written by the migrating
role (the table owner, which row-level security does not restrict) so that nothing of the
application layer is involved.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

TENANT_TABLES = (
    "users",
    "posts",
    "likes",
    "students",
    "professionals",
    "appointments",
    "roles",
    "user_roles",
    "credit_balances",
    "credit_transactions",
    "availability_rules",
    "time_slots",
)

# (child table, column, parent table): every composite tenant foreign key of the schema.
TENANT_REFERENCES = (
    ("likes", "user_id", "users"),
    ("likes", "post_id", "posts"),
    ("students", "guardian_id", "users"),
    ("professionals", "user_id", "users"),
    ("appointments", "professional_id", "professionals"),
    ("appointments", "student_id", "students"),
    ("appointments", "client_id", "users"),
    ("user_roles", "user_id", "users"),
    ("user_roles", "role_id", "roles"),
    ("credit_balances", "user_id", "users"),
    ("credit_transactions", "user_id", "users"),
    ("credit_transactions", "credit_balance_id", "credit_balances"),
    ("credit_transactions", "appointment_id", "appointments"),
    ("availability_rules", "professional_id", "professionals"),
    ("time_slots", "professional_id", "professionals"),
    ("time_slots", "appointment_id", "appointments"),
)


def create_organization(connection: Connection, subdomain: str) -> int:
    return int(
        connection.scalar(
            text(
                "INSERT INTO organizations (name, subdomain) VALUES (:name, :subdomain) "
                "RETURNING id"
            ),
            {"name": subdomain.title(), "subdomain": subdomain},
        )
    )


def create_tenant_rows(connection: Connection, organization_id: int) -> dict[str, int]:
    """One row per tenant-owned table (a client who is also the professional); table → id."""

    def insert(sql: str, **values: object) -> int:
        return int(connection.scalar(text(sql), {"org": organization_id, **values}))

    ids: dict[str, int] = {}
    ids["users"] = insert(
        "INSERT INTO users (organization_id, email, created_at, updated_at) "
        "VALUES (:org, 'u' || :org || '@example.com', now(), now()) RETURNING id"
    )
    ids["posts"] = insert(
        "INSERT INTO posts (organization_id, filename, created_at, updated_at) "
        "VALUES (:org, 'p.jpg', now(), now()) RETURNING id"
    )
    ids["likes"] = insert(
        "INSERT INTO likes (organization_id, user_id, post_id, created_at, updated_at) "
        "VALUES (:org, :user, :post, now(), now()) RETURNING id",
        user=ids["users"],
        post=ids["posts"],
    )
    ids["students"] = insert(
        "INSERT INTO students (organization_id, guardian_id, first_name, last_name) "
        "VALUES (:org, :user, 'Ana', 'Ruiz') RETURNING id",
        user=ids["users"],
    )
    ids["professionals"] = insert(
        "INSERT INTO professionals (organization_id, user_id) VALUES (:org, :user) RETURNING id",
        user=ids["users"],
    )
    ids["appointments"] = insert(
        "INSERT INTO appointments (organization_id, professional_id, student_id, client_id, "
        "starts_at, ends_at) VALUES (:org, :professional, :student, :user, "
        "'2030-01-07 10:00Z', '2030-01-07 11:00Z') RETURNING id",
        professional=ids["professionals"],
        student=ids["students"],
        user=ids["users"],
    )
    ids["roles"] = insert(
        "INSERT INTO roles (organization_id, name) VALUES (:org, 'admin') RETURNING id"
    )
    ids["user_roles"] = insert(
        "INSERT INTO user_roles (organization_id, user_id, role_id) "
        "VALUES (:org, :user, :role) RETURNING id",
        user=ids["users"],
        role=ids["roles"],
    )
    ids["credit_balances"] = insert(
        "INSERT INTO credit_balances (organization_id, user_id, balance, lifetime_purchased) "
        "VALUES (:org, :user, 5, 5) RETURNING id",
        user=ids["users"],
    )
    ids["credit_transactions"] = insert(
        "INSERT INTO credit_transactions (organization_id, user_id, credit_balance_id, "
        "appointment_id, amount, transaction_type, status, processed_at, payment_reference) "
        "VALUES (:org, :user, :balance, :appointment, 5, 'purchase', 'completed', now(), "
        "'pay-' || :org) RETURNING id",
        user=ids["users"],
        balance=ids["credit_balances"],
        appointment=ids["appointments"],
    )
    ids["availability_rules"] = insert(
        "INSERT INTO availability_rules (organization_id, professional_id, day_of_week, "
        "start_time, end_time) VALUES (:org, :professional, 1, '09:00', '12:00') RETURNING id",
        professional=ids["professionals"],
    )
    ids["time_slots"] = insert(
        "INSERT INTO time_slots (organization_id, professional_id, appointment_id, date, "
        "start_time, end_time, available) VALUES (:org, :professional, :appointment, "
        "'2030-01-07', '10:00', '11:00', false) RETURNING id",
        professional=ids["professionals"],
        appointment=ids["appointments"],
    )
    return ids
