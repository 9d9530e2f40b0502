"""The people a booking is about: students (with their guardian) and professionals."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, CheckConstraint, Index, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rayces.schema.base import (
    Base,
    CreatedUpdatedAt,
    IdentityKey,
    TenantOwned,
    tenant_foreign_key,
    tenant_join,
    tenant_unique_key,
)
from rayces.schema.states import StudentState, check_in

if TYPE_CHECKING:
    from rayces.schema.appointments import Appointment
    from rayces.schema.availability import AvailabilityRule, TimeSlot
    from rayces.schema.myhub import User
    from rayces.schema.organizations import Organization


class Student(IdentityKey, TenantOwned, CreatedUpdatedAt, Base):
    """A student attended by the tenant's professionals, under a guardian who is a user."""

    __tablename__ = "students"
    __table_args__ = (
        tenant_unique_key(),
        tenant_foreign_key("guardian_id", "users"),
        Index(
            "index_students_on_organization_id_and_guardian_id", "organization_id", "guardian_id"
        ),
        Index("index_students_on_organization_id_and_state", "organization_id", "state"),
        CheckConstraint(check_in("state", StudentState), name="state"),
    )

    guardian_id: Mapped[int] = mapped_column(BigInteger)
    first_name: Mapped[str]
    last_name: Mapped[str]
    date_of_birth: Mapped[dt.date | None]
    state: Mapped[str] = mapped_column(server_default=StudentState.ADMISSION.value)
    notes: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", server_default=text("'{}'::jsonb")
    )

    organization: Mapped[Organization] = relationship(back_populates="students")
    guardian: Mapped[User] = relationship(
        primaryjoin=tenant_join("User", "Student", "guardian_id"),
        back_populates="guarded_students",
    )
    appointments: Mapped[list[Appointment]] = relationship(
        primaryjoin=tenant_join("Student", "Appointment", "student_id"), back_populates="student"
    )


class Professional(IdentityKey, TenantOwned, CreatedUpdatedAt, Base):
    """A user who gives sessions: their profile, prices and scheduling preferences.

    The profile columns came with the plan's `add_missing_fields` revision and stay nullable as
    the plan wrote them; the CHECKs keep the values that are present sane.
    """

    __tablename__ = "professionals"
    __table_args__ = (
        tenant_unique_key(),
        tenant_foreign_key("user_id", "users"),
        Index(
            "index_professionals_on_organization_id_and_user_id",
            "organization_id",
            "user_id",
            unique=True,
        ),
        Index(
            "index_professionals_on_organization_id_and_specialization",
            "organization_id",
            "specialization",
        ),
        CheckConstraint("session_duration_minutes > 0", name="session_duration_positive"),
        CheckConstraint("buffer_minutes >= 0", name="buffer_non_negative"),
        CheckConstraint("session_price_cents >= 0", name="price_non_negative"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
    )

    user_id: Mapped[int] = mapped_column(BigInteger)
    title: Mapped[str | None]
    specialization: Mapped[str | None]
    bio: Mapped[str | None] = mapped_column(Text)
    license_number: Mapped[str | None]
    weekly_schedule: Mapped[dict[str, Any] | None] = mapped_column(
        server_default=text("'{}'::jsonb")
    )
    blocked_dates: Mapped[list[Any] | None] = mapped_column(server_default=text("'[]'::jsonb"))
    session_duration_minutes: Mapped[int | None] = mapped_column(server_default=text("60"))
    buffer_minutes: Mapped[int | None] = mapped_column(server_default=text("15"))
    accepts_new_clients: Mapped[bool | None] = mapped_column(server_default=text("true"))
    session_price_cents: Mapped[int | None]
    currency: Mapped[str | None] = mapped_column(server_default="ARS")

    organization: Mapped[Organization] = relationship(back_populates="professionals")
    user: Mapped[User] = relationship(
        primaryjoin=tenant_join("User", "Professional", "user_id"), back_populates="professional"
    )
    appointments: Mapped[list[Appointment]] = relationship(
        primaryjoin=tenant_join("Professional", "Appointment", "professional_id"),
        back_populates="professional",
    )
    availability_rules: Mapped[list[AvailabilityRule]] = relationship(
        primaryjoin=tenant_join("Professional", "AvailabilityRule", "professional_id"),
        back_populates="professional",
    )
    time_slots: Mapped[list[TimeSlot]] = relationship(
        primaryjoin=tenant_join("Professional", "TimeSlot", "professional_id"),
        back_populates="professional",
    )
