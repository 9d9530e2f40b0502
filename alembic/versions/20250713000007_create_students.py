"""Create students: the people appointments are for, each with a guardian user.

Revision ID: 20250713000007
Revises: 20250713000006
Create Date: 2025-07-13 00:00:07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20250713000007"
down_revision: str | None = "20250713000006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = ("table students",)


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            name,
            postgresql.TIMESTAMP(timezone=True, precision=6),
            server_default=sa.text("now()"),
            nullable=False,
        )
        for name in ("created_at", "updated_at")
    ]


def upgrade() -> None:
    op.create_table(
        "students",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("organization_id", sa.BigInteger(), nullable=False),
        sa.Column("guardian_id", sa.BigInteger(), nullable=False),
        sa.Column("first_name", sa.String(), nullable=False),
        sa.Column("last_name", sa.String(), nullable=False),
        sa.Column("date_of_birth", sa.Date()),
        sa.Column("state", sa.String(), server_default=sa.text("'admission'"), nullable=False),
        sa.Column("notes", sa.Text()),
        sa.Column(
            "metadata", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="students_pkey"),
        sa.UniqueConstraint("organization_id", "id", name="uq_students_organization_id_id"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name="fk_students_organization"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "guardian_id"],
            ["users.organization_id", "users.id"],
            name="fk_students_guardian",
        ),
        sa.CheckConstraint(
            "state IN ('admission', 'active', 'inactive', 'discharged')",
            name="chk_students_state",
        ),
    )
    op.create_index(
        "index_students_on_organization_id_and_guardian_id",
        "students",
        ["organization_id", "guardian_id"],
    )
    op.create_index(
        "index_students_on_organization_id_and_state", "students", ["organization_id", "state"]
    )


def downgrade() -> None:
    op.drop_table("students")
