"""Where a running migration is: the revision, and the step inside it.

The engine records the revision it is applying; a revision's online steps (the helpers in
`online_operations`) record the step they are in. Whoever has to report the position without
being handed it, a signal handler above all, reads `current_position()`. One migration runs per
process, so the position is process-wide.
"""

from __future__ import annotations

from dataclasses import dataclass

from rayces.migrations.results import Direction


@dataclass(frozen=True)
class Position:
    """The revision being applied or reverted and the step inside it; `None` when idle."""

    revision: str | None = None
    direction: Direction | None = None
    step: str | None = None


_IDLE = Position()
_position = _IDLE


def enter_revision(revision: str, direction: Direction) -> None:
    """Record that `revision` starts being applied (or reverted); no step yet."""
    global _position  # noqa: PLW0603 - one migration runs per process
    _position = Position(revision=revision, direction=direction)


def enter_step(step: str) -> None:
    """Record that the current revision has started `step` (a short, stable name)."""
    global _position  # noqa: PLW0603
    _position = Position(revision=_position.revision, direction=_position.direction, step=step)


def leave_revision() -> None:
    """Record that no revision is running any more."""
    global _position  # noqa: PLW0603
    _position = _IDLE


def current_position() -> Position:
    return _position
