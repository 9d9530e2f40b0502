"""SIGINT and SIGTERM as orderly interruptions of a run, not as sudden deaths.

The kubelet sends SIGTERM when a Job's Pod is deleted or runs past `activeDeadlineSeconds`, and
gives the process 30 s before SIGKILL; a person presses Ctrl-C. Either way the run must leave a
known state: the statement running on the server cancelled, the open transaction rolled back,
the migration lock released, and a result (which revision, which step) written for whoever
retries.

While `interruptible()` is active, the first SIGINT or SIGTERM raises `Interrupted` in the main
thread. It derives from `KeyboardInterrupt` on purpose: psycopg answers a `KeyboardInterrupt`
that arrives while it waits for the server by sending the server a cancel request for the running
statement and waiting for the server to stop it, so the cancellation is done by the driver that
owns the connection, at the moment the signal arrives. SQLAlchemy then discards the connection,
which ends the server session: its transaction rolls back and its advisory lock is released.
Alembic's transaction blocks and `rayces.migrations.commands` only clean up and report on the way
out. Further signals during that cleanup are ignored, so a second Ctrl-C cannot cut it short; and
once the caller starts writing its result (`SignalGuard.hold()`), a first signal is only noted,
so that a result is never cut in half or followed by a second one.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: The signals a run handles, with the exit status each gives (128 + the signal's number).
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run received `signal_number`; raised once, where the main thread happens to be."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signal_number).name}")
        self.signal_number = signal_number

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name

    @property
    def exit_status(self) -> int:
        return 128 + self.signal_number


class SignalGuard:
    """The signals received while `interruptible()` is active, and whether they still interrupt."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.holding = False

    def hold(self) -> None:
        """From now on, note signals without interrupting (the result is being written)."""
        self.holding = True

    def handle(self, signal_number: int, frame: FrameType | None) -> None:
        self.received.append(signal_number)
        if len(self.received) == 1 and not self.holding:
            raise Interrupted(signal_number)


@contextmanager
def interruptible() -> Iterator[SignalGuard]:
    """Turn the first SIGINT or SIGTERM into `Interrupted` while the block runs.

    Outside the main thread (where Python cannot install handlers) signals are left alone.
    """
    guard = SignalGuard()
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return
    previous = {number: signal.signal(number, guard.handle) for number in HANDLED_SIGNALS}
    try:
        yield guard
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
