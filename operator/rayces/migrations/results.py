"""What a migration run, a status query or a plan produced, as plain frozen values.

These are the migrations layer's answers to its callers. They are data, not behaviour, so the
same value can be printed for a person, written as JSON for the operator (which reads it back from
a Job pod's termination message), or compared in a test. `termination_message` keeps the JSON
within Kubernetes' 4096-byte limit without losing the fields the operator needs: the revisions
before and after, and the error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Direction = Literal["upgrade", "downgrade"]

#: Kubernetes keeps at most this many bytes of a container's termination message.
TERMINATION_MESSAGE_LIMIT = 4096


@dataclass(frozen=True)
class MigrationStep:
    """One revision applied or reverted, with how long it took (its transaction included)."""

    revision: str
    name: str
    direction: Direction
    duration_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "name": self.name,
            "direction": self.direction,
            "duration_seconds": round(self.duration_seconds, 6),
        }


@dataclass(frozen=True)
class ErrorInfo:
    """Why a run failed: a kind the caller can branch on, a message, a hint, and the revision
    that was running when it failed (if one was)."""

    kind: str
    message: str
    hint: str = ""
    revision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "hint": self.hint,
            "revision": self.revision,
        }


@dataclass(frozen=True)
class MigrationResult:
    """The outcome of `upgrade` or `downgrade`.

    `to_revision` is where the database *is* after the run (on failure: the last revision that
    completed), `target_revision` where it was asked to go. `None` means base (no revision).
    """

    command: str
    from_revision: str | None
    to_revision: str | None
    target_revision: str | None
    steps: tuple[MigrationStep, ...] = ()
    error: ErrorInfo | None = None
    duration_seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "status": "succeeded" if self.succeeded else "failed",
            "from_revision": self.from_revision,
            "to_revision": self.to_revision,
            "target_revision": self.target_revision,
            "steps": [step.to_dict() for step in self.steps],
            "duration_seconds": round(self.duration_seconds, 6),
            "error": self.error.to_dict() if self.error else None,
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


@dataclass(frozen=True)
class RevisionState:
    """One revision script and whether the database has it applied."""

    revision: str
    name: str
    down_revision: str | None
    applied: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "name": self.name,
            "down_revision": self.down_revision,
            "status": "up" if self.applied else "down",
        }


@dataclass(frozen=True)
class StatusReport:
    """Every revision, oldest first, with the database's current and the scripts' head revision."""

    current_revision: str | None
    head_revision: str | None
    revisions: tuple[RevisionState, ...] = field(default_factory=tuple)

    @property
    def pending(self) -> tuple[RevisionState, ...]:
        return tuple(state for state in self.revisions if not state.applied)

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": "status",
            "current_revision": self.current_revision,
            "head_revision": self.head_revision,
            "pending": len(self.pending),
            "revisions": [state.to_dict() for state in self.revisions],
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


@dataclass(frozen=True)
class MigrationPlan:
    """The SQL an upgrade or downgrade would run, rendered without touching the database."""

    from_revision: str | None
    to_revision: str | None
    direction: Direction | None
    revisions: tuple[str, ...]
    sql: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": "plan",
            "from_revision": self.from_revision,
            "to_revision": self.to_revision,
            "direction": self.direction,
            "revisions": list(self.revisions),
            "sql": self.sql,
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def _size(document: dict[str, Any]) -> int:
    return len(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode())


def _shorten(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max(max_bytes - 3, 0)].decode(errors="ignore") + "..."


#: What an error's message and hint are cut to first, so that steps are not all lost to them.
_ERROR_MESSAGE_BUDGET = 2048
_ERROR_HINT_BUDGET = 512


def _cut_error(document: dict[str, Any], key: str, budget: int) -> None:
    error = document["error"]
    value = str(error.get(key) or "")
    if len(value.encode()) > budget:
        document["error"] = {**error, key: _shorten(value, budget)}


def termination_message(document: dict[str, Any], limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
    """Compact JSON of `document` that fits in `limit` bytes, keeping from/to/error intact.

    What gives way, in order: the error's message and hint beyond 2048 and 512 bytes, then the
    oldest steps (`steps_omitted` counts them), then the rest of the hint and of the message
    (a cut text ends in "...").

    :param document: a result's `to_dict()`.
    :param limit: the byte budget; Kubernetes' is 4096.
    """
    document = dict(document)
    if _size(document) <= limit:
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    if isinstance(document.get("error"), dict):
        _cut_error(document, "message", _ERROR_MESSAGE_BUDGET)
        _cut_error(document, "hint", _ERROR_HINT_BUDGET)
    steps = list(document.get("steps") or [])
    omitted = 0
    while steps and _size({**document, "steps": steps, "steps_omitted": omitted}) > limit:
        steps.pop(0)
        omitted += 1
    if omitted:
        document["steps"] = steps
        document["steps_omitted"] = omitted
    for key in ("hint", "message"):
        # JSON escaping makes a value longer than its text: shorten until it fits.
        while isinstance(document.get("error"), dict) and _size(document) > limit:
            value = str(document["error"].get(key) or "")
            if not value:
                break
            budget = len(value.encode()) - (_size(document) - limit) - 3
            if budget > 0:
                _cut_error(document, key, budget)
            else:
                document["error"] = {**document["error"], key: ""}
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    if len(text.encode()) > limit:
        # Only an absurd command or revision id gets here: keep the outcome readable at least.
        text = json.dumps(
            {
                "command": document.get("command"),
                "status": document.get("status"),
                "truncated": True,
            },
            separators=(",", ":"),
        )
    return text
