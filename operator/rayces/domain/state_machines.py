"""The three state machines of the booking schema, each defined once as data.

A machine is a small table: its events (name, source states, target state, the timestamp columns
the event stamps), which columns each state requires and which it allows, and conditions between
columns that must hold in a state (an appointment is executed at or after its start). The same
table drives two things:

- the Python API (`fire`, `may_fire`, and the typed facades in `rayces.domain.lifecycle`), which
  refuses an illegal event with an error naming the row, its state and the event;
- the PL/pgSQL trigger that revision 20250718000017 installs (`render_trigger_sql`), which refuses
  the same changes from any SQL at all.

A revision must keep its meaning when this module changes, so the revision holds the rendered SQL
as a literal, and a test checks that it is what this table renders today. Changing a machine
therefore means a new revision with the new rendering.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rayces.schema.states import AppointmentState, CreditTransactionStatus, StudentState

Comparison = Literal[">=", ">", "<=", "<"]


@dataclass(frozen=True)
class Transition:
    """An event: from any of `sources` to `target`, stamping `stamps` with the current time."""

    event: str
    sources: tuple[str, ...]
    target: str
    stamps: tuple[str, ...] = ()
    #: columns the caller must give a value to (e.g. a cancellation reason)
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnCondition:
    """`left <comparison> right` between two columns, required while a row is in `state`."""

    state: str
    left: str
    comparison: Comparison
    right: str
    message: str

    def sql(self, row: str = "NEW") -> str:
        return f"{row}.{self.left} {self.comparison} {row}.{self.right}"

    def holds(self, values: Mapping[str, Any]) -> bool:
        left, right = values.get(self.left), values.get(self.right)
        if left is None or right is None:
            return False
        comparisons = {
            ">=": left >= right,
            ">": left > right,
            "<=": left <= right,
            "<": left < right,
        }
        return bool(comparisons[self.comparison])


@dataclass(frozen=True)
class StateMachine:
    """One machine: the table and column it governs and its transition table."""

    name: str
    table: str
    column: str
    states: type[enum.StrEnum]
    initial: str
    transitions: tuple[Transition, ...]
    #: state -> columns that must be set in that state
    required: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: every timestamp column the machine stamps; set only in states that list it in `required`
    #: or `allowed`, and never changed once set
    stamp_columns: tuple[str, ...] = ()
    #: state -> stamp columns that may be set in that state without being required
    allowed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    conditions: tuple[ColumnCondition, ...] = ()
    #: states in which a row may not be changed at all
    frozen: tuple[str, ...] = ()
    frozen_hint: str = ""

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(transition.event for transition in self.transitions)

    def transition(self, event: str) -> Transition:
        for transition in self.transitions:
            if transition.event == event:
                return transition
        raise UnknownEventError(f"{self.name} has no event {event!r}; events: {self.events}")

    def allowed_pairs(self) -> tuple[tuple[str, str], ...]:
        """Every (from, to) state change some event makes, in table order."""
        pairs: list[tuple[str, str]] = []
        for transition in self.transitions:
            for source in transition.sources:
                if (source, transition.target) not in pairs:
                    pairs.append((source, transition.target))
        return tuple(pairs)

    def may_set(self, state: str) -> tuple[str, ...]:
        """Stamp columns that may hold a value in `state`."""
        return self.required.get(state, ()) + self.allowed.get(state, ())

    def violations(self, values: Mapping[str, Any]) -> list[str]:
        """What is wrong with a row's values for its state (empty when it is consistent)."""
        state = str(values.get(self.column))
        problems = [
            f"state {state} requires {column}"
            for column in self.required.get(state, ())
            if values.get(column) is None
        ]
        problems += [
            f"state {state} does not allow {column}"
            for column in self.stamp_columns
            if column not in self.may_set(state) and values.get(column) is not None
        ]
        problems += [
            condition.message
            for condition in self.conditions
            if condition.state == state and not condition.holds(values)
        ]
        return problems

    def consistency_predicates(self) -> tuple[tuple[str, str], ...]:
        """(SQL predicate over a row, problem) for every way a stored row can be inconsistent.

        The same rules as `violations`, for finding bad rows with SQL (`raycesctl verify`).
        """
        predicates: list[tuple[str, str]] = []
        for state in self.states:
            is_state = f"{self.column} = {_literal(state)}"
            for column in self.required.get(state, ()):
                predicates.append(
                    (f"{is_state} AND {column} IS NULL", f"state {state} requires {column}")
                )
            for column in self.stamp_columns:
                if column not in self.may_set(state):
                    predicates.append(
                        (
                            f"{is_state} AND {column} IS NOT NULL",
                            f"state {state} does not allow {column}",
                        )
                    )
        for condition in self.conditions:
            predicates.append(
                (
                    f"{self.column} = {_literal(condition.state)} "
                    f"AND NOT ({condition.sql(self.table)})",
                    condition.message,
                )
            )
        return tuple(predicates)


class StateMachineError(Exception):
    """Base of the errors a state machine raises; `message` is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownEventError(StateMachineError):
    """The event is not in the machine's table."""


class IllegalTransitionError(StateMachineError):
    """The event may not fire from the row's state, or would leave the row inconsistent."""


def _label(machine: StateMachine, row: object) -> str:
    row_id = getattr(row, "id", None)
    return f"{machine.name} {row_id}" if row_id is not None else f"new {machine.name}"


def _planned_change(
    machine: StateMachine,
    row: object,
    event: str,
    now: dt.datetime,
    values: Mapping[str, Any],
) -> tuple[dict[str, Any], str | None]:
    """The columns `event` would set on `row`, and why it may not, if it may not."""
    transition = machine.transition(event)
    state = str(getattr(row, machine.column))
    label = _label(machine, row)
    if state in machine.frozen:
        return {}, f"{label} is {state} and cannot change ({machine.frozen_hint})"
    if state not in transition.sources:
        sources = ", ".join(transition.sources)
        return {}, (
            f"cannot {event} {label}: it is {state}, and {event} needs it to be one of {sources}"
        )
    missing = [column for column in transition.requires if values.get(column) in (None, "")]
    if missing:
        return {}, f"cannot {event} {label}: {', '.join(missing)} must be given"
    change: dict[str, Any] = {machine.column: transition.target}
    change.update({column: now for column in transition.stamps})
    change.update({column: values[column] for column in transition.requires})
    after = {
        column: getattr(row, column, None)
        for column in (*machine.stamp_columns, *_condition_columns(machine))
    }
    after.update(change)
    overwritten = [
        column
        for column in transition.stamps
        if getattr(row, column, None) is not None and column in machine.stamp_columns
    ]
    if overwritten:
        return {}, f"cannot {event} {label}: {', '.join(overwritten)} is already set"
    problems = machine.violations(after)
    if problems:
        return {}, f"cannot {event} {label}: {'; '.join(problems)}"
    return change, None


def _condition_columns(machine: StateMachine) -> tuple[str, ...]:
    return tuple(
        column for condition in machine.conditions for column in (condition.left, condition.right)
    )


def may_fire(
    machine: StateMachine,
    row: object,
    event: str,
    *,
    now: dt.datetime | None = None,
    **values: Any,
) -> bool:
    """Whether `event` may fire on `row` now (its state, guards and required values)."""
    _, reason = _planned_change(machine, row, event, now or _utc_now(), values)
    return reason is None


def fire(
    machine: StateMachine,
    row: object,
    event: str,
    *,
    now: dt.datetime | None = None,
    **values: Any,
) -> str:
    """Fire `event` on `row`: set its state and stamps, or raise `IllegalTransitionError`.

    :param now: the time the event happens (stamped into the event's columns); default: now.
    :param values: values the event requires, e.g. `cancellation_reason`.
    :returns: the new state.
    """
    change, reason = _planned_change(machine, row, event, now or _utc_now(), values)
    if reason is not None:
        raise IllegalTransitionError(reason)
    for column, value in change.items():
        setattr(row, column, value)
    return str(change[machine.column])


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ------------------------------------------------------------------- the three machines

_A = AppointmentState
APPOINTMENT = StateMachine(
    name="appointment",
    table="appointments",
    column="state",
    states=AppointmentState,
    initial=_A.DRAFT,
    transitions=(
        Transition("pre_confirm", (_A.DRAFT,), _A.PRE_CONFIRMED),
        Transition("confirm", (_A.PRE_CONFIRMED,), _A.CONFIRMED, stamps=("confirmed_at",)),
        Transition("execute", (_A.CONFIRMED,), _A.EXECUTED, stamps=("executed_at",)),
        Transition(
            "cancel",
            (_A.DRAFT, _A.PRE_CONFIRMED, _A.CONFIRMED),
            _A.CANCELLED,
            stamps=("cancelled_at",),
            requires=("cancellation_reason",),
        ),
    ),
    stamp_columns=("confirmed_at", "executed_at", "cancelled_at"),
    required={
        _A.CONFIRMED: ("confirmed_at",),
        _A.EXECUTED: ("confirmed_at", "executed_at"),
        _A.CANCELLED: ("cancelled_at",),
    },
    allowed={_A.CANCELLED: ("confirmed_at",)},
    conditions=(
        ColumnCondition(
            _A.EXECUTED,
            "executed_at",
            ">=",
            "starts_at",
            "an appointment cannot be executed before it starts",
        ),
    ),
)

_S = StudentState
STUDENT = StateMachine(
    name="student",
    table="students",
    column="state",
    states=StudentState,
    initial=_S.ADMISSION,
    transitions=(
        Transition("activate", (_S.ADMISSION,), _S.ACTIVE),
        Transition("deactivate", (_S.ACTIVE,), _S.INACTIVE),
        Transition("reactivate", (_S.INACTIVE,), _S.ACTIVE),
        Transition("discharge", (_S.ACTIVE, _S.INACTIVE), _S.DISCHARGED),
    ),
)

_C = CreditTransactionStatus
CREDIT_TRANSACTION = StateMachine(
    name="credit transaction",
    table="credit_transactions",
    column="status",
    states=CreditTransactionStatus,
    initial=_C.PENDING,
    transitions=(
        Transition("complete", (_C.PENDING,), _C.COMPLETED, stamps=("processed_at",)),
        Transition("fail", (_C.PENDING,), _C.FAILED),
        Transition("cancel", (_C.PENDING,), _C.CANCELLED),
    ),
    stamp_columns=("processed_at",),
    required={_C.COMPLETED: ("processed_at",)},
    allowed={_C.FAILED: ("processed_at",), _C.CANCELLED: ("processed_at",)},
    frozen=(_C.COMPLETED,),
    frozen_hint="record a compensating transaction instead",
)

MACHINES: tuple[StateMachine, ...] = (APPOINTMENT, STUDENT, CREDIT_TRANSACTION)


# ------------------------------------------------------------------- the database trigger


TRIGGER_SEARCH_PATH = "pg_catalog, pg_temp"
"""The search_path a trigger function runs with, whatever the writing session's is.

The function reads only the row (NEW, OLD) and built-in operators, so it needs no schema of the
application; pinning the path to the catalog (and `pg_temp` last) means no object a session
creates can stand in for one the function uses."""


def trigger_function_name(machine: StateMachine) -> str:
    return f"{machine.table}_state_machine"


def trigger_name(machine: StateMachine) -> str:
    return f"trg_{machine.table}_state_machine"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def render_trigger_sql(machine: StateMachine) -> tuple[str, str]:
    """The `CREATE FUNCTION` and `CREATE TRIGGER` statements that enforce `machine`.

    Names are unqualified: function and trigger are created in the schema the migrating session
    works in (the first of its search_path), like every other object of the schema.

    The function refuses, with SQLSTATE 23514 (check_violation) and a message naming the table,
    the row and the states: an update of a frozen row; a state change no event makes; a stamp
    column changed once set; a state without its required columns, with a stamp column it does
    not allow, or breaking one of its conditions (on insert as on update).
    """
    table, column = machine.table, machine.column
    constraint = trigger_name(machine)

    def raise_(message_format: str, arguments: str, hint: str = "", indent: int = 8) -> str:
        pad = " " * indent
        hint_clause = f",\n{pad}          HINT = {_literal(hint)}" if hint else ""
        return (
            f"{pad}RAISE EXCEPTION\n"
            f"{pad}    {_literal(message_format)},\n"
            f"{pad}    {arguments}\n"
            f"{pad}    USING ERRCODE = 'check_violation',\n"
            f"{pad}          CONSTRAINT = {_literal(constraint)}"
            f"{hint_clause};"
        )

    lines = ["BEGIN", "    IF TG_OP = 'UPDATE' THEN"]
    if machine.frozen:
        frozen = ", ".join(_literal(state) for state in machine.frozen)
        lines += [
            f"        IF OLD.{column} IN ({frozen}) AND NEW IS DISTINCT FROM OLD THEN",
            raise_(
                f"{table} %: a {machine.name} that is % cannot change",
                f"OLD.id, OLD.{column}",
                machine.frozen_hint,
                indent=12,
            ),
            "        END IF;",
        ]
    states = ", ".join(_literal(state) for state in machine.states)
    pairs = ",\n".join(
        f"               ({_literal(a)}, {_literal(b)})" for a, b in machine.allowed_pairs()
    )
    lines += [
        # A value outside the vocabulary is the vocabulary CHECK's to reject, by its name.
        f"        IF NEW.{column} IS DISTINCT FROM OLD.{column}",
        f"           AND NEW.{column} IN ({states})",
        f"           AND (OLD.{column}, NEW.{column}) NOT IN (",
        pairs,
        "           ) THEN",
        raise_(
            f"{table} %: no {machine.name} event leads from % to %",
            f"OLD.id, OLD.{column}, NEW.{column}",
            indent=12,
        ),
        "        END IF;",
    ]
    for stamp in machine.stamp_columns:
        lines += [
            f"        IF OLD.{stamp} IS NOT NULL AND NEW.{stamp} IS DISTINCT FROM OLD.{stamp} THEN",
            raise_(f"{table} %: {stamp} is set once and never changed", "OLD.id", indent=12),
            "        END IF;",
        ]
    lines.append("    END IF;")
    for state in machine.states:
        required = machine.required.get(state, ())
        forbidden = [c for c in machine.stamp_columns if c not in machine.may_set(state)]
        for stamp in required:
            lines += [
                f"    IF NEW.{column} = {_literal(state)} AND NEW.{stamp} IS NULL THEN",
                raise_(f"{table} %: state {state} requires {stamp}", "NEW.id"),
                "    END IF;",
            ]
        for stamp in forbidden:
            lines += [
                f"    IF NEW.{column} = {_literal(state)} AND NEW.{stamp} IS NOT NULL THEN",
                raise_(f"{table} %: state {state} does not allow {stamp}", "NEW.id"),
                "    END IF;",
            ]
    for condition in machine.conditions:
        lines += [
            f"    IF NEW.{column} = {_literal(condition.state)} AND NOT ({condition.sql()}) THEN",
            raise_(f"{table} %: {condition.message}", "NEW.id"),
            "    END IF;",
        ]
    lines += ["    RETURN NEW;", "END"]
    body = "\n".join(lines)
    function = (
        f"CREATE FUNCTION {trigger_function_name(machine)}() RETURNS trigger\n"
        f"    LANGUAGE plpgsql\n"
        f"    SET search_path = {TRIGGER_SEARCH_PATH}\n"
        f"    AS $function$\n{body}\n$function$"
    )
    trigger = (
        f"CREATE TRIGGER {trigger_name(machine)}\n"
        f"    BEFORE INSERT OR UPDATE ON {table}\n"
        f"    FOR EACH ROW EXECUTE FUNCTION {trigger_function_name(machine)}()"
    )
    return function, trigger
