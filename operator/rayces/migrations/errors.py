"""Errors the migration engine raises, each carrying what a person needs to act on it.

Callers (the CLI, the operator's inline executor, tests) decide what a failure means for them by
its class: a usage error is fixed by changing the request, a connection or lock failure may be
retried as it is, a migration failure needs someone to look at the revision that failed. Every
error has a one-line message and a hint saying what to do next.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

from rayces.migrations.results import (
    CommandResult,
    DataLoss,
    ErrorInfo,
    ErrorKind,
    MigrationResult,
)


class MigrationsError(Exception):
    """Base of every error the migrations layer raises on purpose.

    :param message: what went wrong, one line, naming the input or revision concerned.
    :param hint: what to do about it, one line.
    """

    kind: ClassVar[ErrorKind] = ErrorKind.INTERNAL

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        #: the run's result when the error happened during one (where the database is, the
        #: steps done, the violations found); set by whoever raises, else `None`
        self.result: CommandResult | None = None

    def error_info(self) -> ErrorInfo:
        return ErrorInfo(kind=self.kind, message=self.message, hint=self.hint)

    def to_result(self, command: str, *, duration_seconds: float = 0.0) -> CommandResult:
        """The result to report for this error: the run's own if it got that far, else one
        with only the command and the error (revisions `None`: not known).

        :param duration_seconds: how long the command ran before it failed.
        """
        if self.result is not None:
            return self.result
        return MigrationResult(
            command=command,
            from_revision=None,
            to_revision=None,
            target_revision=None,
            error=self.error_info(),
            duration_seconds=duration_seconds,
            revisions_known=False,
        )


class UsageError(MigrationsError):
    """The request cannot be carried out as given: a bad URL, revision, step count or setting."""

    kind = ErrorKind.USAGE


class DatabaseUrlError(UsageError):
    """The database URL is malformed or names something other than PostgreSQL."""


class RevisionNotFoundError(UsageError):
    """A revision id (or symbol) names no revision script."""


class ConnectionFailedError(MigrationsError):
    """The database could not be reached, or the embedded server could not be started."""

    kind = ErrorKind.CONNECTION


class LockTimeoutError(MigrationsError):
    """Another run held the migration lock for longer than the caller was willing to wait."""

    kind = ErrorKind.LOCK_TIMEOUT


class MigrationFailedError(MigrationsError):
    """A revision raised; the database stays at the last revision that completed.

    :param result: the run's result, with the steps that completed, the revision the database is
        at now (`to_revision`) and the error.
    """

    kind = ErrorKind.MIGRATION_FAILED

    def __init__(self, message: str, *, hint: str = "", result: MigrationResult) -> None:
        super().__init__(message, hint=hint)
        self.result = result


class PermissionDeniedError(MigrationsError):
    """The database role lacks a privilege (SQLSTATE 42501); the hint names it."""

    kind = ErrorKind.PERMISSION_DENIED


class VerificationFailedError(MigrationsError):
    """A check found the database not as expected; the result lists what it found."""

    kind = ErrorKind.VERIFICATION_FAILED


class PreconditionFailedError(MigrationsError):
    """The data does not allow the request as it is: an unknown organization, a rule the
    current rows break. Nothing was changed."""

    kind = ErrorKind.PRECONDITION_FAILED


class AdoptionRefusedError(MigrationsError):
    """A database Rails made is not what its `schema_migrations` claims: a version unknown to
    the chain, a gap, or a schema that differs from the revision's. Nothing was changed.

    :param differences: each difference, one short line ("users.uid: missing").
    """

    kind = ErrorKind.ADOPTION_REFUSED

    def __init__(self, message: str, *, hint: str = "", differences: tuple[str, ...]) -> None:
        super().__init__(message, hint=hint)
        self.differences = differences


class DataLossRefusedError(MigrationsError):
    """A downgrade would drop tables or columns that hold rows, and that was not allowed.

    :param data_loss: each object that holds rows, with its row count.
    """

    kind = ErrorKind.DATA_LOSS_REFUSED

    def __init__(self, message: str, *, hint: str = "", data_loss: tuple[DataLoss, ...]) -> None:
        super().__init__(message, hint=hint)
        self.data_loss = data_loss

    def error_info(self) -> ErrorInfo:
        return ErrorInfo(
            kind=self.kind, message=self.message, hint=self.hint, data_loss=self.data_loss
        )


class RunInterruptedError(MigrationsError):
    """The run was stopped by a signal (SIGINT, SIGTERM) and cleaned up after itself.

    :param signal_number: the signal; the process should exit 128 + it.
    """

    kind = ErrorKind.INTERRUPTED

    def __init__(self, message: str, *, hint: str = "", signal_number: int) -> None:
        super().__init__(message, hint=hint)
        self.signal_number = signal_number

    @classmethod
    def replacing(
        cls, result: CommandResult | None, signal_number: int, *, hint: str
    ) -> RunInterruptedError:
        """The run received `signal_number` before its result (`result`, of a success or of
        another failure) was written: the same result, but interrupted.

        :param hint: what the person should know and do.
        """
        import dataclasses

        from rayces.migrations.signals import signal_number_name

        message = f"interrupted by {signal_number_name(signal_number)}"
        interrupted = cls(message, hint=hint, signal_number=signal_number)
        if result is not None:  # every result class is a frozen dataclass
            error = ErrorInfo(kind=ErrorKind.INTERRUPTED, message=message, hint=hint)
            interrupted.result = dataclasses.replace(cast(Any, result), error=error)
        return interrupted


class SchemaDumpError(MigrationsError):
    """`pg_dump` failed or is missing."""

    kind = ErrorKind.SCHEMA_DUMP


class PlanError(MigrationsError):
    """A revision could not be rendered as SQL without a database (offline mode)."""

    kind = ErrorKind.PLAN
