"""SIGINT and SIGTERM as orderly interruptions of a run, not as sudden deaths.

The kubelet sends SIGTERM when a Job's Pod is deleted or runs past `activeDeadlineSeconds`, and
gives the process 30 s before SIGKILL; a person presses Ctrl-C. Either way the run must leave a
known state: the statement running on the server cancelled, the open transaction rolled back,
the migration lock released, and a result (which revision, which step) written for whoever
retries. And it must say so: exit 128 + the signal's number and an `interrupted` result, whatever
the run was doing at that moment.

An exception raised at an arbitrary point of the driver's or SQLAlchemy's Python code cannot
promise that: a `KeyboardInterrupt` between a batch's COMMIT and the next statement, or while
Alembic leaves an autocommit block, makes SQLAlchemy invalidate the connection half-way through a
transaction, and the cleanup that follows fails with "Can't reconnect until invalid transaction
is rolled back" instead of reporting the interruption. So a signal is *delivered* only where it
is safe to stop:

- **While a database connection is open** (checked out of an engine made by
  `rayces.migrations.database.create_database_engine`), the handler only notes the signal and
  sends the server a cancel request for each open connection. The running statement, if any,
  ends with the server's "canceling statement due to user request"; otherwise the next statement
  does not start: `checkpoint()`, called before every statement, raises `StopRequested` (an
  ordinary exception, which SQLAlchemy passes through without invalidating the connection).
  Either way the transaction rolls back on a connection that still works.
- **Where nothing is in flight** (connecting, sleeping between tries for the migration lock,
  code that has no connection open) the handler raises `Interrupted` at once, as Ctrl-C does.
  Python cannot raise it everywhere: if the signal lands in a weakref callback, a `__del__` or
  a garbage-collector callback (an import's module-lock callback is one), the exception goes to
  `sys.unraisablehook` instead. There the guard takes it back quietly and delivers the signal
  at the next checkpoint, as if a connection had been open.

Whatever exception then unwinds the run, the caller asks `take_signal()` whether a signal
arrived, and if one did, reports the run as interrupted (never as a failed revision). A signal
that arrives before the handlers are installed is noted by the console script
(`note_early_signals`) and delivered at the first checkpoint. Only the first signal interrupts:
further ones during the shutdown are noted and ignored, so a second Ctrl-C cannot cut the
cleanup short. Once the result is being written (`SignalGuard.hold()`), a signal is only noted,
so that a result is never cut in half or followed by a second one; a signal received before
that turns the result, success or failure, into an interrupted one.

The test-only fault hook `RAYCES_FAULT_SIGNAL` sends the process a signal at a chosen moment; see
`rayces.migrations.faults`.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

#: The signals a run handles, with the exit status each gives (128 + the signal's number).
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run received `signal_number` where nothing was in flight; raised at once.

    It derives from `KeyboardInterrupt` so that code which lets Ctrl-C through lets it through.
    """

    def __init__(self, signal_number: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signal_number).name}")
        self.signal_number = signal_number

    @property
    def signal_name(self) -> str:
        return signal_number_name(self.signal_number)

    @property
    def exit_status(self) -> int:
        return 128 + self.signal_number


class StopRequested(Exception):  # noqa: N818 - it is a request, not an error
    """A signal arrived while a connection was open; raised before the next statement starts.

    An `Exception`, not a `KeyboardInterrupt`: SQLAlchemy passes it through unchanged and keeps
    the connection usable, so the open transaction can be rolled back and the result read.
    """

    def __init__(self, signal_number: int) -> None:
        super().__init__(f"stopping: received {signal_number_name(signal_number)}")
        self.signal_number = signal_number


def signal_number_name(signal_number: int) -> str:
    """`SIGTERM` for 15."""
    return signal.Signals(signal_number).name


if TYPE_CHECKING:
    UnraisableHookArgs = sys.UnraisableHookArgs
else:
    UnraisableHookArgs = object

#: Cancels whatever the server is running for one connection; must not raise.
Canceller = Callable[[], None]
#: Whether that connection is still open.
OpenCheck = Callable[[], bool]


class SignalGuard:
    """The signals received while `interruptible()` is active, and how they are delivered."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.holding = False
        self._noting = False
        self._before_hold: int | None = None
        self._delivered = False
        self._connections: dict[int, tuple[OpenCheck, Canceller]] = {}
        self._immediate = 0

    @property
    def first_signal(self) -> int | None:
        return self.received[0] if self.received else None

    def hold(self) -> int | None:
        """From now on, note signals without interrupting (the result is being written).

        :returns: the first signal received before the first call, if any: the result must
            say so. Signals after it never change the result.
        """
        if not self.holding:
            self.holding = True
            self._before_hold = self.first_signal
        return self._before_hold

    def stop_raising(self) -> None:
        """From now on, note signals without raising (a failure is being reported); unlike
        `hold()`, a signal noted now still makes the result interrupted."""
        self._noting = True

    def handle(self, signal_number: int, frame: FrameType | None) -> None:
        self.received.append(signal_number)
        if len(self.received) > 1 or self.holding or self._noting:
            return
        open_connections = [cancel for is_open, cancel in self._connections.values() if is_open()]
        if open_connections and not self._immediate:
            for cancel in open_connections:
                cancel()
            return
        self._delivered = True
        raise Interrupted(signal_number)

    def unraisable(self, unraisable: UnraisableHookArgs) -> bool:
        """Take back an `Interrupted` of ours that Python could not raise (see above).

        :returns: whether it was ours; the signal is then delivered at the next checkpoint.
        """
        exception = unraisable.exc_value
        if not isinstance(exception, Interrupted) or exception.signal_number != self.first_signal:
            return False
        self._delivered = False
        return True

    def checkpoint(self) -> None:
        """Raise `StopRequested` once, if a signal arrived and was not delivered yet."""
        if self.received and not self._delivered and not self.holding:
            self._delivered = True
            raise StopRequested(self.received[0])

    def take_signal(self) -> int | None:
        """The first signal received, if any; from now on nothing more is raised for it."""
        self._delivered = True
        return self.first_signal

    def connection_opened(self, key: int, is_open: OpenCheck, cancel: Canceller) -> None:
        self._connections[key] = (is_open, cancel)

    def connection_closed(self, key: int) -> None:
        self._connections.pop(key, None)

    @contextmanager
    def immediately(self) -> Iterator[None]:
        """Inside the block, a signal interrupts at once even with a connection open."""
        self.checkpoint()
        self._immediate += 1
        try:
            yield
        finally:
            self._immediate -= 1


_active: SignalGuard | None = None
#: Signals noted by `note_early_signals` before any `interruptible()` block began.
_early: list[int] = []


def note_early_signals() -> None:
    """Until `interruptible()` takes over, note SIGINT and SIGTERM instead of dying of them.

    The first `interruptible()` block then treats them as received at its start. For a
    program's very first lines; outside the main thread it does nothing.
    """
    if _is_main_thread():
        for number in HANDLED_SIGNALS:
            signal.signal(number, _note_early)


def ignore_from_now_on() -> None:
    """Ignore SIGINT and SIGTERM for the rest of the process (its result is written)."""
    if _is_main_thread():
        for number in HANDLED_SIGNALS:
            signal.signal(number, signal.SIG_IGN)


def _note_early(signal_number: int, frame: FrameType | None) -> None:
    _early.append(signal_number)


@contextmanager
def interruptible() -> Iterator[SignalGuard]:
    """Handle SIGINT and SIGTERM as described above while the block runs.

    Outside the main thread (where Python cannot install handlers) signals are left alone, and
    the module's functions do nothing.
    """
    global _active  # noqa: PLW0603 - one run per process; signals are process-wide
    guard = SignalGuard()
    if not _is_main_thread():
        yield guard
        return
    previous = {number: signal.signal(number, guard.handle) for number in HANDLED_SIGNALS}
    guard.received.extend(_early)  # delivered at the first checkpoint
    _early.clear()
    outer, _active = _active, guard
    outer_hook = sys.unraisablehook

    def unraisable_hook(unraisable: UnraisableHookArgs) -> None:
        if not guard.unraisable(unraisable):
            outer_hook(unraisable)

    sys.unraisablehook = unraisable_hook
    try:
        yield guard
    finally:
        sys.unraisablehook = outer_hook
        _active = outer
        for number, handler in previous.items():
            signal.signal(number, handler)


def checkpoint() -> None:
    """Called before each statement: raise `StopRequested` if a signal is waiting to be
    delivered. Does nothing outside `interruptible()`."""
    if _active is not None and _is_main_thread():
        _active.checkpoint()


def take_signal() -> int | None:
    """The first signal the run received (`None` if none, or outside `interruptible()`); the
    caller reports the run as interrupted by it."""
    if _active is None or not _is_main_thread():
        return None
    return _active.take_signal()


def connection_opened(key: int, is_open: OpenCheck, cancel: Canceller) -> None:
    """A database connection is open: while `is_open()`, a signal cancels its statement and
    waits for a checkpoint, instead of raising wherever the main thread happens to be."""
    if _active is not None:
        _active.connection_opened(key, is_open, cancel)


def connection_closed(key: int) -> None:
    if _active is not None:
        _active.connection_closed(key)


def sleep(seconds: float) -> None:
    """`time.sleep`, during which a signal interrupts at once (`Interrupted`)."""
    if _active is None or not _is_main_thread():
        time.sleep(seconds)
        return
    with _active.immediately():
        time.sleep(seconds)


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
