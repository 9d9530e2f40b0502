"""Add the plan's missing fields to users, appointments and professionals, and users.role.

The plan indexes `users (organization_id, role)` without creating `role`: it is created here,
`NOT NULL DEFAULT 'client'` (a constant default: no rewrite) with a CHECK of the allowed roles.
New columns are nullable with the plan's defaults; the CHECKs guarding them are added
`NOT VALID` and validated outside the transaction, and the indexes are built concurrently, so
no table is locked for a scan.

Revision ID: 20250718000016
Revises: 20250718000015
Create Date: 2025-07-18 00:00:16
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from rayces.migrations.journal import RevisionSteps
from rayces.migrations.online_operations import (
    add_check_not_valid,
    create_index_concurrently,
    drop_index_concurrently,
    validate_constraint,
)

revision: str = "20250718000016"
down_revision: str | None = "20250718000015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = (
    "column professionals.currency",
    "column professionals.session_price_cents",
    "column professionals.accepts_new_clients",
    "column professionals.buffer_minutes",
    "column professionals.session_duration_minutes",
    "column professionals.blocked_dates",
    "column professionals.weekly_schedule",
    "column professionals.license_number",
    "column professionals.bio",
    "column professionals.specialization",
    "column professionals.title",
    "column appointments.uses_credit",
    "column appointments.cancellation_reason",
    "column appointments.cancelled_at",
    "column appointments.executed_at",
    "column appointments.confirmed_at",
    "column appointments.duration_minutes",
    "column users.role",
    "column users.phone",
    "column users.last_name",
    "column users.first_name",
)

# (constraint, table, condition)
_CHECKS = (
    ("chk_users_role", "users", "role IN ('admin', 'staff', 'professional', 'client')"),
    ("chk_appointments_duration_positive", "appointments", "duration_minutes > 0"),
    (
        "chk_professionals_session_duration_positive",
        "professionals",
        "session_duration_minutes > 0",
    ),
    ("chk_professionals_buffer_non_negative", "professionals", "buffer_minutes >= 0"),
    ("chk_professionals_price_non_negative", "professionals", "session_price_cents >= 0"),
    ("chk_professionals_currency_format", "professionals", "currency ~ '^[A-Z]{3}$'"),
)


def upgrade() -> None:
    steps = RevisionSteps(revision, "upgrade")

    def add_columns() -> None:
        op.execute(
            "ALTER TABLE users "
            "ADD COLUMN IF NOT EXISTS first_name varchar, "
            "ADD COLUMN IF NOT EXISTS last_name varchar, "
            "ADD COLUMN IF NOT EXISTS phone varchar, "
            "ADD COLUMN IF NOT EXISTS role varchar DEFAULT 'client' NOT NULL"
        )
        op.execute(
            "ALTER TABLE appointments "
            "ADD COLUMN IF NOT EXISTS duration_minutes integer DEFAULT 60, "
            "ADD COLUMN IF NOT EXISTS confirmed_at timestamp(6) with time zone, "
            "ADD COLUMN IF NOT EXISTS executed_at timestamp(6) with time zone, "
            "ADD COLUMN IF NOT EXISTS cancelled_at timestamp(6) with time zone, "
            "ADD COLUMN IF NOT EXISTS cancellation_reason varchar, "
            "ADD COLUMN IF NOT EXISTS uses_credit boolean DEFAULT false"
        )
        op.execute(
            "ALTER TABLE professionals "
            "ADD COLUMN IF NOT EXISTS title varchar, "
            "ADD COLUMN IF NOT EXISTS specialization varchar, "
            "ADD COLUMN IF NOT EXISTS bio text, "
            "ADD COLUMN IF NOT EXISTS license_number varchar, "
            "ADD COLUMN IF NOT EXISTS weekly_schedule jsonb DEFAULT '{}'::jsonb, "
            "ADD COLUMN IF NOT EXISTS blocked_dates jsonb DEFAULT '[]'::jsonb, "
            "ADD COLUMN IF NOT EXISTS session_duration_minutes integer DEFAULT 60, "
            "ADD COLUMN IF NOT EXISTS buffer_minutes integer DEFAULT 15, "
            "ADD COLUMN IF NOT EXISTS accepts_new_clients boolean DEFAULT true, "
            "ADD COLUMN IF NOT EXISTS session_price_cents integer, "
            "ADD COLUMN IF NOT EXISTS currency varchar DEFAULT 'ARS'"
        )
        for name, table, condition in _CHECKS:
            add_check_not_valid(name, table, condition)

    def validate_checks() -> None:
        for name, table, _ in _CHECKS:
            validate_constraint(name, table)

    steps.step("add_columns", add_columns)
    with op.get_context().autocommit_block():
        steps.step("validate_checks", validate_checks)
        steps.step(
            "users_role_index",
            lambda: create_index_concurrently(
                "index_users_on_organization_id_and_role", "users", ["organization_id", "role"]
            ),
        )
        steps.step(
            "professionals_specialization_index",
            lambda: create_index_concurrently(
                "index_professionals_on_organization_id_and_specialization",
                "professionals",
                ["organization_id", "specialization"],
            ),
        )
    steps.finish()


def downgrade() -> None:
    # Each step also copes with an upgrade that stopped part-way: this is how `rollback` undoes
    # one.
    steps = RevisionSteps(revision, "downgrade")
    with op.get_context().autocommit_block():
        steps.step(
            "drop_professionals_specialization_index",
            lambda: drop_index_concurrently(
                "index_professionals_on_organization_id_and_specialization"
            ),
        )
        steps.step(
            "drop_users_role_index",
            lambda: drop_index_concurrently("index_users_on_organization_id_and_role"),
        )
    steps.step("drop_columns", _drop_columns)
    steps.finish()


def _drop_columns() -> None:
    for name, table, _ in reversed(_CHECKS):
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
    op.execute(
        "ALTER TABLE professionals "
        "DROP COLUMN IF EXISTS currency, "
        "DROP COLUMN IF EXISTS session_price_cents, "
        "DROP COLUMN IF EXISTS accepts_new_clients, "
        "DROP COLUMN IF EXISTS buffer_minutes, "
        "DROP COLUMN IF EXISTS session_duration_minutes, "
        "DROP COLUMN IF EXISTS blocked_dates, "
        "DROP COLUMN IF EXISTS weekly_schedule, "
        "DROP COLUMN IF EXISTS license_number, "
        "DROP COLUMN IF EXISTS bio, "
        "DROP COLUMN IF EXISTS specialization, "
        "DROP COLUMN IF EXISTS title"
    )
    op.execute(
        "ALTER TABLE appointments "
        "DROP COLUMN IF EXISTS uses_credit, "
        "DROP COLUMN IF EXISTS cancellation_reason, "
        "DROP COLUMN IF EXISTS cancelled_at, "
        "DROP COLUMN IF EXISTS executed_at, "
        "DROP COLUMN IF EXISTS confirmed_at, "
        "DROP COLUMN IF EXISTS duration_minutes"
    )
    op.execute(
        "ALTER TABLE users "
        "DROP COLUMN IF EXISTS role, "
        "DROP COLUMN IF EXISTS phone, "
        "DROP COLUMN IF EXISTS last_name, "
        "DROP COLUMN IF EXISTS first_name"
    )
