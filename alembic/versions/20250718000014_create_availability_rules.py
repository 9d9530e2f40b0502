"""Create availability_rules: a professional's weekly working hours.

As the plan writes it (`idx_availability_lookup`, `idx_org_availability`,
`chk_valid_day_of_week`), without the `t.references` single-column indexes. Beyond it: a
composite foreign key to professionals (covered by its own index), `end_time > start_time`, and
an exclusion constraint so two active rules of one professional never overlap on a day. That
needs `btree_gist` (equality on bigint/integer inside a GiST index) and `timerange`, a range type
over `time`, both created here.

Revision ID: 20250718000014
Revises: 20250718000013
Create Date: 2025-07-18 00:00:14
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20250718000014"
down_revision: str | None = "20250718000013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What downgrade() drops; `raycesctl rollback` refuses to drop rows unless allowed.
downgrade_drops: tuple[str, ...] = ("table availability_rules",)


_BTREE_GIST_COMMENT = (
    "support for indexing common datatypes in GiST (created by revision 20250718000014)"
)


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
    # An extension this revision creates is marked by its comment, so the downgrade drops
    # only that one: a btree_gist installed before (by hand, or for another schema) stays.
    op.execute(
        f"""DO $create_btree_gist$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'btree_gist') THEN
        CREATE EXTENSION btree_gist;
        COMMENT ON EXTENSION btree_gist IS {_BTREE_GIST_COMMENT!r};
    END IF;
END
$create_btree_gist$"""
    )
    # The subtype difference lets GiST split pages well (PostgreSQL's own timerange example).
    op.execute(
        "CREATE FUNCTION time_subtype_diff(x time, y time) RETURNS float8 "
        "AS 'SELECT EXTRACT(EPOCH FROM (x - y))' LANGUAGE sql STRICT IMMUTABLE"
    )
    op.execute("CREATE TYPE timerange AS RANGE (subtype = time, subtype_diff = time_subtype_diff)")
    op.create_table(
        "availability_rules",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("professional_id", sa.BigInteger(), nullable=False),
        sa.Column("organization_id", sa.BigInteger(), nullable=False),
        # 0-6 (Sunday-Saturday)
        sa.Column("day_of_week", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.Time(), nullable=False),
        sa.Column("end_time", sa.Time(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="availability_rules_pkey"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name="fk_availability_rules_organization"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "professional_id"],
            ["professionals.organization_id", "professionals.id"],
            name="fk_availability_rules_professional",
        ),
        # Ensure valid day of week (the plan's, word for word).
        sa.CheckConstraint("day_of_week >= 0 AND day_of_week <= 6", name="chk_valid_day_of_week"),
        sa.CheckConstraint("end_time > start_time", name="chk_availability_rules_time_order"),
    )
    op.execute(
        "ALTER TABLE availability_rules ADD CONSTRAINT excl_availability_rules_no_overlap "
        "EXCLUDE USING gist (organization_id WITH =, professional_id WITH =, "
        "day_of_week WITH =, timerange(start_time, end_time) WITH &&) WHERE (active)"
    )
    # Composite index for availability lookups.
    op.create_index(
        "idx_availability_lookup",
        "availability_rules",
        ["professional_id", "day_of_week", "active"],
    )
    op.create_index("idx_org_availability", "availability_rules", ["organization_id", "active"])
    # The exclusion constraint is partial, so it cannot cover the professional foreign key.
    op.create_index(
        "index_availability_rules_on_org_id_and_professional_id",
        "availability_rules",
        ["organization_id", "professional_id"],
    )


def downgrade() -> None:
    op.drop_table("availability_rules")
    op.execute("DROP TYPE timerange")
    op.execute("DROP FUNCTION time_subtype_diff(time, time)")
    # Kept when it was there before this revision, or something outside this schema uses it.
    op.execute(
        f"""DO $drop_btree_gist$
BEGIN
    IF obj_description((SELECT oid FROM pg_extension WHERE extname = 'btree_gist'),
                       'pg_extension') = {_BTREE_GIST_COMMENT!r} THEN
        DROP EXTENSION btree_gist;
    END IF;
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE NOTICE 'btree_gist is kept: other objects depend on it';
END
$drop_btree_gist$"""
    )
