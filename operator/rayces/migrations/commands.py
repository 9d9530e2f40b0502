"""One function per migration verb: upgrade, downgrade, stamp, status, plan, dump_schema.

This is the migrations layer's public surface, in the manner of `alembic.command`: each function
takes a database URL and plain values, does the whole job (connecting, locking, running Alembic,
timing each revision) and returns a result value from `rayces.migrations.results`, or raises an
error from `rayces.migrations.errors`. `raycesctl` only parses arguments and calls these; the
operator, the tests and a notebook call them the same way.

Runs that change the schema hold the migration advisory lock on the connection that runs the
revisions, and run each revision in its own transaction: when one fails, the database stays at the
last revision that completed, and the result says which one that is.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rayces.migrations.database import (
    apply_session_settings,
    connect,
    create_database_engine,
    first_line,
    normalize_database_url,
)
from rayces.migrations.errors import (
    MigrationFailedError,
    MigrationsError,
    PlanError,
    UsageError,
)
from rayces.migrations.journal import read_interrupted_revision, settle_interrupted_revision
from rayces.migrations.locking import acquire_migration_lock, release_migration_lock
from rayces.migrations.results import (
    Direction,
    ErrorInfo,
    MigrationPlan,
    MigrationResult,
    MigrationStep,
    RevisionState,
    StatusReport,
)
from rayces.migrations.scripts import (
    applied_count,
    build_config,
    load_scripts,
    resolve_revision,
    revision_chain,
    revision_name,
    revisions_between,
)

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext, MigrationInfo
    from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

#: Seconds a run waits for another run's migration lock by default.
DEFAULT_LOCK_WAIT_TIMEOUT = 60.0


def upgrade(
    database: str,
    to: str = "head",
    *,
    lock_wait_timeout: float = DEFAULT_LOCK_WAIT_TIMEOUT,
    lock_timeout: str | None = None,
    statement_timeout: str | None = None,
    x_arguments: Mapping[str, str] | None = None,
    script_location: Path | None = None,
) -> MigrationResult:
    """Apply the revisions between the database's current revision and `to`.

    :param database: PostgreSQL URL (`postgresql://`, `postgres://`, `postgresql+psycopg://`).
    :param to: target revision: `head` (default), a revision id or a unique prefix of one. It
        must not be older than the current revision (that is `downgrade`'s job).
    :param lock_wait_timeout: seconds to wait for another run's migration lock.
    :param lock_timeout: PostgreSQL `lock_timeout` for the revisions (`5s`, `500ms`; `None`
        keeps the server's); a revision waiting longer for a table lock fails.
    :param statement_timeout: PostgreSQL `statement_timeout` for the revisions, same syntax.
    :param x_arguments: values revisions read with `context.get_x_argument(as_dictionary=True)`,
        e.g. `default_organization_subdomain`.
    :param script_location: directory with env.py and versions/; the packaged scripts by default.
    :returns: the result, with one step per applied revision.
    :raises MigrationFailedError: a revision failed; its `result` tells where the database is.
    :raises UsageError: bad URL, unknown revision, or a target older than the current revision.
    :raises ConnectionFailedError: the database cannot be reached.
    :raises LockTimeoutError: another run held the lock for longer than `lock_wait_timeout`.
    """
    from rayces.migrations.online_operations import parse_default_organization

    # Checked before anything runs: the revisions that read them may come late in the run.
    parse_default_organization(x_arguments or {})
    return _run(
        "upgrade",
        database,
        lambda scripts, current: _resolve(scripts, to),
        lock_wait_timeout=lock_wait_timeout,
        lock_timeout=lock_timeout,
        statement_timeout=statement_timeout,
        x_arguments=x_arguments,
        script_location=script_location,
    )


def downgrade(
    database: str,
    *,
    to: str | None = None,
    steps: int | None = None,
    lock_wait_timeout: float = DEFAULT_LOCK_WAIT_TIMEOUT,
    lock_timeout: str | None = None,
    statement_timeout: str | None = None,
    x_arguments: Mapping[str, str] | None = None,
    script_location: Path | None = None,
) -> MigrationResult:
    """Revert revisions, down to revision `to` or by `steps` revisions (one of the two; neither
    means one step).

    :param database: PostgreSQL URL, as for `upgrade`.
    :param to: revision to end at (`base` reverts everything); must be applied already.
    :param steps: how many revisions to revert, at least 1 and at most the number applied.
    :param lock_wait_timeout: seconds to wait for another run's migration lock.
    :param lock_timeout: PostgreSQL `lock_timeout` for the revisions, as for `upgrade`.
    :param statement_timeout: PostgreSQL `statement_timeout` for the revisions.
    :param x_arguments: `-x` values for the revisions, as for `upgrade`.
    :param script_location: directory with env.py and versions/; the packaged scripts by default.
    :returns: the result, with one step per reverted revision.
    :raises MigrationFailedError: a revision's downgrade failed; see `upgrade`.
    :raises UsageError: both or invalid `to`/`steps`, or more steps than revisions applied.
    """
    if to is not None and steps is not None:
        raise UsageError("give either a target revision or a step count, not both")
    if steps is None and to is None:
        steps = 1
    if steps is not None and steps < 1:
        raise UsageError(f"cannot roll back {steps} steps", hint="give a step count of 1 or more")

    def target(scripts: Any, current: str | None) -> str | None:
        if to is not None:
            return _resolve(scripts, to)
        assert steps is not None
        chain = revision_chain(scripts)
        applied = applied_count(chain, current)
        if steps > applied:
            raise UsageError(
                f"cannot roll back {steps} steps: {applied} revisions are applied",
                hint="use a smaller --steps, or --to base to revert everything",
            )
        return None if steps == applied else chain[applied - steps - 1].revision

    return _run(
        "downgrade",
        database,
        target,
        lock_wait_timeout=lock_wait_timeout,
        lock_timeout=lock_timeout,
        statement_timeout=statement_timeout,
        x_arguments=x_arguments,
        script_location=script_location,
    )


def stamp(
    database: str,
    revision: str,
    *,
    lock_wait_timeout: float = DEFAULT_LOCK_WAIT_TIMEOUT,
    script_location: Path | None = None,
) -> MigrationResult:
    """Record `revision` as the database's current revision without running any revision.

    This is how a database whose schema already matches a revision is brought under the
    migrations: an existing MyHub database is stamped at the baseline, `20240606034427`, and
    then upgraded. Stamping changes nothing but the `alembic_version` row.

    :param database: PostgreSQL URL, as for `upgrade`.
    :param revision: the revision the schema is at (`base` clears the record).
    :param lock_wait_timeout: seconds to wait for another run's migration lock.
    :param script_location: directory with env.py and versions/; the packaged scripts by default.
    :returns: a result with no steps, from the recorded revision to `revision`.
    :raises UsageError: bad URL or unknown revision.
    """
    from alembic import command

    started = time.monotonic()
    url = normalize_database_url(database)
    config = build_config(location=script_location)
    target = _resolve(load_scripts(config), revision)
    engine = create_database_engine(url)
    with connect(engine) as connection:
        acquire_migration_lock(connection, wait_timeout=lock_wait_timeout)
        try:
            current = current_revision_of(connection)
            config.attributes["connection"] = connection
            command.stamp(config, target or "base", purge=True)
            connection.commit()
        finally:
            _release_quietly(connection)
    return MigrationResult(
        command="stamp",
        from_revision=current,
        to_revision=target,
        target_revision=target,
        steps=(),
        duration_seconds=time.monotonic() - started,
    )


def status(database: str, *, script_location: Path | None = None) -> StatusReport:
    """Every revision, oldest first, marked applied (up) or pending (down), with the current one.

    :param database: PostgreSQL URL, as for `upgrade`.
    :param script_location: directory with env.py and versions/; the packaged scripts by default.
    """
    scripts = load_scripts(build_config(location=script_location))
    chain = revision_chain(scripts)
    engine = create_database_engine(normalize_database_url(database))
    with connect(engine) as connection:
        current = current_revision_of(connection)
        interrupted = read_interrupted_revision(connection)
    ids = [script.revision for script in chain]
    applied = applied_count(chain, current)
    return StatusReport(
        current_revision=current,
        head_revision=ids[-1] if ids else None,
        revisions=tuple(
            RevisionState(
                revision=script.revision,
                name=revision_name(script),
                down_revision=_single(script.down_revision),
                applied=index < applied,
            )
            for index, script in enumerate(chain)
        ),
        interrupted=interrupted,
    )


def plan(
    to: str = "head",
    *,
    from_revision: str | None = None,
    database: str | None = None,
    x_arguments: Mapping[str, str] | None = None,
    script_location: Path | None = None,
) -> MigrationPlan:
    """The SQL that going from one revision to another would run, rendered offline by Alembic.

    Nothing is executed; the database, if given, is only asked for its current revision.

    :param to: target revision (`head`, `base`, an id or a unique prefix).
    :param from_revision: starting revision (`base` allowed); when omitted, the current revision
        of `database`, or base if no database is given.
    :param database: PostgreSQL URL to read the starting revision from.
    :param x_arguments: `-x` values for the revisions, as for `upgrade`.
    :param script_location: directory with env.py and versions/; the packaged scripts by default.
    """
    from alembic import command

    buffer = io.StringIO()
    config = build_config(location=script_location, x_arguments=x_arguments, output_buffer=buffer)
    scripts = load_scripts(config)
    if from_revision is not None:
        start = _resolve(scripts, from_revision)
    elif database is not None:
        engine = create_database_engine(normalize_database_url(database))
        with connect(engine) as connection:
            start = current_revision_of(connection)
    else:
        start = None
    target = _resolve(scripts, to)
    direction, revisions = revisions_between(revision_chain(scripts), start, target)
    if not revisions:
        return MigrationPlan(start, target, None, (), "")
    try:
        if direction == "upgrade":
            command.upgrade(config, f"{start}:{target}" if start else str(target), sql=True)
        else:
            command.downgrade(config, f"{start}:{target or 'base'}", sql=True)
    except Exception as error:  # a revision's own code raised while rendering
        raise PlanError(
            f"cannot render the plan offline: {first_line(error)}",
            hint="the revision needs a live database; run it against a copy instead",
        ) from error
    return MigrationPlan(start, target, direction, tuple(revisions), buffer.getvalue())


def dump_schema(database: str) -> str:
    """The database's schema as normalized `pg_dump --schema-only` SQL, ending with the
    `alembic_version` row, ready to commit as docs/structure.sql.

    :param database: PostgreSQL URL, as for `upgrade`.
    """
    from rayces.migrations.schema_dump import normalize_dump, run_pg_dump

    url = normalize_database_url(database)
    engine = create_database_engine(url)
    with connect(engine) as connection:
        current = current_revision_of(connection)
        version_table_schema = _version_table_schema(connection)
    return normalize_dump(
        run_pg_dump(url), revision=current, version_table_schema=version_table_schema
    )


def _version_table_schema(connection: Connection) -> str:
    """The schema `alembic_version` is in (the first of Alembic's `search_path`)."""
    from sqlalchemy import text

    schema = connection.scalar(
        text(
            "SELECT coalesce((SELECT n.nspname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass('alembic_version')), current_schema(), 'public')"
        )
    )
    connection.commit()
    return str(schema)


def current_revision_of(connection: Connection) -> str | None:
    """The revision in the database's `alembic_version` table; `None` for base (none or no table).

    Ends the read's transaction, so the connection can be handed to Alembic afterwards.
    """
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(connection).get_current_heads()
    connection.commit()
    if len(heads) > 1:
        raise UsageError(
            f"the database has several current revisions: {', '.join(heads)}",
            hint="merge the branches with `alembic merge`",
        )
    return heads[0] if heads else None


def _single(down_revision: str | Sequence[str] | None) -> str | None:
    if down_revision is not None and not isinstance(down_revision, str):
        return ",".join(down_revision)
    return down_revision


def _resolve(scripts: Any, revision: str) -> str | None:
    return resolve_revision(scripts, revision)


def _run(
    command_name: Direction,
    database: str,
    choose_target: Any,
    *,
    lock_wait_timeout: float,
    lock_timeout: str | None,
    statement_timeout: str | None,
    x_arguments: Mapping[str, str] | None,
    script_location: Path | None,
) -> MigrationResult:
    """Connect, lock, and run Alembic from the current revision to the chosen target."""
    started = time.monotonic()
    if lock_wait_timeout < 0:
        raise UsageError(
            f"invalid lock wait timeout {lock_wait_timeout:g}", hint="give 0 or more seconds"
        )
    url = normalize_database_url(database)
    config = build_config(location=script_location, x_arguments=x_arguments)
    scripts = load_scripts(config)
    chain = revision_chain(scripts)
    names = {script.revision: revision_name(script) for script in chain}
    engine = create_database_engine(url)
    with connect(engine) as connection:
        acquire_migration_lock(connection, wait_timeout=lock_wait_timeout)
        try:
            apply_session_settings(
                connection, lock_timeout=lock_timeout, statement_timeout=statement_timeout
            )
            connection.commit()
            current = current_revision_of(connection)
            before = current
            # An interrupted revision is resumed or undone by Alembic like any other.
            current = settle_interrupted_revision(connection, chain, current, command_name)
            target = choose_target(scripts, current)
            direction, planned = revisions_between(chain, current, target)
            if planned and direction != command_name:
                raise _wrong_direction(command_name, current, target)
            if planned and current is None:
                _refuse_unrecorded_tables(connection, chain[0].revision)
            try:
                steps = _apply(command_name, config, connection, target, names)
            except _RevisionFailedError as failure:
                raise _failed(
                    command_name,
                    failure,
                    planned=planned,
                    before=before,
                    target=target,
                    started=started,
                    connection=connection,
                    engine=engine,
                ) from failure.error
            return MigrationResult(
                command=command_name,
                from_revision=before,
                to_revision=target,
                target_revision=target,
                steps=tuple(steps),
                duration_seconds=time.monotonic() - started,
            )
        finally:
            _release_quietly(connection)


#: Tables the first revision creates; finding one in a database with no recorded revision means
#: the schema was made by someone else (MyHub's Rails app), not that it is empty.
_BASELINE_TABLES = ("users", "posts", "likes")


def _refuse_unrecorded_tables(connection: Connection, baseline: str) -> None:
    from sqlalchemy import text

    found = [
        table
        for table in _BASELINE_TABLES
        if connection.execute(text("SELECT to_regclass(:name)"), {"name": table}).scalar()
    ]
    connection.commit()
    if found:
        raise UsageError(
            f"the database has no recorded revision but already has table(s) "
            f"{', '.join(found)}: it looks like an existing MyHub database",
            hint=f"if its schema is MyHub's, record that with `raycesctl stamp {baseline}` "
            "and migrate again",
        )


class _RevisionFailedError(Exception):
    """The steps that completed before a revision raised, and what it raised."""

    def __init__(self, steps: list[MigrationStep], error: BaseException) -> None:
        super().__init__(str(error))
        self.steps = steps
        self.error = error


def _wrong_direction(
    command_name: Direction, current: str | None, target: str | None
) -> UsageError:
    if command_name == "upgrade":
        return UsageError(
            f"revision {target or 'base'} is older than the current revision {current}",
            hint=f"use `raycesctl rollback --to {target or 'base'}` to go back",
        )
    return UsageError(
        f"revision {target} is not applied (the current revision is {current or 'base'})",
        hint=f"use `raycesctl migrate --to {target}` to go forward",
    )


def _failed(
    command_name: Direction,
    failure: _RevisionFailedError,
    *,
    planned: list[str],
    before: str | None,
    target: str | None,
    started: float,
    connection: Connection,
    engine: Engine,
) -> MigrationFailedError:
    done = len(failure.steps)
    failed_at = planned[done] if done < len(planned) else None
    fallback = planned[done - 1] if done else before
    if command_name == "downgrade" and done:
        # a reverted revision's parent is the revision before it in the plan, or the target
        fallback = planned[done] if done < len(planned) else target
    now = _revision_after_failure(connection, engine, fallback)
    error = ErrorInfo(
        kind=MigrationFailedError.kind,
        message=f"revision {failed_at or '?'} failed: {first_line(failure.error)}",
        hint=f"the database stays at {now or 'base'}; fix the cause and run again",
        revision=failed_at,
    )
    result = MigrationResult(
        command=command_name,
        from_revision=before,
        to_revision=now,
        target_revision=target,
        steps=tuple(failure.steps),
        error=error,
        duration_seconds=time.monotonic() - started,
    )
    return MigrationFailedError(error.message, hint=error.hint, result=result)


def _apply(
    direction: Direction,
    config: Config,
    connection: Connection,
    target: str | None,
    names: Mapping[str, str],
) -> list[MigrationStep]:
    from alembic import command

    steps: list[MigrationStep] = []
    last = time.monotonic()

    def record(
        *, ctx: MigrationContext, step: MigrationInfo, heads: set[str], run_args: dict[str, Any]
    ) -> None:
        nonlocal last
        now = time.monotonic()
        revision = step.up_revision_id or ""
        applied = MigrationStep(
            revision=revision,
            name=names.get(revision, ""),
            direction="upgrade" if step.is_upgrade else "downgrade",
            duration_seconds=now - last,
        )
        steps.append(applied)
        log.debug(
            "%s %s %s (%.3fs)", applied.direction, revision, applied.name, applied.duration_seconds
        )
        last = now

    config.attributes["connection"] = connection
    config.attributes["on_version_apply"] = record
    try:
        if direction == "upgrade":
            command.upgrade(config, target or "base")
        else:
            command.downgrade(config, target or "base")
    except Exception as error:  # whatever a revision raises, the run reports it
        raise _RevisionFailedError(steps, error) from error
    return steps


def _revision_after_failure(
    connection: Connection, engine: Engine, fallback: str | None
) -> str | None:
    """Where the database is after a failed revision: asked again, on a clean transaction."""
    try:
        connection.rollback()
        return current_revision_of(connection)
    except Exception:  # the connection may have died with the revision
        log.warning("the migration connection is gone; asking on a new one")
    try:
        with engine.connect() as fresh:
            return current_revision_of(fresh)
    except Exception:
        log.warning("cannot read the current revision; reporting the last completed step")
    return fallback


def _release_quietly(connection: Connection) -> None:
    try:
        connection.rollback()
        release_migration_lock(connection)
    except Exception:  # closing the connection releases the lock anyway
        log.debug("could not release the migration lock explicitly", exc_info=True)


__all__ = [
    "DEFAULT_LOCK_WAIT_TIMEOUT",
    "MigrationsError",
    "current_revision_of",
    "downgrade",
    "dump_schema",
    "plan",
    "stamp",
    "status",
    "upgrade",
]
