"""users.jti: the JWT id (devise-jwt's JTIMatcher); changing it revokes a user's tokens.

The column is added without a default (a volatile default in ADD COLUMN would rewrite the
table), then given `DEFAULT gen_random_uuid()::text` for rows inserted from then on. Existing
rows are backfilled in committed batches (each user needs a value of its own, so this is the one
backfill the upgrade cannot avoid; the batches commit asynchronously, a crash only makes the
rerun redo the last ones), the column is made NOT NULL through a validated CHECK and its unique
index is built concurrently. The table is vacuumed right after the backfill, so the next
ALTER TABLE never queues behind autovacuum (which would hold up reads and writes meanwhile).
Each step is recorded in the step journal.

Revision ID: 20250713000006
Revises: 20250713000005
Create Date: 2025-07-13 00:00:06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from rayces.migrations.journal import RevisionSteps
from rayces.migrations.online_operations import (
    backfill_in_batches,
    create_index_concurrently,
    drop_index_concurrently,
    set_not_null_without_long_lock,
    vacuum_after_backfill,
)

revision: str = "20250713000006"
down_revision: str | None = "20250713000005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = ("column users.jti",)


def upgrade() -> None:
    steps = RevisionSteps(revision, "upgrade")

    def add_column() -> None:
        op.execute("ALTER TABLE users ADD COLUMN IF NOT EXISTS jti varchar")
        op.execute("ALTER TABLE users ALTER COLUMN jti SET DEFAULT (gen_random_uuid())::text")

    steps.step("add_column", add_column)
    with op.get_context().autocommit_block():
        steps.step(
            "backfill",
            lambda: backfill_in_batches(
                "users",
                "jti = (gen_random_uuid())::text",
                where="users.jti IS NULL",
                synchronous_commit=False,
            ),
        )
        # Before the next ALTER TABLE, so it never waits behind autovacuum (see the function).
        steps.step("vacuum", lambda: vacuum_after_backfill("users"))
        steps.step(
            "not_null", lambda: set_not_null_without_long_lock("users", "jti", lock_retries=True)
        )
        steps.step(
            "jti_index",
            lambda: create_index_concurrently("index_users_on_jti", "users", ["jti"], unique=True),
        )
    steps.finish()


def downgrade() -> None:
    # Each step also copes with an upgrade that stopped part-way: this is how `rollback` undoes
    # one.
    steps = RevisionSteps(revision, "downgrade")
    with op.get_context().autocommit_block():
        steps.step("drop_jti_index", lambda: drop_index_concurrently("index_users_on_jti"))
    steps.step("drop_column", lambda: op.execute("ALTER TABLE users DROP COLUMN IF EXISTS jti"))
    steps.finish()
