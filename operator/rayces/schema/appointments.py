"""Appointments: a professional's session with a client (and, often, the client's student)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, CheckConstraint, Index, String, Text, text
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
from rayces.schema.states import AppointmentState, check_in

if TYPE_CHECKING:
    from rayces.schema.availability import TimeSlot
    from rayces.schema.credits import CreditTransaction
    from rayces.schema.myhub import User
    from rayces.schema.organizations import Organization
    from rayces.schema.people import Professional, Student


class Appointment(IdentityKey, TenantOwned, CreatedUpdatedAt, Base):
    """One booked session, from draft to executed or cancelled."""

    __tablename__ = "appointments"
    __table_args__ = (
        tenant_unique_key(),
        tenant_foreign_key("professional_id", "professionals"),
        tenant_foreign_key("student_id", "students"),
        tenant_foreign_key("client_id", "users"),
        # `organization_id` shortened to `org_id`: the Rails-style name would exceed 63 characters.
        Index(
            "index_appointments_on_org_id_and_professional_id_and_starts_at",
            "organization_id",
            "professional_id",
            "starts_at",
        ),
        Index(
            "index_appointments_on_organization_id_and_student_id", "organization_id", "student_id"
        ),
        Index(
            "index_appointments_on_organization_id_and_client_id", "organization_id", "client_id"
        ),
        Index("index_appointments_on_organization_id_and_state", "organization_id", "state"),
        CheckConstraint(check_in("state", AppointmentState), name="state"),
        CheckConstraint("ends_at > starts_at", name="time_order"),
        CheckConstraint("price_cents >= 0", name="price_non_negative"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
        CheckConstraint("duration_minutes > 0", name="duration_positive"),
    )

    professional_id: Mapped[int] = mapped_column(BigInteger)
    student_id: Mapped[int | None] = mapped_column(BigInteger)
    client_id: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(server_default=AppointmentState.DRAFT.value)
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    price_cents: Mapped[int] = mapped_column(server_default=text("0"))
    currency: Mapped[str] = mapped_column(String(3), server_default="ARS")
    notes: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", server_default=text("'{}'::jsonb")
    )

    # Added by the plan's `add_missing_fields` revision; nullable as the plan wrote them.
    duration_minutes: Mapped[int | None] = mapped_column(server_default=text("60"))
    confirmed_at: Mapped[dt.datetime | None]
    executed_at: Mapped[dt.datetime | None]
    cancelled_at: Mapped[dt.datetime | None]
    cancellation_reason: Mapped[str | None]
    uses_credit: Mapped[bool | None] = mapped_column(server_default=text("false"))

    organization: Mapped[Organization] = relationship(back_populates="appointments")
    professional: Mapped[Professional] = relationship(
        primaryjoin=tenant_join("Professional", "Appointment", "professional_id"),
        back_populates="appointments",
    )
    student: Mapped[Student | None] = relationship(
        primaryjoin=tenant_join("Student", "Appointment", "student_id"),
        back_populates="appointments",
    )
    client: Mapped[User] = relationship(
        primaryjoin=tenant_join("User", "Appointment", "client_id"),
        back_populates="client_appointments",
    )
    time_slot: Mapped[TimeSlot | None] = relationship(
        primaryjoin=tenant_join("Appointment", "TimeSlot", "appointment_id"),
        back_populates="appointment",
    )
    credit_transactions: Mapped[list[CreditTransaction]] = relationship(
        primaryjoin=tenant_join("Appointment", "CreditTransaction", "appointment_id"),
        back_populates="appointment",
    )
