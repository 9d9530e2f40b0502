"""Add organization_id to posts: existing posts go to the default organization.

The same steps as users (20250713000002): the column is added nullable (catalog only), backfilled in
committed batches, made NOT NULL through a validated CHECK, and its foreign key and the
`(organization_id, id)` unique key are added without long locks. Timestamps become timestamptz
without a rewrite.

Revision ID: 20250713000003
Revises: 20250713000002
Create Date: 2025-07-13 00:00:03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from rayces.migrations.online_operations import (
    add_foreign_key_then_validate,
    add_unique_constraint_using_index,
    backfill_in_batches,
    create_default_organization_if_needed,
    default_organization_id_sql,
    default_organization_settings,
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


def upgrade() -> None:
    organization = default_organization_settings()
    op.execute("ALTER TABLE posts ADD COLUMN IF NOT EXISTS organization_id bigint")
    timestamps_to_timestamptz("posts", ["created_at", "updated_at"])
    with op.get_context().autocommit_block():
        # Outside the transaction that changed the table, so no lock is held while looking.
        create_default_organization_if_needed(organization, for_table="posts")
        backfill_in_batches(
            "posts",
            f"organization_id = {default_organization_id_sql(organization)}",
            where="posts.organization_id IS NULL",
        )
        set_not_null_without_long_lock("posts", "organization_id")
        add_foreign_key_then_validate(
            "fk_posts_organization", "posts", ["organization_id"], "organizations", ["id"]
        )
        add_unique_constraint_using_index(
            "uq_posts_organization_id_id", "posts", ["organization_id", "id"]
        )


def downgrade() -> None:
    op.drop_constraint("uq_posts_organization_id_id", "posts", type_="unique")
    op.drop_constraint("fk_posts_organization", "posts", type_="foreignkey")
    op.drop_column("posts", "organization_id")
    timestamptz_to_timestamps("posts", ["created_at", "updated_at"])
