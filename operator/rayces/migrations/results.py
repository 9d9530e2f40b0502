"""What a migration run, a status query or a plan produced, as plain frozen values.

These are the migrations layer's answers to its callers. They are data, not behaviour, so the
same value can be printed for a person, written as JSON for the operator (which reads it back from
a Job pod's termination message), or compared in a test. `termination_message` keeps the JSON
within Kubernetes' 4096-byte limit without losing the fields the operator needs: the revisions
before and after, and the error.

The JSON is an interface between two processes and possibly two versions of the image (the Job
writes it, the controller reads it), so it is versioned (`schema_version`) and its error kinds are
a closed, documented set (`ErrorKind`), each with its exit code and whether a retry may help.
This module imports nothing heavier than the standard library: the controller reads results
through it without loading SQLAlchemy, Alembic or psycopg.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Self

Direction = Literal["upgrade", "downgrade"]

#: Version of the JSON result contract. A reader accepts documents of this version and older;
#: a field is only ever added, and a new version is needed to remove or change one.
RESULT_SCHEMA_VERSION = 1


class ExitCode(enum.IntEnum):
    """`raycesctl`'s exit codes: the contract a Job's `podFailurePolicy` is built from."""

    OK = 0
    #: a revision (or another database operation) failed; not retryable as it is
    FAILED = 1
    USAGE = 2
    CONNECTION = 3
    LOCK_TIMEOUT = 4
    DATA_LOSS_REFUSED = 5
    PERMISSION_DENIED = 6
    VERIFICATION_FAILED = 7
    PRECONDITION_FAILED = 8
    INTERRUPTED = 130  # SIGINT
    TERMINATED = 143  # SIGTERM, as the kubelet sends it


class ErrorKind(enum.StrEnum):
    """Why a command failed, as the JSON result's `error.kind` names it.

    Each kind has one exit code and says whether running the same command again, unchanged,
    may succeed (`retryable`).
    """

    USAGE = "usage"
    CONNECTION = "connection"
    LOCK_TIMEOUT = "lock_timeout"
    MIGRATION_FAILED = "migration_failed"
    DATA_LOSS_REFUSED = "data_loss_refused"
    PERMISSION_DENIED = "permission_denied"
    VERIFICATION_FAILED = "verification_failed"
    PRECONDITION_FAILED = "precondition_failed"
    ADOPTION_REFUSED = "adoption_refused"
    INTERRUPTED = "interrupted"
    SCHEMA_DUMP = "schema_dump"
    PLAN = "plan"
    INTERNAL = "internal"

    @property
    def exit_code(self) -> ExitCode:
        """The process exit code for this kind (an interruption by SIGTERM exits 143 instead)."""
        return _EXIT_CODE_OF_KIND[self]

    @property
    def retryable(self) -> bool:
        """Whether the same command, run again unchanged, may succeed."""
        return self in _RETRYABLE_KINDS


_EXIT_CODE_OF_KIND: dict[ErrorKind, ExitCode] = {
    ErrorKind.USAGE: ExitCode.USAGE,
    ErrorKind.CONNECTION: ExitCode.CONNECTION,
    ErrorKind.LOCK_TIMEOUT: ExitCode.LOCK_TIMEOUT,
    ErrorKind.MIGRATION_FAILED: ExitCode.FAILED,
    ErrorKind.DATA_LOSS_REFUSED: ExitCode.DATA_LOSS_REFUSED,
    ErrorKind.PERMISSION_DENIED: ExitCode.PERMISSION_DENIED,
    ErrorKind.VERIFICATION_FAILED: ExitCode.VERIFICATION_FAILED,
    ErrorKind.PRECONDITION_FAILED: ExitCode.PRECONDITION_FAILED,
    ErrorKind.ADOPTION_REFUSED: ExitCode.PRECONDITION_FAILED,
    ErrorKind.INTERRUPTED: ExitCode.INTERRUPTED,
    ErrorKind.SCHEMA_DUMP: ExitCode.FAILED,
    ErrorKind.PLAN: ExitCode.FAILED,
    ErrorKind.INTERNAL: ExitCode.FAILED,
}

_RETRYABLE_KINDS = frozenset({ErrorKind.CONNECTION, ErrorKind.LOCK_TIMEOUT, ErrorKind.INTERRUPTED})

#: What each exit code means, for `raycesctl --help` and the README.
EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success (also: nothing to do)",
    ExitCode.FAILED: "a revision failed (the database stays at the last revision that "
    "completed; the JSON's to_revision says which), or another operation failed",
    ExitCode.USAGE: "usage error: bad option, database URL, revision, step count or value "
    "(a slug, time zone or amount); purge without --yes",
    ExitCode.CONNECTION: "cannot connect to the database (or lost it), or the embedded "
    "PostgreSQL did not start; retryable",
    ExitCode.LOCK_TIMEOUT: "another run held the migration lock longer than "
    "--lock-wait-timeout; retryable",
    ExitCode.DATA_LOSS_REFUSED: "rollback refused: it would drop tables or columns that hold "
    "rows (see --allow-data-loss)",
    ExitCode.PERMISSION_DENIED: "the database role lacks a privilege; the hint names it",
    ExitCode.VERIFICATION_FAILED: "verify found violations (each is listed: check, table, id, "
    "what is wrong)",
    ExitCode.PRECONDITION_FAILED: "the database is not in a state the command can start from: "
    "no organization has that slug, or the data does not allow it; or a database Rails made "
    "does not match what its schema_migrations claims (each difference is listed)",
    ExitCode.INTERRUPTED: "interrupted by SIGINT (the JSON says where; run again to resume)",
    ExitCode.TERMINATED: "terminated by SIGTERM (as the kubelet sends it); as 130",
}


def error_kind(value: str) -> ErrorKind:
    """The kind named `value`; an unknown name (from a newer writer) reads as `internal`."""
    try:
        return ErrorKind(value)
    except ValueError:
        return ErrorKind.INTERNAL


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
class DataLoss:
    """A table or column a downgrade would drop, and how many rows hold data in it."""

    object: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "rows": self.rows}


@dataclass(frozen=True)
class DroppedData:
    """A table or column a rollback dropped although it held rows, and why that was safe."""

    object: str
    rows: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "rows": self.rows, "reason": self.reason}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> DroppedData:
        return cls(
            object=str(document.get("object") or ""),
            rows=int(document.get("rows") or 0),
            reason=str(document.get("reason") or ""),
        )


@dataclass(frozen=True)
class ErrorInfo:
    """Why a run failed: a kind the caller can branch on, a message, a hint, and the revision
    (and, inside it, the step) that was running when it failed, if one was."""

    kind: ErrorKind
    message: str
    hint: str = ""
    revision: str | None = None
    step: str | None = None
    #: for `data_loss_refused`: what the downgrade would drop, with row counts
    data_loss: tuple[DataLoss, ...] = ()

    @property
    def retryable(self) -> bool:
        return self.kind.retryable

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "retryable": self.retryable,
            "message": self.message,
            "hint": self.hint,
            "revision": self.revision,
            "step": self.step,
            "data_loss": [loss.to_dict() for loss in self.data_loss],
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> ErrorInfo:
        return cls(
            kind=error_kind(str(document.get("kind") or "")),
            message=str(document.get("message") or ""),
            hint=str(document.get("hint") or ""),
            revision=_optional_str(document.get("revision")),
            step=_optional_str(document.get("step")),
            data_loss=tuple(
                DataLoss(object=str(loss.get("object")), rows=int(loss.get("rows") or 0))
                for loss in document.get("data_loss") or []
                if isinstance(loss, dict)
            ),
        )


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


class CommandResult:
    """What every command's result shares: the versioned envelope (`schema_version`, `command`,
    `status`, `duration_seconds`, `error`) around the command's own fields, and reading it back
    from a termination message."""

    command: str
    error: ErrorInfo | None
    duration_seconds: float

    @property
    def succeeded(self) -> bool:
        return self.error is None

    def fields(self) -> dict[str, Any]:
        """The command's own fields, between `status` and `duration_seconds` in the JSON."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": RESULT_SCHEMA_VERSION,
            "command": self.command,
            "status": "succeeded" if self.succeeded else "failed",
            **self.fields(),
            "duration_seconds": round(self.duration_seconds, 6),
            "error": self.error.to_dict() if self.error else None,
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def termination_message(self, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
        """The JSON cut to `limit` bytes (see the module's `termination_message`)."""
        return termination_message(self.to_dict(), limit)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Self:
        """Read a result back, as the controller does; fields a newer writer added are ignored.

        :raises ValueError: the document is not a result, or has a newer `schema_version`.
        """
        version = document.get("schema_version", 0)
        if not isinstance(version, int) or version > RESULT_SCHEMA_VERSION:
            raise ValueError(
                f"result schema_version {version!r} is newer than {RESULT_SCHEMA_VERSION}"
            )
        if not isinstance(document.get("command"), str):
            raise ValueError("not a raycesctl result: no 'command'")
        error = document.get("error")
        values = {
            **cls.fields_from(document),
            "command": document["command"],
            "error": ErrorInfo.from_dict(error) if isinstance(error, dict) else None,
            "duration_seconds": float(document.get("duration_seconds") or 0.0),
        }
        return cls(**values)

    @classmethod
    def fields_from(cls, document: dict[str, Any]) -> dict[str, Any]:
        """The command's own fields read from `document` (as `fields` writes them)."""
        raise NotImplementedError

    @classmethod
    def from_termination_message(cls, message: str) -> Self:
        """Read the result a Job's container wrote to its termination message.

        :raises ValueError: the message is not JSON, or not a result this version can read.
        """
        try:
            document = json.loads(message)
        except json.JSONDecodeError as error:
            raise ValueError(f"termination message is not JSON: {error.msg}") from None
        if not isinstance(document, dict):
            raise ValueError("termination message is not a JSON object")
        return cls.from_dict(document)


@dataclass(frozen=True)
class MigrationResult(CommandResult):
    """The outcome of `upgrade` or `downgrade`.

    `to_revision` is where the database *is* after the run (on failure: the last revision that
    completed), `target_revision` where it was asked to go. `None` means base (no revision),
    unless `revisions_known` is false: the run ended before it read the database's revision (a
    usage error, no connection, a signal while starting), so both revisions are unknown. The JSON
    carries `"revisions_known": false` only then, so results stay as they were otherwise.

    `adopted_from_rails` is the revision this run recorded from Rails' `schema_migrations`
    (after comparing the schema with it); `rails_only_versions` the versions Rails recorded
    that this chain does not have. Both appear in the JSON only when set.

    `dropped` lists what a rollback dropped although it held rows, because every row was the
    failed upgrade run's own (see `rayces.migrations.run_ledger`); in the JSON only when set.
    """

    command: str
    from_revision: str | None
    to_revision: str | None
    target_revision: str | None
    steps: tuple[MigrationStep, ...] = ()
    error: ErrorInfo | None = None
    duration_seconds: float = 0.0
    revisions_known: bool = True
    adopted_from_rails: str | None = None
    rails_only_versions: tuple[str, ...] = ()
    dropped: tuple[DroppedData, ...] = ()

    @property
    def adoption_message(self) -> str | None:
        """ "adopted from Rails at REV" when this run adopted the database, else `None`."""
        if self.adopted_from_rails is None:
            return None
        return f"adopted from Rails at {self.adopted_from_rails}"

    def fields(self) -> dict[str, Any]:
        adoption = self.adoption_message
        return {
            "from_revision": self.from_revision,
            "to_revision": self.to_revision,
            "target_revision": self.target_revision,
            **({} if self.revisions_known else {"revisions_known": False}),
            **(
                {}
                if adoption is None
                else {"adopted_from_rails": self.adopted_from_rails, "adoption": adoption}
            ),
            **(
                {"rails_only_versions": list(self.rails_only_versions)}
                if self.rails_only_versions
                else {}
            ),
            **({"dropped": [item.to_dict() for item in self.dropped]} if self.dropped else {}),
            "steps": [step.to_dict() for step in self.steps],
        }

    @classmethod
    def fields_from(cls, document: dict[str, Any]) -> dict[str, Any]:
        return dict(
            from_revision=_optional_str(document.get("from_revision")),
            to_revision=_optional_str(document.get("to_revision")),
            target_revision=_optional_str(document.get("target_revision")),
            revisions_known=document.get("revisions_known", True) is not False,
            adopted_from_rails=_optional_str(document.get("adopted_from_rails")),
            rails_only_versions=tuple(
                str(version) for version in document.get("rails_only_versions") or ()
            ),
            dropped=tuple(
                DroppedData.from_dict(item)
                for item in document.get("dropped") or ()
                if isinstance(item, dict)
            ),
            steps=tuple(
                MigrationStep(
                    revision=str(step.get("revision")),
                    name=str(step.get("name") or ""),
                    direction="downgrade" if step.get("direction") == "downgrade" else "upgrade",
                    duration_seconds=float(step.get("duration_seconds") or 0.0),
                )
                for step in document.get("steps") or []
                if isinstance(step, dict)
            ),
        )


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
class InterruptedRevision:
    """A revision that commits in steps and was stopped part-way: which way it was going and
    the steps of that run that completed (`migrate` resumes it, `rollback` undoes it)."""

    revision: str
    direction: Direction
    steps_done: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "direction": self.direction,
            "steps_done": list(self.steps_done),
        }


@dataclass(frozen=True)
class StatusReport:
    """Every revision, oldest first, with the database's current and the scripts' head revision,
    and the revision left part-way by an interrupted run, if any.

    Where the database has Rails' `schema_migrations`: `rails_revision` is the revision it
    records while nothing is recorded for Alembic yet (the next `migrate` adopts it, after
    comparing the schema); `rails_only_versions` the versions only Rails knows (newer than the
    chain); `rails_record_problems` what would refuse adoption (unknown versions, gaps).

    `unfinished_run_from` is set while an upgrade run is recorded in the run ledger (it failed,
    was interrupted, or is running): the revision it started from, where `rollback --to` drops
    what it wrote without `--allow-data-loss`. In the JSON only when set (`unfinished_run`).
    """

    current_revision: str | None
    head_revision: str | None
    revisions: tuple[RevisionState, ...] = field(default_factory=tuple)
    interrupted: InterruptedRevision | None = None
    rails_revision: str | None = None
    rails_only_versions: tuple[str, ...] = ()
    rails_record_problems: tuple[str, ...] = ()
    unfinished_run_from: str | None = None
    unfinished_run: bool = False

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
            "interrupted": self.interrupted.to_dict() if self.interrupted else None,
            "rails_revision": self.rails_revision,
            "rails_only_versions": list(self.rails_only_versions),
            "rails_record_problems": list(self.rails_record_problems),
            **(
                {"unfinished_run": {"from_revision": self.unfinished_run_from}}
                if self.unfinished_run
                else {}
            ),
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


@dataclass(frozen=True)
class MigrationPlan:
    """The SQL an upgrade or downgrade would run, rendered without touching the database.

    `from_rails_record`: the start is the revision Rails' `schema_migrations` records, not yet
    adopted (`migrate` compares the schema and records it before running this SQL).
    """

    from_revision: str | None
    to_revision: str | None
    direction: Direction | None
    revisions: tuple[str, ...]
    sql: str
    from_rails_record: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": "plan",
            "from_revision": self.from_revision,
            **({"from_rails_record": True} if self.from_rails_record else {}),
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


#: Lists a termination message may shorten, each with the index of the item that goes first:
#: the oldest steps (the newest say where the run ended), the last violations (the first is the
#: one the error message names).
_OMISSIBLE_LISTS: tuple[tuple[str, int], ...] = (("steps", 0), ("violations", -1))


def _cut_error(document: dict[str, Any], key: str, budget: int) -> None:
    error = document["error"]
    value = str(error.get(key) or "")
    if len(value.encode()) > budget:
        document["error"] = {**error, key: _shorten(value, budget)}


def termination_message(document: dict[str, Any], limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
    """Compact JSON of `document` that fits in `limit` bytes, keeping from/to/error intact.

    What gives way, in order: the error's message and hint beyond 2048 and 512 bytes, then the
    oldest steps (`steps_omitted` counts them), then the last violations (`violations_omitted`),
    then the rest of the hint and of the message (a cut text ends in "...").

    :param document: a result's `to_dict()`.
    :param limit: the byte budget; Kubernetes' is 4096.
    """
    document = dict(document)
    if _size(document) <= limit:
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    if isinstance(document.get("error"), dict):
        _cut_error(document, "message", _ERROR_MESSAGE_BUDGET)
        _cut_error(document, "hint", _ERROR_HINT_BUDGET)
    for key, first in _OMISSIBLE_LISTS:
        items = list(document.get(key) or [])
        omitted = 0
        while items and _size({**document, key: items, f"{key}_omitted": omitted}) > limit:
            items.pop(first)
            omitted += 1
        if omitted:
            document[key] = items
            document[f"{key}_omitted"] = omitted
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


@dataclass(frozen=True)
class TenantResult(CommandResult):
    """The outcome of `seed`, `tenant archive`, `tenant purge` and `verify` (one organization or,
    for verify, possibly all), in the same versioned contract as `MigrationResult`.

    Which fields a command fills: `seed` `organization_created`, `changed_fields` and
    `rows_created`; `tenant archive` `previous_status`; `tenant purge` `rows_removed`; `verify`
    `checks` and `violations` (each `{check, table, id, message}`). `changed` says whether the
    database was modified, so an operator can tell a no-op from work done.
    """

    command: str
    organization: str | None = None
    organization_id: int | None = None
    changed: bool = False
    organization_created: bool | None = None
    changed_fields: dict[str, Any] | None = None
    rows_created: dict[str, int] | None = None
    previous_status: str | None = None
    rows_removed: dict[str, int] | None = None
    checks: tuple[str, ...] = ()
    violations: tuple[dict[str, Any], ...] = ()
    error: ErrorInfo | None = None
    duration_seconds: float = 0.0

    def fields(self) -> dict[str, Any]:
        return {
            "organization": self.organization,
            "organization_id": self.organization_id,
            "changed": self.changed,
            "organization_created": self.organization_created,
            "changed_fields": self.changed_fields,
            "rows_created": self.rows_created,
            "previous_status": self.previous_status,
            "rows_removed": self.rows_removed,
            "checks": list(self.checks),
            "violations": list(self.violations),
        }

    @classmethod
    def fields_from(cls, document: dict[str, Any]) -> dict[str, Any]:
        organization_id = document.get("organization_id")
        return dict(
            organization=_optional_str(document.get("organization")),
            organization_id=organization_id if isinstance(organization_id, int) else None,
            changed=bool(document.get("changed")),
            organization_created=document.get("organization_created"),
            changed_fields=document.get("changed_fields"),
            rows_created=document.get("rows_created"),
            previous_status=_optional_str(document.get("previous_status")),
            rows_removed=document.get("rows_removed"),
            checks=tuple(str(check) for check in document.get("checks") or ()),
            violations=tuple(v for v in document.get("violations") or () if isinstance(v, dict)),
        )
