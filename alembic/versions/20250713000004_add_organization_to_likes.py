"""Add organization_id to likes, taken from each like's user; tenant-scoped foreign keys.

When this runs, every user normally belongs to the default organization, so the column is added
with that organization's id as a constant default (kept in the catalog: no row is rewritten) and
the default is dropped at once; the old application's inserts get it through a trigger, as for
users and posts. Only when some user belongs to another organization are the likes corrected
from their users, in committed batches.

The single-column foreign keys to users and posts are replaced, under the same names, by
composite keys through `(organization_id, id)`: a like whose user and post belong to different
organizations cannot exist afterwards. Their indexes are replaced by `(organization_id, x_id)`
indexes, built concurrently before the old ones are dropped concurrently. Each step is recorded
in the step journal (`rayces.migrations.journal`).

Revision ID: 20250713000004
Revises: 20250713000003
Create Date: 2025-07-13 00:00:04
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
    backfill_in_batches_if_needed,
    create_compatibility_schema,
    create_index_concurrently,
    drop_index_concurrently,
    drop_organization_column,
    set_not_null_without_long_lock,
    timestamps_to_timestamptz,
    timestamptz_to_timestamps,
)

revision: str = "20250713000004"
down_revision: str | None = "20250713000003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = ("column likes.organization_id",)

#: Rows holding in a dropped column the value this upgrade gives every row (the remembered default
#: organization) are the upgrade's own, whoever wrote them last: the rollback after a failed run
#: drops them without `--allow-data-loss` (`rayces.migrations.data_loss`).
upgrade_values: dict[str, str] = {"column likes.organization_id": DEFAULT_ORGANIZATION_VALUE}


def upgrade() -> None:
    steps = RevisionSteps(revision, "upgrade")

    def add_column() -> None:
        create_compatibility_schema()  # a no-op unless 20250713000002 ran before it had one
        add_organization_column("likes")
        timestamps_to_timestamptz("likes", ["created_at", "updated_at"])

    def backfill() -> None:
        backfill_in_batches_if_needed(
            "likes",
            "organization_id = users.organization_id",
            from_items="users",
            where="users.id = likes.user_id "
            "AND likes.organization_id IS DISTINCT FROM users.organization_id",
            needed_if="EXISTS (SELECT 1 FROM users WHERE organization_id IS DISTINCT FROM "
            f"(SELECT organization_id FROM {DEFAULT_ORGANIZATION_TABLE})) "
            "OR EXISTS (SELECT 1 FROM likes WHERE organization_id IS NULL)",
        )

    steps.step("add_column", add_column)
    with op.get_context().autocommit_block():
        steps.step("backfill", backfill)
        steps.step(
            "not_null",
            lambda: set_not_null_without_long_lock("likes", "organization_id", lock_retries=True),
        )
        steps.step(
            "organization_user_index",
            lambda: create_index_concurrently(
                "index_likes_on_organization_id_and_user_id",
                "likes",
                ["organization_id", "user_id"],
            ),
        )
        steps.step(
            "organization_post_index",
            lambda: create_index_concurrently(
                "index_likes_on_organization_id_and_post_id",
                "likes",
                ["organization_id", "post_id"],
            ),
        )
        steps.step(
            "organization_foreign_key",
            lambda: add_foreign_key_then_validate(
                "fk_likes_organization",
                "likes",
                ["organization_id"],
                "organizations",
                ["id"],
                lock_retries=True,
            ),
        )
        steps.step(
            "user_foreign_key",
            lambda: add_foreign_key_then_validate(
                "fk_likes_user",
                "likes",
                ["organization_id", "user_id"],
                "users",
                ["organization_id", "id"],
                lock_retries=True,
            ),
        )
        steps.step(
            "post_foreign_key",
            lambda: add_foreign_key_then_validate(
                "fk_likes_post",
                "likes",
                ["organization_id", "post_id"],
                "posts",
                ["organization_id", "id"],
                lock_retries=True,
            ),
        )
        steps.step("drop_user_index", lambda: drop_index_concurrently("index_likes_on_user_id"))
        steps.step("drop_post_index", lambda: drop_index_concurrently("index_likes_on_post_id"))
    steps.finish()


def downgrade() -> None:
    # Each step also copes with an upgrade that stopped part-way: this is how `rollback` undoes
    # one. The keys are replaced before the column goes, so likes are never without them.
    steps = RevisionSteps(revision, "downgrade")

    def drop_column() -> None:
        op.execute("ALTER TABLE likes DROP CONSTRAINT IF EXISTS fk_likes_organization")
        drop_organization_column("likes")
        timestamptz_to_timestamps("likes", ["created_at", "updated_at"])

    with op.get_context().autocommit_block():
        steps.step(
            "user_index",
            lambda: create_index_concurrently("index_likes_on_user_id", "likes", ["user_id"]),
        )
        steps.step(
            "post_index",
            lambda: create_index_concurrently("index_likes_on_post_id", "likes", ["post_id"]),
        )
        steps.step(
            "user_foreign_key",
            lambda: add_foreign_key_then_validate(
                "fk_likes_user", "likes", ["user_id"], "users", ["id"], lock_retries=True
            ),
        )
        steps.step(
            "post_foreign_key",
            lambda: add_foreign_key_then_validate(
                "fk_likes_post", "likes", ["post_id"], "posts", ["id"], lock_retries=True
            ),
        )
        steps.step(
            "drop_organization_user_index",
            lambda: drop_index_concurrently("index_likes_on_organization_id_and_user_id"),
        )
        steps.step(
            "drop_organization_post_index",
            lambda: drop_index_concurrently("index_likes_on_organization_id_and_post_id"),
        )
    steps.step("drop_column", drop_column)
    steps.finish()
