"""Add organization_id to likes, taken from each like's user; tenant-scoped foreign keys.

The single-column foreign keys to users and posts are replaced, under the same names, by
composite keys through `(organization_id, id)`: a like whose user and post belong to different
organizations cannot exist afterwards. Their indexes are replaced by `(organization_id, x_id)`
indexes, built concurrently before the old ones are dropped concurrently.

Revision ID: 20250713000004
Revises: 20250713000003
Create Date: 2025-07-13 00:00:04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from rayces.migrations.online_operations import (
    add_foreign_key_then_validate,
    backfill_in_batches,
    create_index_concurrently,
    drop_index_concurrently,
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


def upgrade() -> None:
    op.execute("ALTER TABLE likes ADD COLUMN IF NOT EXISTS organization_id bigint")
    timestamps_to_timestamptz("likes", ["created_at", "updated_at"])
    with op.get_context().autocommit_block():
        backfill_in_batches(
            "likes",
            "organization_id = users.organization_id",
            from_items="users",
            where="users.id = likes.user_id AND likes.organization_id IS NULL",
        )
        set_not_null_without_long_lock("likes", "organization_id")
        create_index_concurrently(
            "index_likes_on_organization_id_and_user_id", "likes", ["organization_id", "user_id"]
        )
        create_index_concurrently(
            "index_likes_on_organization_id_and_post_id", "likes", ["organization_id", "post_id"]
        )
        add_foreign_key_then_validate(
            "fk_likes_organization", "likes", ["organization_id"], "organizations", ["id"]
        )
        add_foreign_key_then_validate(
            "fk_likes_user",
            "likes",
            ["organization_id", "user_id"],
            "users",
            ["organization_id", "id"],
        )
        add_foreign_key_then_validate(
            "fk_likes_post",
            "likes",
            ["organization_id", "post_id"],
            "posts",
            ["organization_id", "id"],
        )
        drop_index_concurrently("index_likes_on_user_id")
        drop_index_concurrently("index_likes_on_post_id")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_concurrently("index_likes_on_user_id", "likes", ["user_id"])
        create_index_concurrently("index_likes_on_post_id", "likes", ["post_id"])
        add_foreign_key_then_validate("fk_likes_user", "likes", ["user_id"], "users", ["id"])
        add_foreign_key_then_validate("fk_likes_post", "likes", ["post_id"], "posts", ["id"])
        drop_index_concurrently("index_likes_on_organization_id_and_user_id")
        drop_index_concurrently("index_likes_on_organization_id_and_post_id")
    op.drop_constraint("fk_likes_organization", "likes", type_="foreignkey")
    op.drop_column("likes", "organization_id")
    timestamptz_to_timestamps("likes", ["created_at", "updated_at"])
