"""When professionals can be booked: weekly availability rules and the concrete time slots.

The domain layer turns rules into slots. Two exclusion constraints (GiST, `btree_gist`) make
overlaps impossible in the database itself: two active rules of one professional on one weekday
cannot overlap, and neither can two of a professional's slots.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, CheckConstraint, Index, column, func, literal_column, text
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import conv

from rayces.schema.base import (
    Base,
    CreatedUpdatedAt,
    IdentityKey,
    TenantOwned,
    tenant_foreign_key,
    tenant_join,
)

if TYPE_CHECKING:
    from rayces.schema.appointments import Appointment
    from rayces.schema.organizations import Organization
    from rayces.schema.people import Professional


class AvailabilityRule(IdentityKey, TenantOwned, CreatedUpdatedAt, Base):
    """A professional is available on one weekday between two times of day."""

    __tablename__ = "availability_rules"
    __table_args__ = (
        tenant_foreign_key("professional_id", "professionals"),
        Index("idx_availability_lookup", "professional_id", "day_of_week", "active"),
        Index("idx_org_availability", "organization_id", "active"),
        # The exclusion constraint below is partial, so its index cannot serve the composite
        # foreign key to professionals; this one does.
        Index(
            "index_availability_rules_on_org_id_and_professional_id",
            "organization_id",
            "professional_id",
        ),
        # The plan's name, kept: it does not follow the `chk_<table>_<purpose>` rule.
        CheckConstraint(
            "day_of_week >= 0 AND day_of_week <= 6", name=conv("chk_valid_day_of_week")
        ),
        CheckConstraint("end_time > start_time", name="time_order"),
        # `timerange` is a range type over `time` that the revision creates.
        ExcludeConstraint(
            ("organization_id", "="),
            ("professional_id", "="),
            ("day_of_week", "="),
            (func.timerange(column("start_time"), column("end_time")), "&&"),
            name="excl_availability_rules_no_overlap",
            using="gist",
            # Inactive rules may overlap: switching a rule off must not require deleting it.
            where=text("active"),
        ),
    )

    professional_id: Mapped[int] = mapped_column(BigInteger)
    day_of_week: Mapped[int]
    """0 is Sunday, 6 is Saturday (PostgreSQL's `extract(dow from ...)`)."""
    start_time: Mapped[dt.time]
    end_time: Mapped[dt.time]
    active: Mapped[bool] = mapped_column(server_default=text("true"))

    organization: Mapped[Organization] = relationship(back_populates="availability_rules")
    professional: Mapped[Professional] = relationship(
        primaryjoin=tenant_join("Professional", "AvailabilityRule", "professional_id"),
        back_populates="availability_rules",
    )


class TimeSlot(IdentityKey, TenantOwned, CreatedUpdatedAt, Base):
    """A bookable period of a professional on one date, booked by at most one appointment."""

    __tablename__ = "time_slots"
    __table_args__ = (
        tenant_foreign_key("professional_id", "professionals"),
        tenant_foreign_key("appointment_id", "appointments"),
        Index("idx_unique_time_slot", "professional_id", "date", "start_time", unique=True),
        Index("idx_available_slots", "professional_id", "date", "available"),
        Index("idx_org_date_slots", "organization_id", "date"),
        # One slot per appointment; also covers the composite foreign key to appointments.
        Index(
            "index_time_slots_on_organization_id_and_appointment_id",
            "organization_id",
            "appointment_id",
            unique=True,
        ),
        CheckConstraint("end_time > start_time", name="time_order"),
        CheckConstraint(
            "NOT (available AND appointment_id IS NOT NULL)", name="booked_not_available"
        ),
        # Not partial, so its GiST index (leading organization_id, professional_id) covers the
        # composite foreign key to professionals.
        ExcludeConstraint(
            ("organization_id", "="),
            ("professional_id", "="),
            (
                func.tsrange(
                    literal_column("date + start_time"), literal_column("date + end_time")
                ),
                "&&",
            ),
            name="excl_time_slots_no_overlap",
            using="gist",
        ),
    )

    professional_id: Mapped[int] = mapped_column(BigInteger)
    appointment_id: Mapped[int | None] = mapped_column(BigInteger)
    date: Mapped[dt.date]
    start_time: Mapped[dt.time]
    end_time: Mapped[dt.time]
    available: Mapped[bool] = mapped_column(server_default=text("true"))

    organization: Mapped[Organization] = relationship(back_populates="time_slots")
    professional: Mapped[Professional] = relationship(
        primaryjoin=tenant_join("Professional", "TimeSlot", "professional_id"),
        back_populates="time_slots",
    )
    appointment: Mapped[Appointment | None] = relationship(
        primaryjoin=tenant_join("Appointment", "TimeSlot", "appointment_id"),
        back_populates="time_slot",
    )
