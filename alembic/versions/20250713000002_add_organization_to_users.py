"""Add organization_id to users: existing users go to the default organization.

Online-safe on a large, busy users table, and no row is rewritten: the column is added with the
default organization's id as a constant default (kept in the catalog, so every existing row reads
it) and the default is dropped at once. A trigger gives the rows the old MyHub application still
inserts without an organization to the default organization while legacy writes are on; the
schema `rayces_compat`, created here, remembers which organization that is. The column is made
NOT NULL through a validated CHECK, and its foreign key and the `(organization_id, id)` unique
key are added without long locks. Timestamps become timestamptz without a rewrite. Each step is
recorded in the step journal (`rayces.migrations.journal`), so an interrupted run is resumed or
undone exactly.

Revision ID: 20250713000002
Revises: 20250713000001
Create Date: 2025-07-13 00:00:02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from rayces.migrations.journal import RevisionSteps
from rayces.migrations.online_operations import (
    DEFAULT_ORGANIZATION_TABLE,
    DEFAULT_ORGANIZATION_VALUE,
    add_foreign_key_then_validate,
    add_organization_column,
    add_unique_constraint_using_index,
    backfill_in_batches_if_needed,
    configured_default_organization,
    create_compatibility_schema,
    drop_compatibility_schema,
    drop_organization_column,
    drop_unique_constraint_and_index,
    remember_default_organization,
    set_not_null_without_long_lock,
    timestamps_to_timestamptz,
    timestamptz_to_timestamps,
)

revision: str = "20250713000002"
down_revision: str | None = "20250713000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = ("column users.organization_id",)

#: Rows holding in a dropped column the value this upgrade gives every row (the remembered default
#: organization) are the upgrade's own, whoever wrote them last: the rollback after a failed run
#: drops them without `--allow-data-loss` (`rayces.migrations.data_loss`).
upgrade_values: dict[str, str] = {"column users.organization_id": DEFAULT_ORGANIZATION_VALUE}


def upgrade() -> None:
    organization = configured_default_organization()
    steps = RevisionSteps(revision, "upgrade")

    def add_column() -> None:
        create_compatibility_schema()
        remember_default_organization(organization, for_table="users")
        add_organization_column("users")
        timestamps_to_timestamptz("users", ["created_at", "updated_at"])

    def backfill() -> None:
        # Only the rows the column default did not cover: a column that existed before this
        # revision, or rows written while no default organization was remembered yet.
        remember_default_organization(organization, for_table="users")
        backfill_in_batches_if_needed(
            "users",
            f"organization_id = (SELECT organization_id FROM {DEFAULT_ORGANIZATION_TABLE})",
            where="users.organization_id IS NULL",
            needed_if="EXISTS (SELECT 1 FROM users WHERE organization_id IS NULL)",
        )

    steps.step("add_column", add_column)
    with op.get_context().autocommit_block():
        steps.step("backfill", backfill)
        steps.step(
            "not_null",
            lambda: set_not_null_without_long_lock("users", "organization_id", lock_retries=True),
        )
        steps.step(
            "foreign_key",
            lambda: add_foreign_key_then_validate(
                "fk_users_organization",
                "users",
                ["organization_id"],
                "organizations",
                ["id"],
                lock_retries=True,
            ),
        )
        steps.step(
            "unique_key",
            lambda: add_unique_constraint_using_index(
                "uq_users_organization_id_id", "users", ["organization_id", "id"], lock_retries=True
            ),
        )
    steps.finish()


def downgrade() -> None:
    # One transaction of catalog changes. Each statement also copes with an upgrade that stopped
    # part-way: this is how `rollback` undoes one.
    steps = RevisionSteps(revision, "downgrade")

    def drop_keys() -> None:
        drop_unique_constraint_and_index("uq_users_organization_id_id", "users")
        op.execute("ALTER TABLE users DROP CONSTRAINT IF EXISTS fk_users_organization")

    def drop_column() -> None:
        drop_organization_column("users")
        timestamptz_to_timestamps("users", ["created_at", "updated_at"])

    steps.step("drop_keys", drop_keys)
    steps.step("drop_column", drop_column)
    steps.step("drop_compatibility_schema", drop_compatibility_schema)
    steps.finish()
