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
out. Further signals during that cleanup are ignored, so a second Ctrl-C cannot cut it short.
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


@contextmanager
def interruptible() -> Iterator[None]:
    """Turn the first SIGINT or SIGTERM into `Interrupted` while the block runs.

    Outside the main thread (where Python cannot install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handle(signal_number: int, frame: FrameType | None) -> None:
        received.append(signal_number)
        if len(received) == 1:
            raise Interrupted(signal_number)

    previous = {number: signal.signal(number, handle) for number in HANDLED_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
