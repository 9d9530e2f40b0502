"""Errors the migration engine raises, each carrying what a person needs to act on it.

Callers (the CLI, the operator's inline executor, tests) decide what a failure means for them by
its class: a usage error is fixed by changing the request, a connection or lock failure may be
retried as it is, a migration failure needs someone to look at the revision that failed. Every
error has a one-line message and a hint saying what to do next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rayces.migrations.results import ErrorKind

if TYPE_CHECKING:
    from rayces.migrations.results import MigrationResult


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


class SchemaDumpError(MigrationsError):
    """`pg_dump` failed or is missing."""

    kind = ErrorKind.SCHEMA_DUMP


class PlanError(MigrationsError):
    """A revision could not be rendered as SQL without a database (offline mode)."""

    kind = ErrorKind.PLAN
