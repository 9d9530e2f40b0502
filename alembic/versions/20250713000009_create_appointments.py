"""Create appointments: a professional's session with a client (and maybe a student).

Revision ID: 20250713000009
Revises: 20250713000008
Create Date: 2025-07-13 00:00:09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20250713000009"
down_revision: str | None = "20250713000008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = ("table appointments",)


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
        "appointments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("organization_id", sa.BigInteger(), nullable=False),
        sa.Column("professional_id", sa.BigInteger(), nullable=False),
        sa.Column("student_id", sa.BigInteger()),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(), server_default=sa.text("'draft'"), nullable=False),
        sa.Column("starts_at", postgresql.TIMESTAMP(timezone=True, precision=6), nullable=False),
        sa.Column("ends_at", postgresql.TIMESTAMP(timezone=True, precision=6), nullable=False),
        sa.Column("price_cents", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("currency", sa.String(3), server_default=sa.text("'ARS'"), nullable=False),
        sa.Column("notes", sa.Text()),
        sa.Column(
            "metadata", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="appointments_pkey"),
        sa.UniqueConstraint("organization_id", "id", name="uq_appointments_organization_id_id"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name="fk_appointments_organization"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "professional_id"],
            ["professionals.organization_id", "professionals.id"],
            name="fk_appointments_professional",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "student_id"],
            ["students.organization_id", "students.id"],
            name="fk_appointments_student",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "client_id"],
            ["users.organization_id", "users.id"],
            name="fk_appointments_client",
        ),
        sa.CheckConstraint(
            "state IN ('draft', 'pre_confirmed', 'confirmed', 'executed', 'cancelled')",
            name="chk_appointments_state",
        ),
        sa.CheckConstraint("ends_at > starts_at", name="chk_appointments_time_order"),
        sa.CheckConstraint("price_cents >= 0", name="chk_appointments_price_non_negative"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="chk_appointments_currency_format"),
    )
    op.create_index(
        "index_appointments_on_org_id_and_professional_id_and_starts_at",
        "appointments",
        ["organization_id", "professional_id", "starts_at"],
    )
    op.create_index(
        "index_appointments_on_organization_id_and_student_id",
        "appointments",
        ["organization_id", "student_id"],
    )
    op.create_index(
        "index_appointments_on_organization_id_and_client_id",
        "appointments",
        ["organization_id", "client_id"],
    )
    op.create_index(
        "index_appointments_on_organization_id_and_state",
        "appointments",
        ["organization_id", "state"],
    )


def downgrade() -> None:
    op.drop_table("appointments")
