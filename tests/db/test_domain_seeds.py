"""Seeding a tenant, twice; two tenants side by side; archiving and purging one."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from rayces.domain.errors import InvalidInputError, NotFoundError, OwnershipConflictError
from rayces.domain.seeds import SeedOptions, seed_organization
from rayces.domain.tenants import (
    PURGE_ORDER,
    BalancesHeldError,
    archive_organization,
    purge_organization,
)
from rayces.domain.verification import data_violations, tenant_tables
from rayces.schema import Appointment, User
from rayces.tenancy import scope_sessions, tenant_scope

NOW = dt.datetime(2030, 6, 3, 10, tzinfo=dt.UTC)


@pytest.fixture
def factory(migrated_engine: Engine) -> sessionmaker[Session]:
    return scope_sessions(sessionmaker(migrated_engine))  # type: ignore[no-any-return]


def seed(factory: sessionmaker[Session], options: SeedOptions) -> dict[str, object]:
    with factory() as session:
        report = seed_organization(session, options, now=NOW)
        session.commit()
    return report.to_dict()


def counts(connection: Connection, organization_id: int) -> dict[str, int]:
    return {
        table: int(
            connection.scalar(
                text(f"SELECT count(*) FROM {table} WHERE organization_id = :o"),
                {"o": organization_id},
            )
        )
        for table in tenant_tables()
    }


DEMO = SeedOptions(
    "seed-demo", name="Demo Clinic", time_zone="America/Santiago", initial_credits=10,
    slot_days=7, profile="demo",
)  # fmt: skip


def test_demo_seed_is_idempotent(migrated_engine: Engine, factory: sessionmaker[Session]) -> None:
    first = seed(factory, DEMO)
    assert first["organization_created"] is True
    created = first["rows_created"]
    assert isinstance(created, dict)
    assert created["roles"] == 4
    assert created["professionals"] == 2
    assert created["students"] == 2
    assert created["appointments"] == 5
    assert created["credit_transactions"] == 2
    assert created["time_slots"] > 0
    with migrated_engine.connect() as connection:
        before = counts(connection, int(first["organization_id"]))  # type: ignore[call-overload]
    second = seed(factory, DEMO)
    assert second == {
        "organization_id": first["organization_id"],
        "organization_created": False,
        "changed_fields": {},
        "rows_created": {},
    }
    with migrated_engine.connect() as connection:
        assert counts(connection, int(first["organization_id"])) == before  # type: ignore[call-overload]
        assert data_violations(connection, int(first["organization_id"])) == []  # type: ignore[call-overload]
        states = connection.scalars(
            text("SELECT state FROM appointments WHERE organization_id = :o ORDER BY state"),
            {"o": first["organization_id"]},
        ).all()
        balances = connection.scalars(
            text("SELECT balance FROM credit_balances WHERE organization_id = :o"),
            {"o": first["organization_id"]},
        ).all()
    assert states == ["cancelled", "confirmed", "draft", "executed", "pre_confirmed"]
    assert balances == [10, 10]


def test_a_second_run_brings_the_row_in_line(factory: sessionmaker[Session]) -> None:
    seed(factory, SeedOptions("seed-update", name="Before"))
    report = seed(
        factory,
        SeedOptions("seed-update", name="After", time_zone="Europe/Madrid", suspended=True),
    )
    assert report["changed_fields"] == {
        "name": {"from": "Before", "to": "After"},
        "time_zone": {"from": "UTC", "to": "Europe/Madrid"},
        "status": {"from": "active", "to": "suspended"},
    }
    assert report["rows_created"] == {}


def test_two_tenants_seeded_side_by_side_never_see_each_other(
    factory: sessionmaker[Session],
) -> None:
    one = seed(factory, SeedOptions("side-one", profile="demo", slot_days=2))
    two = seed(factory, SeedOptions("side-two", profile="demo", slot_days=2))
    for report, other in ((one, two), (two, one)):
        with tenant_scope(int(report["organization_id"])), factory() as session:  # type: ignore[call-overload]
            users = session.scalars(select(User)).all()
            appointments = session.scalars(select(Appointment)).all()
        assert {user.organization_id for user in users} == {report["organization_id"]}
        assert len(appointments) == 5
        assert other["organization_id"] not in {a.organization_id for a in appointments}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(SeedOptions("Bad_Slug"), "not a valid organization slug", id="slug"),
        pytest.param(SeedOptions("ok", time_zone="Mars/Base"), "not an IANA time zone", id="zone"),
        pytest.param(SeedOptions("ok", initial_credits=-1), "--initial-credits", id="credits"),
        pytest.param(SeedOptions("ok", slot_days=400), "--slot-days", id="slot-days"),
    ],
)
def test_bad_options_are_refused(
    factory: sessionmaker[Session], options: SeedOptions, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        seed(factory, options)


@pytest.fixture
def owner(migrated_engine: Engine) -> Iterator[Connection]:
    with migrated_engine.connect() as connection:
        yield connection
        connection.rollback()


def test_archive_keeps_the_rows(owner: Connection, factory: sessionmaker[Session]) -> None:
    report = seed(factory, SeedOptions("to-archive", profile="demo", slot_days=1))
    organization_id = int(report["organization_id"])  # type: ignore[call-overload]
    before = counts(owner, organization_id)
    assert archive_organization(owner, "to-archive") == (organization_id, "active")
    assert (
        owner.scalar(text("SELECT status FROM organizations WHERE id = :o"), {"o": organization_id})
        == "archived"
    )
    assert counts(owner, organization_id) == before


def test_purge_removes_every_row_and_reports_them(
    owner: Connection, factory: sessionmaker[Session]
) -> None:
    keep = seed(factory, SeedOptions("kept", profile="demo", slot_days=1))
    report = seed(factory, SeedOptions("to-purge", profile="demo", slot_days=1, initial_credits=3))
    organization_id = int(report["organization_id"])  # type: ignore[call-overload]
    before = counts(owner, organization_id)
    kept_before = counts(owner, int(keep["organization_id"]))  # type: ignore[call-overload]
    with pytest.raises(BalancesHeldError, match="holds non-zero credit balances"):
        purge_organization(owner, "to-purge")
    assert counts(owner, organization_id) == before
    purged_id, removed = purge_organization(owner, "to-purge", force_with_balances=True)
    assert purged_id == organization_id
    assert removed == {**before, "organizations": 1}
    assert set(counts(owner, organization_id).values()) == {0}
    assert counts(owner, int(keep["organization_id"])) == kept_before  # type: ignore[call-overload]


def test_purge_order_covers_every_tenant_table() -> None:
    assert sorted(PURGE_ORDER) == sorted(tenant_tables())


def test_an_unknown_slug_is_named(owner: Connection) -> None:
    with pytest.raises(NotFoundError, match="no organization has the slug 'nobody-here'"):
        purge_organization(owner, "nobody-here")


def test_two_owners_racing_to_adopt_a_row_cannot_both_claim_it(
    migrated_engine: Engine, factory: sessionmaker[Session]
) -> None:
    """The ownership check reads the row under `FOR UPDATE`: the second claimant waits for the
    first one's transaction, then sees its owner and is refused with nothing changed."""
    seed(factory, SeedOptions("race", name="Race"))
    outcome: list[BaseException | dict[str, object]] = []

    def second() -> None:
        try:
            outcome.append(seed(factory, SeedOptions("race", name="Second", owner="y", adopt=True)))
        except BaseException as error:  # handed to the test's thread
            outcome.append(error)

    with factory() as first:
        seed_organization(first, SeedOptions("race", name="First", owner="x", adopt=True), now=NOW)
        thread = threading.Thread(target=second)
        thread.start()
        with migrated_engine.connect() as watcher:
            deadline = time.monotonic() + 120
            while not watcher.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ):
                assert time.monotonic() < deadline, "the second seed never waited for the row"
                assert thread.is_alive(), f"the second seed did not wait: {outcome}"
                time.sleep(0.05)
        first.commit()
    thread.join(120)
    assert len(outcome) == 1 and isinstance(outcome[0], OwnershipConflictError), outcome
    assert outcome[0].owner == "x"
    with migrated_engine.connect() as connection:
        row = connection.execute(
            text("SELECT name, settings->>'rayces.io/owner' FROM organizations "
                 "WHERE subdomain = 'race'")
        ).one()  # fmt: skip
    assert tuple(row) == ("First", "x")
