"""MyHub baseline: users, posts and likes as MyHub's Rails schema (2024_06_06_034427) had them.

A database that already holds MyHub's tables is brought under Alembic with
`alembic stamp 20240606034427`; an empty database gets them created here.

Revision ID: 20240606034427
Revises:
Create Date: 2024-06-06 03:44:27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20240606034427"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = (
    "table likes",
    "table posts",
    "table users",
)


def _rails_timestamps() -> list[sa.Column[object]]:
    # Rails' `t.timestamps`: precision 6, NOT NULL, no database default, no time zone.
    return [
        sa.Column("created_at", postgresql.TIMESTAMP(precision=6), nullable=False),
        sa.Column("updated_at", postgresql.TIMESTAMP(precision=6), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String()),
        sa.Column("email", sa.String()),
        sa.Column("image", sa.String()),
        sa.Column("username", sa.String()),
        sa.Column("uid", sa.String()),
        *_rails_timestamps(),
        sa.PrimaryKeyConstraint("id", name="users_pkey"),
    )
    op.create_table(
        "posts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("post_id", sa.String()),
        sa.Column("hash_id", sa.String()),
        sa.Column("source", sa.String()),
        sa.Column("metadata", postgresql.JSONB()),
        sa.Column("filename", sa.String()),
        *_rails_timestamps(),
        sa.PrimaryKeyConstraint("id", name="posts_pkey"),
    )
    op.create_table(
        "likes",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("post_id", sa.BigInteger(), nullable=False),
        *_rails_timestamps(),
        sa.PrimaryKeyConstraint("id", name="likes_pkey"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_likes_user"),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name="fk_likes_post"),
    )
    op.create_index("index_likes_on_user_id", "likes", ["user_id"])
    op.create_index("index_likes_on_post_id", "likes", ["post_id"])


def downgrade() -> None:
    op.drop_table("likes")
    op.drop_table("posts")
    op.drop_table("users")
