"""The state machines in Python and in the database agree on every step of any event sequence.

Hypothesis draws sequences of events. Each event is judged twice: by the Python API
(`may_fire`/`fire`) and by PostgreSQL, where the change the event makes (its state, its stamps,
its values) is written with a plain UPDATE that the revision's trigger accepts or refuses.

The database sees changes, not event names: `reactivate` (inactive → active) and `activate`
(admission → active) write the same change. So Python's verdict on a step is whether *some* event
writing that change may fire. A change Python refuses must be refused by the database, or change
nothing there; a change Python accepts must be accepted, and leave the row exactly as Python's
copy of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from tests.db.tenant_rows import create_organization, create_tenant_rows

from rayces.domain.lifecycle import LIFECYCLES, AppointmentLifecycle
from rayces.domain.state_machines import (
    APPOINTMENT,
    CREDIT_TRANSACTION,
    MACHINES,
    STUDENT,
    IllegalTransitionError,
    StateMachine,
    fire,
    may_fire,
)

NOW = dt.datetime(2030, 3, 4, 12, 0, tzinfo=dt.UTC)
#: values for the columns an event requires (`Transition.requires`)
REQUIRED_VALUES: dict[str, Any] = {"cancellation_reason": "changed plans"}


def event_values(machine: StateMachine, event: str) -> dict[str, Any]:
    return {column: REQUIRED_VALUES[column] for column in machine.transition(event).requires}


@pytest.fixture(scope="module")
def rows(migrated_engine: Engine) -> dict[str, int]:
    with migrated_engine.begin() as connection:
        organization = create_organization(connection, "machines")
        ids = create_tenant_rows(connection, organization)
    return {"organization": organization, **ids}


@pytest.fixture
def connection(migrated_engine: Engine) -> Iterator[Connection]:
    with migrated_engine.connect() as connection:
        yield connection
        connection.rollback()


def insert_initial_row(
    connection: Connection, machine: StateMachine, rows: dict[str, int], starts_at: dt.datetime
) -> int:
    values = {"org": rows["organization"], "user": rows["users"], "starts": starts_at}
    sql = {
        "appointments": "INSERT INTO appointments (organization_id, professional_id, client_id, "
        "starts_at, ends_at) VALUES (:org, :professional, :user, :starts, "
        ":starts + interval '1 hour') RETURNING id",
        "students": "INSERT INTO students (organization_id, guardian_id, first_name, last_name) "
        "VALUES (:org, :user, 'Eva', 'Sol') RETURNING id",
        "credit_transactions": "INSERT INTO credit_transactions (organization_id, user_id, "
        "credit_balance_id, amount, transaction_type) VALUES (:org, :user, :balance, 3, "
        "'purchase') RETURNING id",
    }[machine.table]
    values.update(professional=rows["professionals"], balance=rows["credit_balances"])
    return int(connection.scalar(text(sql), values))


def read_row(connection: Connection, machine: StateMachine, row_id: int) -> dict[str, Any]:
    columns = [machine.column, *machine.stamp_columns]
    if machine is APPOINTMENT:
        columns += ["starts_at", "cancellation_reason"]
    row = connection.execute(
        text(f"SELECT {', '.join(columns)} FROM {machine.table} WHERE id = :id"), {"id": row_id}
    ).one()
    return dict(zip(columns, row, strict=True))


def database_applies(
    connection: Connection, machine: StateMachine, row_id: int, event: str
) -> tuple[bool, bool]:
    """(accepted, changed): write the event's change with plain SQL in a savepoint."""
    transition = machine.transition(event)
    change: dict[str, Any] = {machine.column: transition.target}
    change.update({column: NOW for column in transition.stamps})
    change.update(event_values(machine, event))
    before = read_row(connection, machine, row_id)
    assignments = ", ".join(f"{column} = :{column}" for column in change)
    savepoint = connection.begin_nested()
    try:
        connection.execute(
            text(f"UPDATE {machine.table} SET {assignments} WHERE id = :id"),
            {**change, "id": row_id},
        )
    except DBAPIError:
        savepoint.rollback()
        return False, False
    savepoint.commit()
    return True, read_row(connection, machine, row_id) != before


def check_sequence(
    connection: Connection,
    rows: dict[str, int],
    machine: StateMachine,
    events: list[str],
    starts_after_now: bool,
) -> None:
    starts_at = NOW + dt.timedelta(hours=1 if starts_after_now else -1)
    row_id = insert_initial_row(connection, machine, rows, starts_at)
    shadow = SimpleNamespace(**read_row(connection, machine, row_id), id=row_id)
    try:
        for event in events:
            values = event_values(machine, event)
            same_change = [
                other
                for other in machine.events
                if _change(machine, other) == _change(machine, event)
            ]
            firing = [e for e in same_change if may_fire(machine, shadow, e, now=NOW, **values)]
            python_accepts = bool(firing)
            accepted, changed = database_applies(connection, machine, row_id, event)
            step = f"{machine.name} {event} from {shadow.__dict__[machine.column]}"
            if python_accepts:
                assert accepted and changed, f"the database refused {step}"
                fire(machine, shadow, firing[0], now=NOW, **values)
            else:
                assert not changed, f"the database accepted {step}, which Python refuses"
                with pytest.raises(IllegalTransitionError):
                    fire(machine, shadow, event, now=NOW, **values)
            assert read_row(connection, machine, row_id) == {
                key: getattr(shadow, key) for key in read_row(connection, machine, row_id)
            }
    finally:
        connection.rollback()


def _change(machine: StateMachine, event: str) -> tuple[Any, ...]:
    transition = machine.transition(event)
    return (transition.target, transition.stamps, transition.requires)


def _events(machine: StateMachine) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(machine.events), max_size=7)


_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@_SETTINGS
@given(events=_events(APPOINTMENT), starts_after_now=st.booleans())
def test_appointment_python_and_database_agree(
    connection: Connection, rows: dict[str, int], events: list[str], starts_after_now: bool
) -> None:
    check_sequence(connection, rows, APPOINTMENT, events, starts_after_now)


@_SETTINGS
@given(events=_events(STUDENT))
def test_student_python_and_database_agree(
    connection: Connection, rows: dict[str, int], events: list[str]
) -> None:
    check_sequence(connection, rows, STUDENT, events, True)


@_SETTINGS
@given(events=_events(CREDIT_TRANSACTION))
def test_credit_transaction_python_and_database_agree(
    connection: Connection, rows: dict[str, int], events: list[str]
) -> None:
    check_sequence(connection, rows, CREDIT_TRANSACTION, events, True)


@pytest.mark.parametrize("lifecycle", [pytest.param(cls, id=cls.__name__) for cls in LIFECYCLES])
def test_every_event_has_its_methods(lifecycle: type[Any]) -> None:
    machine: StateMachine = lifecycle.machine
    assert machine in MACHINES
    for event in machine.events:
        assert callable(getattr(lifecycle, event))
        assert callable(getattr(lifecycle, f"may_{event}"))


@pytest.mark.parametrize(
    ("state", "event", "message"),
    [
        pytest.param(
            "executed",
            "confirm",
            "cannot confirm appointment 5: it is executed",
            id="confirm-executed",
        ),
        pytest.param(
            "cancelled", "cancel", "cannot cancel appointment 5: it is cancelled", id="cancel-twice"
        ),
        pytest.param(
            "draft", "execute", "execute needs it to be one of confirmed", id="execute-draft"
        ),
    ],
)
def test_an_illegal_event_names_the_state_and_the_event(
    state: str, event: str, message: str
) -> None:
    row = SimpleNamespace(
        id=5, state=state, starts_at=NOW, confirmed_at=None, executed_at=None, cancelled_at=None
    )
    with pytest.raises(IllegalTransitionError, match=message):
        fire(APPOINTMENT, row, event, now=NOW, cancellation_reason="x")


def test_an_appointment_is_not_executed_before_it_starts() -> None:
    row = SimpleNamespace(
        id=9,
        state="confirmed",
        starts_at=NOW + dt.timedelta(minutes=5),
        confirmed_at=NOW,
        executed_at=None,
        cancelled_at=None,
    )
    lifecycle = AppointmentLifecycle(row)  # type: ignore[arg-type]
    assert not lifecycle.may_execute(now=NOW)
    with pytest.raises(IllegalTransitionError, match="cannot be executed before it starts"):
        lifecycle.execute(now=NOW)
    assert lifecycle.execute(now=NOW + dt.timedelta(minutes=5)) == "executed"
    assert row.executed_at == NOW + dt.timedelta(minutes=5)


def test_cancel_requires_a_reason() -> None:
    row = SimpleNamespace(
        id=3, state="draft", confirmed_at=None, executed_at=None, cancelled_at=None
    )
    with pytest.raises(IllegalTransitionError, match="cancellation_reason must be given"):
        AppointmentLifecycle(row).cancel("", now=NOW)  # type: ignore[arg-type]
