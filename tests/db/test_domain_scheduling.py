"""Availability rules become time slots in the organization's time zone; a slot is booked once."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from tests.db.tenant_rows import create_organization, create_tenant_rows

from rayces.domain.errors import InvalidInputError, SlotUnavailableError
from rayces.domain.scheduling import (
    RuleWindow,
    book_slot,
    generate_time_slots,
    plan_time_slots,
    time_zone,
)
from rayces.tenancy import scope_sessions, tenant_scope

SUNDAY = 0
T = dt.time


def starts(slots: list[object]) -> list[dt.time]:
    return [slot.start_time for slot in slots]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # Clocks jump 02:00 → 03:00: no slot starts or ends in the missing hour.
        pytest.param(
            "Europe/Madrid", dt.date(2026, 3, 29), [T(0), T(3), T(4), T(5)], id="madrid-spring"
        ),
        # Clocks go back 03:00 → 02:00: 02:00-03:00 would last two hours.
        pytest.param(
            "Europe/Madrid",
            dt.date(2026, 10, 25),
            [T(0), T(1), T(3), T(4), T(5)],
            id="madrid-autumn",
        ),
        # Chile skips midnight: Sunday 6 September 2026 starts at 01:00.
        pytest.param(
            "America/Santiago",
            dt.date(2026, 9, 6),
            [T(1), T(2), T(3), T(4), T(5)],
            id="santiago-spring",
        ),
        pytest.param(
            "America/Santiago",
            dt.date(2026, 9, 13),
            [T(0), T(1), T(2), T(3), T(4), T(5)],
            id="santiago-ordinary-sunday",
        ),
    ],
)
def test_slots_across_a_daylight_saving_change(
    zone: str, day: dt.date, expected: list[dt.time]
) -> None:
    rule = RuleWindow(SUNDAY, T(0), T(6))
    slots = plan_time_slots([rule], day, day, time_zone(zone), session_minutes=60, buffer_minutes=0)
    assert starts(slots) == expected


def test_buffer_blocked_dates_and_inactive_rules() -> None:
    monday, tuesday = dt.date(2030, 1, 14), dt.date(2030, 1, 15)
    rules = [RuleWindow(1, T(9), T(12)), RuleWindow(2, T(9), T(12), active=False)]
    slots = plan_time_slots(
        rules,
        monday,
        monday + dt.timedelta(days=13),
        time_zone("UTC"),
        session_minutes=60,
        buffer_minutes=15,
        blocked_dates=[monday + dt.timedelta(days=7)],
    )
    assert [(slot.date, slot.start_time, slot.end_time) for slot in slots] == [
        (monday, T(9), T(10)),
        (monday, T(10, 15), T(11, 15)),
    ]
    assert tuesday not in {slot.date for slot in slots}


@pytest.mark.parametrize(
    "name",
    [pytest.param("Mars/Olympus", id="unknown"), pytest.param("", id="empty"),
     pytest.param("../etc/passwd", id="path")],
)  # fmt: skip
def test_an_invalid_time_zone_is_named(name: str) -> None:
    with pytest.raises(InvalidInputError, match="is not an IANA time zone"):
        time_zone(name)


@pytest.fixture(scope="module")
def tenant(migrated_engine: Engine) -> dict[str, int]:
    with migrated_engine.begin() as connection:
        organization = create_organization(connection, "scheduling")
        rows = create_tenant_rows(connection, organization)
        connection.execute(
            text("UPDATE organizations SET time_zone = 'Europe/Madrid' WHERE id = :o"),
            {"o": organization},
        )
        connection.execute(
            text("UPDATE professionals SET blocked_dates = '[\"2030-01-21\"]' WHERE id = :p"),
            {"p": rows["professionals"]},
        )
    return {"organization": organization, **rows}


@pytest.fixture
def factory(migrated_engine: Engine) -> sessionmaker[Session]:
    return scope_sessions(sessionmaker(migrated_engine))  # type: ignore[no-any-return]


def test_generating_twice_creates_nothing_new(
    migrated_engine: Engine, factory: sessionmaker[Session], tenant: dict[str, int]
) -> None:
    first, last = dt.date(2030, 1, 14), dt.date(2030, 1, 27)
    counts = []
    for _ in range(2):
        with tenant_scope(tenant["organization"]), factory() as session:
            counts.append(generate_time_slots(session, tenant["professionals"], first, last))
            session.commit()
    # Mondays 14 and 21 January; the 21st is blocked: two slots on the 14th only.
    assert counts == [2, 0]
    with migrated_engine.connect() as connection:
        slots = connection.execute(
            text(
                "SELECT date, start_time FROM time_slots WHERE organization_id = :o "
                "AND date BETWEEN :first AND :last ORDER BY 1, 2"
            ),
            {"o": tenant["organization"], "first": first, "last": last},
        ).all()
    assert slots == [(first, T(9)), (first, T(10, 15))]


def test_concurrent_bookings_of_one_slot_give_one_appointment(
    migrated_engine: Engine, factory: sessionmaker[Session], tenant: dict[str, int]
) -> None:
    with tenant_scope(tenant["organization"]), factory() as session:
        generate_time_slots(
            session, tenant["professionals"], dt.date(2030, 2, 4), dt.date(2030, 2, 4)
        )
        session.commit()
    with migrated_engine.connect() as connection:
        slot_id = connection.scalar(
            text(
                "SELECT id FROM time_slots WHERE organization_id = :o AND date = '2030-02-04' "
                "AND start_time = '09:00'"
            ),
            {"o": tenant["organization"]},
        )
    workers = 16
    start = threading.Barrier(workers)

    def book(_: int) -> str:
        start.wait()
        try:
            with tenant_scope(tenant["organization"]), factory() as session:
                book_slot(session, int(slot_id), tenant["users"])
                session.commit()
        except SlotUnavailableError as error:
            assert "already booked" in error.message
            return "refused"
        return "booked"

    with ThreadPoolExecutor(workers) as pool:
        outcomes = list(pool.map(book, range(workers)))
    assert outcomes.count("booked") == 1
    with migrated_engine.connect() as connection:
        booked = connection.execute(
            text(
                "SELECT a.starts_at, s.available FROM time_slots s JOIN appointments a "
                "ON a.id = s.appointment_id WHERE s.id = :s"
            ),
            {"s": slot_id},
        ).all()
    # 09:00 in Madrid in February is 08:00 UTC.
    assert booked == [(dt.datetime(2030, 2, 4, 8, tzinfo=dt.UTC), False)]
