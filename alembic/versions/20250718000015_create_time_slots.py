"""Create time_slots: bookable pieces of a professional's day, each for at most one appointment.

As the plan writes it (`idx_unique_time_slot`, `idx_available_slots`, `idx_org_date_slots`),
without the `t.references` single-column indexes. `idx_unique_time_slot` only stops two slots
from starting at the same minute; the exclusion constraint `excl_time_slots_no_overlap` stops
any two slots of a professional from overlapping (adjacent slots are fine: ranges are
half-open). Beyond the plan: composite foreign keys, `end_time > start_time`, a booked slot is
not available, and one slot per appointment.

Revision ID: 20250718000015
Revises: 20250718000014
Create Date: 2025-07-18 00:00:15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20250718000015"
down_revision: str | None = "20250718000014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = ("table time_slots",)


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
        "time_slots",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("professional_id", sa.BigInteger(), nullable=False),
        sa.Column("organization_id", sa.BigInteger(), nullable=False),
        sa.Column("appointment_id", sa.BigInteger()),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("start_time", sa.Time(), nullable=False),
        sa.Column("end_time", sa.Time(), nullable=False),
        sa.Column("available", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="time_slots_pkey"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name="fk_time_slots_organization"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "professional_id"],
            ["professionals.organization_id", "professionals.id"],
            name="fk_time_slots_professional",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "appointment_id"],
            ["appointments.organization_id", "appointments.id"],
            name="fk_time_slots_appointment",
        ),
        sa.CheckConstraint("end_time > start_time", name="chk_time_slots_time_order"),
        sa.CheckConstraint(
            "NOT (available AND appointment_id IS NOT NULL)",
            name="chk_time_slots_booked_not_available",
        ),
    )
    # Prevent double booking. Created before the exclusion constraint so that an exact
    # duplicate is reported under the plan's name.
    op.create_index(
        "idx_unique_time_slot",
        "time_slots",
        ["professional_id", "date", "start_time"],
        unique=True,
    )
    op.execute(
        "ALTER TABLE time_slots ADD CONSTRAINT excl_time_slots_no_overlap "
        "EXCLUDE USING gist (organization_id WITH =, professional_id WITH =, "
        "tsrange(date + start_time, date + end_time) WITH &&)"
    )
    # Performance indexes.
    op.create_index("idx_available_slots", "time_slots", ["professional_id", "date", "available"])
    op.create_index("idx_org_date_slots", "time_slots", ["organization_id", "date"])
    op.create_index(
        "index_time_slots_on_organization_id_and_appointment_id",
        "time_slots",
        ["organization_id", "appointment_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("time_slots")
