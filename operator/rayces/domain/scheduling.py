"""Availability rules → time slots, and booking a slot.

Slots are wall-clock times in the organization's time zone (`organizations.time_zone`), as a
professional reads their diary: `date`, `start_time`, `end_time`. A rule "Mondays 09:00-13:00"
with 60-minute sessions and a 15-minute buffer gives 09:00, 10:15 and 11:30. On the days clocks
change, a slot whose start or end does not exist in that zone (the skipped hour), or that would
not last exactly one session (it spans the change), is left out; `slot_start_utc` turns a slot
back into an instant.

`generate_time_slots` is a pure plan (`plan_time_slots`) plus one `INSERT ... ON CONFLICT DO
NOTHING`: running it twice creates nothing new, and a slot that would overlap an existing one
(the exclusion constraint) is skipped rather than failing the run.

`book_slot` claims a slot with one conditional UPDATE; of two concurrent bookings of one slot,
the second waits for the first's row lock, then finds the slot taken and gets
`SlotUnavailableError`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from rayces.domain.errors import InvalidInputError, NotFoundError, SlotUnavailableError
from rayces.schema import Appointment, AvailabilityRule, Organization, Professional
from rayces.tenancy import require_tenant

DEFAULT_SESSION_MINUTES = 60
DEFAULT_BUFFER_MINUTES = 15


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; `InvalidInputError` naming it when there is no such zone."""
    try:
        if not name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError(
            f"{name!r} is not an IANA time zone; use a name such as America/Santiago, "
            "Europe/Madrid or UTC"
        ) from None


@dataclass(frozen=True)
class RuleWindow:
    """The part of an availability rule the plan needs."""

    day_of_week: int  # 0 = Sunday, as PostgreSQL's extract(dow)
    start_time: dt.time
    end_time: dt.time
    active: bool = True


@dataclass(frozen=True, order=True)
class PlannedSlot:
    date: dt.date
    start_time: dt.time
    end_time: dt.time


def _exists(local: dt.datetime, zone: ZoneInfo) -> bool:
    """Whether the wall-clock time exists in `zone` (not in the hour clocks skip)."""
    aware = local.replace(tzinfo=zone)
    round_trip = aware.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None)
    return round_trip == local


def slot_start_utc(date: dt.date, start: dt.time, zone: ZoneInfo) -> dt.datetime:
    """The instant a slot starts (the earlier one, when clocks go back)."""
    return dt.datetime.combine(date, start).replace(tzinfo=zone).astimezone(dt.UTC)


def plan_time_slots(
    rules: Iterable[RuleWindow],
    first_day: dt.date,
    last_day: dt.date,
    zone: ZoneInfo,
    *,
    session_minutes: int = DEFAULT_SESSION_MINUTES,
    buffer_minutes: int = DEFAULT_BUFFER_MINUTES,
    blocked_dates: Iterable[dt.date] = (),
) -> list[PlannedSlot]:
    """Every slot the active rules give from `first_day` to `last_day` (both included)."""
    if session_minutes <= 0 or buffer_minutes < 0:
        raise InvalidInputError("session length must be positive and the buffer not negative")
    session, step = (
        dt.timedelta(minutes=session_minutes),
        dt.timedelta(minutes=session_minutes + buffer_minutes),
    )
    blocked = set(blocked_dates)
    by_day: dict[int, list[RuleWindow]] = {}
    for rule in rules:
        if rule.active:
            by_day.setdefault(rule.day_of_week, []).append(rule)
    slots: list[PlannedSlot] = []
    day = first_day
    while day <= last_day:
        if day not in blocked:
            for rule in by_day.get(day.isoweekday() % 7, []):
                start = dt.datetime.combine(day, rule.start_time)
                window_end = dt.datetime.combine(day, rule.end_time)
                while start + session <= window_end:
                    end = start + session
                    real = slot_start_utc(day, end.time(), zone) - slot_start_utc(
                        day, start.time(), zone
                    )
                    if _exists(start, zone) and _exists(end, zone) and real == session:
                        slots.append(PlannedSlot(day, start.time(), end.time()))
                    start += step
        day += dt.timedelta(days=1)
    return sorted(slots)


def _blocked_dates(values: Sequence[object] | None) -> list[dt.date]:
    dates = []
    for value in values or ():
        try:
            dates.append(dt.date.fromisoformat(str(value)))
        except ValueError:
            continue  # not a date: nothing to block
    return dates


def generate_time_slots(
    session: Session, professional_id: int, first_day: dt.date, last_day: dt.date
) -> int:
    """Create the professional's slots for the days given; returns how many were new."""
    organization_id = require_tenant()
    professional = session.get(Professional, professional_id)
    if professional is None or professional.organization_id != organization_id:
        raise NotFoundError(
            f"professional {professional_id} does not exist in organization {organization_id}"
        )
    organization = session.get(Organization, organization_id)
    assert organization is not None  # the foreign key guarantees it
    rules = session.scalars(
        select(AvailabilityRule).where(AvailabilityRule.professional_id == professional_id)
    ).all()
    planned = plan_time_slots(
        [RuleWindow(r.day_of_week, r.start_time, r.end_time, r.active) for r in rules],
        first_day,
        last_day,
        time_zone(organization.time_zone),
        session_minutes=professional.session_duration_minutes or DEFAULT_SESSION_MINUTES,
        buffer_minutes=(
            DEFAULT_BUFFER_MINUTES
            if professional.buffer_minutes is None
            else professional.buffer_minutes
        ),
        blocked_dates=_blocked_dates(professional.blocked_dates),
    )
    if not planned:
        return 0
    result = session.execute(
        text(
            "INSERT INTO time_slots (organization_id, professional_id, date, start_time, end_time)"
            " SELECT :organization_id, :professional_id, slot.date, slot.start_time, slot.end_time"
            " FROM unnest(CAST(:dates AS date[]), CAST(:starts AS time[]), CAST(:ends AS time[]))"
            " AS slot(date, start_time, end_time)"
            " ON CONFLICT DO NOTHING"
        ),
        {
            "organization_id": organization_id,
            "professional_id": professional_id,
            "dates": [slot.date for slot in planned],
            "starts": [slot.start_time for slot in planned],
            "ends": [slot.end_time for slot in planned],
        },
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def book_slot(
    session: Session,
    slot_id: int,
    client_id: int,
    *,
    student_id: int | None = None,
    uses_credit: bool = False,
    price_cents: int = 0,
) -> Appointment:
    """Claim slot `slot_id` for a new draft appointment of `client_id`, atomically.

    :raises SlotUnavailableError: the slot is taken, not available, or not in this tenant.
    """
    organization_id = require_tenant()
    claimed = session.execute(
        text(
            "UPDATE time_slots SET available = false, updated_at = now() "
            "WHERE id = :id AND organization_id = :organization_id "
            "AND available AND appointment_id IS NULL "
            "RETURNING professional_id, date, start_time, end_time"
        ),
        {"id": slot_id, "organization_id": organization_id},
    ).first()
    if claimed is None:
        raise SlotUnavailableError(
            f"time slot {slot_id} is already booked or not available in organization "
            f"{organization_id}; pick another slot"
        )
    professional_id, date, start, end = claimed
    organization = session.get(Organization, organization_id)
    assert organization is not None
    zone = time_zone(organization.time_zone)
    starts_at = slot_start_utc(date, start, zone)
    ends_at = slot_start_utc(date, end, zone)
    appointment = Appointment(
        professional_id=professional_id,
        client_id=client_id,
        student_id=student_id,
        starts_at=starts_at,
        ends_at=ends_at,
        duration_minutes=int((ends_at - starts_at).total_seconds() // 60),
        uses_credit=uses_credit,
        price_cents=price_cents,
    )
    session.add(appointment)
    session.flush()
    session.execute(
        text("UPDATE time_slots SET appointment_id = :appointment WHERE id = :id"),
        {"appointment": appointment.id, "id": slot_id},
    )
    return appointment
