"""Devise columns on users (database_authenticatable, recoverable, rememberable).

E-mail becomes unique per organization (rows without an e-mail stay allowed: MyHub had
OAuth-only users). Duplicates are looked for first; when there are any the revision stops with
an error naming them and nothing of it is applied.

Revision ID: 20250713000005
Revises: 20250713000004
Create Date: 2025-07-13 00:00:05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from rayces.migrations.journal import RevisionSteps
from rayces.migrations.online_operations import (
    create_index_concurrently,
    drop_index_concurrently,
)

revision: str = "20250713000005"
down_revision: str | None = "20250713000004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = (
    "column users.remember_created_at",
    "column users.reset_password_sent_at",
    "column users.reset_password_token",
    "column users.encrypted_password",
)

# At most this many duplicates are listed in the error; the count says how many there are.
_DUPLICATES_SHOWN = 20

_STOP_ON_DUPLICATE_EMAILS = f"""DO $duplicate_emails$
DECLARE
    duplicate_count bigint;
    listing text;
BEGIN
    SELECT count(*),
           string_agg(format('%s (organization %s, %s users)',
                             email, organization_id, users_with_email),
                      ', ' ORDER BY listed_as) FILTER (WHERE listed_as <= {_DUPLICATES_SHOWN})
      INTO duplicate_count, listing
      FROM (SELECT organization_id, email, count(*) AS users_with_email,
                   row_number() OVER (ORDER BY organization_id, email) AS listed_as
              FROM users
             WHERE email IS NOT NULL
             GROUP BY organization_id, email
            HAVING count(*) > 1) AS duplicates;
    IF duplicate_count > 0 THEN
        RAISE EXCEPTION 'users.email must be unique per organization, but % e-mail address(es) '
                        'are used by more than one user: %', duplicate_count, listing
            USING HINT = 'Change or clear the duplicate e-mails, then run the migration again.';
    END IF;
END
$duplicate_emails$"""


def upgrade() -> None:
    steps = RevisionSteps(revision, "upgrade")

    def add_columns() -> None:
        op.execute(_STOP_ON_DUPLICATE_EMAILS)
        # A constant default is stored in the catalog: no rewrite, existing rows read ''.
        op.execute(
            "ALTER TABLE users "
            "ADD COLUMN IF NOT EXISTS encrypted_password varchar DEFAULT '' NOT NULL, "
            "ADD COLUMN IF NOT EXISTS reset_password_token varchar, "
            "ADD COLUMN IF NOT EXISTS reset_password_sent_at timestamp(6) with time zone, "
            "ADD COLUMN IF NOT EXISTS remember_created_at timestamp(6) with time zone"
        )

    steps.step("add_columns", add_columns)
    with op.get_context().autocommit_block():
        steps.step(
            "email_index",
            lambda: create_index_concurrently(
                "index_users_on_organization_id_and_email",
                "users",
                ["organization_id", "email"],
                unique=True,
            ),
        )
        steps.step(
            "reset_password_token_index",
            lambda: create_index_concurrently(
                "index_users_on_reset_password_token",
                "users",
                ["reset_password_token"],
                unique=True,
            ),
        )
    steps.finish()


def downgrade() -> None:
    # Each step also copes with an upgrade that stopped part-way: this is how `rollback` undoes
    # one.
    steps = RevisionSteps(revision, "downgrade")

    def drop_columns() -> None:
        op.execute(
            "ALTER TABLE users "
            "DROP COLUMN IF EXISTS remember_created_at, "
            "DROP COLUMN IF EXISTS reset_password_sent_at, "
            "DROP COLUMN IF EXISTS reset_password_token, "
            "DROP COLUMN IF EXISTS encrypted_password"
        )

    with op.get_context().autocommit_block():
        steps.step(
            "drop_reset_password_token_index",
            lambda: drop_index_concurrently("index_users_on_reset_password_token"),
        )
        steps.step(
            "drop_email_index",
            lambda: drop_index_concurrently("index_users_on_organization_id_and_email"),
        )
    steps.step("drop_columns", drop_columns)
    steps.finish()
