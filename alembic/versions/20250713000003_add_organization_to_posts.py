"""Add organization_id to posts: existing posts go to the default organization.

The same steps as users (20250713000002), with the default organization 20250713000002
remembered, whatever options this run was given: no row is rewritten, the old application's
inserts go to the default organization, and each step is recorded in the step journal.

Revision ID: 20250713000003
Revises: 20250713000002
Create Date: 2025-07-13 00:00:03
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
    drop_organization_column,
    drop_unique_constraint_and_index,
    remember_default_organization,
    set_not_null_without_long_lock,
    timestamps_to_timestamptz,
    timestamptz_to_timestamps,
)

revision: str = "20250713000003"
down_revision: str | None = "20250713000002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = ("column posts.organization_id",)

#: Rows holding in a dropped column the value this upgrade gives every row (the remembered default
#: organization) are the upgrade's own, whoever wrote them last: the rollback after a failed run
#: drops them without `--allow-data-loss` (`rayces.migrations.data_loss`).
upgrade_values: dict[str, str] = {"column posts.organization_id": DEFAULT_ORGANIZATION_VALUE}


def upgrade() -> None:
    organization = configured_default_organization()
    steps = RevisionSteps(revision, "upgrade")

    def add_column() -> None:
        create_compatibility_schema()  # a no-op unless 20250713000002 ran before it had one
        remember_default_organization(organization, for_table="posts")
        add_organization_column("posts")
        timestamps_to_timestamptz("posts", ["created_at", "updated_at"])

    def backfill() -> None:
        # Only the rows the column default did not cover: a column that existed before this
        # revision, or rows written while no default organization was remembered yet.
        remember_default_organization(organization, for_table="posts")
        backfill_in_batches_if_needed(
            "posts",
            f"organization_id = (SELECT organization_id FROM {DEFAULT_ORGANIZATION_TABLE})",
            where="posts.organization_id IS NULL",
            needed_if="EXISTS (SELECT 1 FROM posts WHERE organization_id IS NULL)",
        )

    steps.step("add_column", add_column)
    with op.get_context().autocommit_block():
        steps.step("backfill", backfill)
        steps.step(
            "not_null",
            lambda: set_not_null_without_long_lock("posts", "organization_id", lock_retries=True),
        )
        steps.step(
            "foreign_key",
            lambda: add_foreign_key_then_validate(
                "fk_posts_organization",
                "posts",
                ["organization_id"],
                "organizations",
                ["id"],
                lock_retries=True,
            ),
        )
        steps.step(
            "unique_key",
            lambda: add_unique_constraint_using_index(
                "uq_posts_organization_id_id", "posts", ["organization_id", "id"], lock_retries=True
            ),
        )
    steps.finish()


def downgrade() -> None:
    # One transaction of catalog changes. Each statement also copes with an upgrade that stopped
    # part-way: this is how `rollback` undoes one.
    steps = RevisionSteps(revision, "downgrade")

    def drop_keys() -> None:
        drop_unique_constraint_and_index("uq_posts_organization_id_id", "posts")
        op.execute("ALTER TABLE posts DROP CONSTRAINT IF EXISTS fk_posts_organization")

    def drop_column() -> None:
        drop_organization_column("posts")
        timestamptz_to_timestamps("posts", ["created_at", "updated_at"])

    steps.step("drop_keys", drop_keys)
    steps.step("drop_column", drop_column)
    steps.finish()
