"""Test-only fault hooks: stop a run at a chosen moment, as a lost node or an eviction would.

A signal that arrives "at a random moment" misses the moments that matter (between a batch's
COMMIT and the next, inside `CREATE INDEX CONCURRENTLY`, while the journal records a step), so
the tests name the moment instead. Each hook is read once per process from the environment and
does nothing when unset; nothing in production sets them.

- `RAYCES_FAULT_AFTER_STEP=REVISION:DIRECTION:N[:SIGNAL]`: right after the N-th step (1-based,
  in the order the revision declares them) of that revision in that direction has completed,
  send the process SIGNAL: `KILL` (the default: a lost node), `TERM` (the kubelet) or `INT`
  (Ctrl-C).
- `RAYCES_FAULT_SIGNAL=SIGNAL@MOMENT[,SIGNAL@MOMENT...]`: send SIGNAL (`TERM`, `INT`, `KILL`,
  or `STOP`, which freezes the process there until a test sends SIGCONT) at each MOMENT:
  - `statement:K`: inside the K-th statement the process sends to a server (counted from 1 over
    the whole process): a helper thread waits until the driver shows the statement in progress,
    then signals, so the signal lands while the server runs it; for a statement quicker than
    that, just after it, and never later than the next statement, COMMIT or result;
  - `before-statement:K`: just before the K-th statement is handed to the driver;
  - `commit:K`: inside the K-th COMMIT the process sends, as for `statement`;
  - `applied:REVISION`: when Alembic records REVISION as done, before its COMMIT;
  - `result`: just before the result is written.
- `RAYCES_FAULT_TRACE=PATH`: append one JSON line per statement and COMMIT to PATH (its number,
  the revision, direction and step running, and the start of its SQL), so a test can choose
  its moments from a real run.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from rayces.migrations import progress

AFTER_STEP_VARIABLE = "RAYCES_FAULT_AFTER_STEP"
SIGNAL_VARIABLE = "RAYCES_FAULT_SIGNAL"
TRACE_VARIABLE = "RAYCES_FAULT_TRACE"

#: How long the helper thread waits for a statement to show as in progress before signalling.
_INSIDE_WAIT_SECONDS = 2.0


def _signal_named(name: str) -> int:
    bare = name.upper().removeprefix("SIG")
    if bare not in ("KILL", "TERM", "INT", "STOP"):
        raise ValueError(f"unknown signal {name!r}: use KILL, TERM, INT or STOP")
    return int(getattr(signal, f"SIG{bare}"))


@dataclass(frozen=True)
class StepFault:
    """Where `RAYCES_FAULT_AFTER_STEP` stops the process, and with which signal."""

    revision: str
    direction: str
    step_number: int
    signal_number: int = signal.SIGKILL


def parse_step_fault(value: str) -> StepFault | None:
    """`REVISION:DIRECTION:N[:SIGNAL]` as a StepFault; `None` for an empty value.

    :raises ValueError: the value is not of that form.
    """
    if not value:
        return None
    parts = value.split(":")
    if (
        len(parts) not in (3, 4)
        or parts[1] not in ("upgrade", "downgrade")
        or not parts[2].isdigit()
    ):
        raise ValueError(f"{AFTER_STEP_VARIABLE}={value!r} is not REVISION:upgrade|downgrade:N")
    number = _signal_named(parts[3]) if len(parts) == 4 else signal.SIGKILL
    return StepFault(parts[0], parts[1], int(parts[2]), number)


@dataclass(frozen=True)
class SignalFault:
    """One `SIGNAL@MOMENT` of `RAYCES_FAULT_SIGNAL`."""

    signal_number: int
    moment: str
    argument: str = ""


_MOMENTS = ("statement", "before-statement", "commit", "applied", "result")


def parse_signal_faults(value: str) -> tuple[SignalFault, ...]:
    """`SIGNAL@MOMENT[,SIGNAL@MOMENT...]` as SignalFaults (none for an empty value).

    :raises ValueError: an item is not of that form.
    """
    faults = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, where = item.partition("@")
        moment, _, argument = where.partition(":")
        counted = moment in ("statement", "before-statement", "commit")
        if moment not in _MOMENTS or (counted and not argument.isdigit()):
            raise ValueError(
                f"{SIGNAL_VARIABLE} item {item!r} is not SIGNAL@MOMENT with MOMENT one of "
                "statement:K, before-statement:K, commit:K, applied:REVISION, result"
            )
        faults.append(SignalFault(_signal_named(name), moment, argument))
    return tuple(faults)


@functools.cache
def _step_fault() -> StepFault | None:
    return parse_step_fault(os.environ.get(AFTER_STEP_VARIABLE, ""))


@functools.cache
def _signal_faults() -> tuple[SignalFault, ...]:
    return parse_signal_faults(os.environ.get(SIGNAL_VARIABLE, ""))


@functools.cache
def _trace_path() -> str:
    return os.environ.get(TRACE_VARIABLE, "")


class _Counters:
    statements = 0
    commits = 0


def _send(signal_number: int) -> None:
    os.kill(os.getpid(), signal_number)


class _Owed:
    """A signal promised "inside" a statement, sent by a helper thread once the statement is
    in progress, or by the main thread at the next hook at the latest (a statement quicker than
    the thread's first look): never later than the next statement, COMMIT or result."""

    lock = threading.Lock()
    signal_number: int | None = None

    @classmethod
    def promise(cls, signal_number: int) -> None:
        with cls.lock:
            cls.signal_number = signal_number

    @classmethod
    def pay(cls) -> None:
        with cls.lock:
            number, cls.signal_number = cls.signal_number, None
        if number is not None:
            _send(number)


def _send_once_in_progress(dbapi_connection: Any, signal_number: int) -> None:
    """Signal once the connection has a command in progress (or at the next hook)."""
    _Owed.promise(signal_number)

    def wait_then_send() -> None:
        deadline = time.monotonic() + _INSIDE_WAIT_SECONDS
        while time.monotonic() < deadline and not _in_progress(dbapi_connection):
            time.sleep(0.0005)
        _Owed.pay()

    threading.Thread(target=wait_then_send, name="fault-signal", daemon=True).start()


def _in_progress(dbapi_connection: Any) -> bool:
    from psycopg import pq

    try:
        return bool(dbapi_connection.pgconn.transaction_status == pq.TransactionStatus.ACTIVE)
    except Exception:  # closed: too late to be inside
        return True


def _fire(moment: str, argument: str, dbapi_connection: Any = None) -> None:
    _Owed.pay()
    for fault in _signal_faults():
        if fault.moment != moment or fault.argument != argument:
            continue
        if dbapi_connection is not None and moment in ("statement", "commit"):
            _send_once_in_progress(dbapi_connection, fault.signal_number)
        else:
            _send(fault.signal_number)


def _trace(kind: str, number: int, sql: str) -> None:
    path = _trace_path()
    if not path:
        return
    position = progress.current_position()
    line = {
        "kind": kind,
        "number": number,
        "revision": position.revision,
        "direction": position.direction,
        "step": position.step,
        "sql": " ".join(sql.split())[:120],
    }
    with open(path, "a", encoding="utf-8") as trace:
        trace.write(json.dumps(line) + "\n")


def active() -> bool:
    """Whether any hook that watches statements or COMMITs is set."""
    return bool(_signal_faults() or _trace_path())


def statement_starting(statement: str, cursor: Any) -> None:
    """Called before each statement is handed to the driver."""
    if not active():
        return
    _Counters.statements += 1
    number = str(_Counters.statements)
    _trace("statement", _Counters.statements, statement)
    _fire("before-statement", number)
    _fire("statement", number, getattr(cursor, "connection", None))


def commit_starting(connection: Any) -> None:
    """Called before each COMMIT is sent on `connection` (SQLAlchemy's)."""
    if not active():
        return
    _Counters.commits += 1
    _trace("commit", _Counters.commits, "COMMIT")
    _fire("commit", str(_Counters.commits), connection.connection.dbapi_connection)


def revision_applied(revision: str) -> None:
    """Called when Alembic records a revision as done (before its COMMIT)."""
    if _signal_faults():
        _fire("applied", revision)


def result_writing() -> None:
    """Called just before a command writes its result."""
    if _signal_faults():
        _fire("result", "")


def step_completed(revision: str, direction: str, number: int) -> None:
    """Called after the `number`-th step of `revision` in `direction` has completed."""
    fault = _step_fault()
    if fault is not None and (fault.revision, fault.direction, fault.step_number) == (
        revision,
        direction,
        number,
    ):
        _send(fault.signal_number)
