"""One function per migration verb: upgrade, downgrade, stamp, status, plan, dump_schema.

This is the migrations layer's public surface, in the manner of `alembic.command`: each function
takes a database URL and plain values, does the whole job (connecting, locking, running Alembic,
timing each revision) and returns a result value from `rayces.migrations.results`, or raises an
error from `rayces.migrations.errors`. `raycesctl` only parses arguments and calls these; the
operator, the tests and a notebook call them the same way.

Runs that change the schema hold the migration advisory lock on the connection that runs the
revisions, and run each revision in its own transaction: when one fails, the database stays at the
last revision that completed, and the result says which one that is (read back from the
database, so a revision whose COMMIT failed is not counted as done). Inside
`rayces.migrations.signals.interruptible()`, SIGINT and SIGTERM end a run the same way, with an
`interrupted` result naming the revision and step. A rollback first counts the rows it would
drop (`rayces.migrations.data_loss`) and refuses unless data loss is allowed. A database Rails
made, with `schema_migrations` and no `alembic_version`, is adopted first, once its schema
matches the revision Rails recorded (`rayces.migrations.adoption`).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rayces.migrations import faults, progress, signals
from rayces.migrations.adoption import adopt_rails_record, read_rails_record, sync_rails_record
from rayces.migrations.data_loss import refuse_data_loss
from rayces.migrations.database import (
    apply_session_settings,
    connect,
    connection_parameters,
    create_database_engine,
    database_error,
    first_line,
    normalize_database_url,
    permission_hint,
)
from rayces.migrations.errors import (
    MigrationFailedError,
    MigrationsError,
    PlanError,
    RunInterruptedError,
    UsageError,
)
from rayces.migrations.journal import read_interrupted_revision, settle_interrupted_revision
from rayces.migrations.locking import acquire_migration_lock, release_migration_lock
from rayces.migrations.results import (
    Direction,
    DroppedData,
    ErrorInfo,
    ErrorKind,
    MigrationPlan,
    MigrationResult,
    MigrationStep,
    RevisionState,
    StatusReport,
)
from rayces.migrations.revision_arguments import validate_revision_arguments
from rayces.migrations.run_ledger import (
    begin_run,
    end_run,
    end_run_if_back_at_origin,
    read_ledger,
    record_commits,
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
    from alembic.script import Script
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
    :raises PermissionDeniedError: the role lacks a privilege outside a revision (inside one, a
        `MigrationFailedError` whose result's error kind is `permission_denied`), or may not
        create the scratch database that adopting Rails' record compares with.
    :raises AdoptionRefusedError: the database has Rails' `schema_migrations` and no recorded
        revision, and its versions or its schema do not match a revision; nothing was changed.
    :raises RunInterruptedError: SIGINT or SIGTERM arrived (inside `signals.interruptible()`);
        the running statement was cancelled and the lock released; its result says where.
    """
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
    allow_data_loss: bool = False,
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
    :param allow_data_loss: revert even when a table or column the reverted revisions drop
        (their `downgrade_drops`) holds rows; by default that is refused before anything runs.
    :returns: the result, with one step per reverted revision.
    :raises MigrationFailedError: a revision's downgrade failed; see `upgrade`.
    :raises UsageError: both or invalid `to`/`steps`, or more steps than revisions applied.
    :raises DataLossRefusedError: the downgrade would drop rows; naming each object and count.
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
        allow_data_loss=allow_data_loss,
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
    then upgraded. Stamping changes nothing but the `alembic_version` row, and, where Rails'
    `schema_migrations` exists, the chain's versions in it (those up to `revision` are there
    afterwards, the later ones not; versions only Rails knows stay). Unlike `migrate`'s
    adoption of Rails' record, it compares nothing: it is how a person records what they know.

    :param database: PostgreSQL URL, as for `upgrade`.
    :param revision: the revision the schema is at (`base` clears the record).
    :param lock_wait_timeout: seconds to wait for another run's migration lock.
    :param script_location: directory with env.py and versions/; the packaged scripts by default.
    :returns: a result with no steps, from the recorded revision to `revision` (an
        `alembic_version` table with several rows is repaired: `from_revision` lists them all).
    :raises UsageError: bad URL or unknown revision.
    """
    from alembic import command

    started = time.monotonic()
    url = normalize_database_url(database)
    config = build_config(location=script_location)
    scripts = load_scripts(config)
    target = _resolve(scripts, revision)
    chain = [script.revision for script in revision_chain(scripts)]
    engine = create_database_engine(url)
    with connect(engine) as connection, _reporting("stamp"):
        acquire_migration_lock(connection, wait_timeout=lock_wait_timeout)
        try:
            # Several rows are what stamp repairs: read them all, then replace them with one.
            heads = recorded_revisions(connection)
            config.attributes["connection"] = connection
            command.stamp(config, target or "base", purge=True)
            if read_rails_record(connection, chain) is not None:
                sync_rails_record(connection, chain, target)
            connection.commit()
        finally:
            _release_quietly(connection)
    return MigrationResult(
        command="stamp",
        from_revision=",".join(heads) or None,
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
    ids = [script.revision for script in chain]
    with connect(engine) as connection, _reporting("status"):
        current = current_revision_of(connection)
        interrupted = read_interrupted_revision(connection)
        rails = read_rails_record(connection, ids)
        unfinished = read_ledger(connection)
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
        rails_revision=rails.revision if rails and current is None else None,
        rails_only_versions=rails.rails_only_versions if rails else (),
        rails_record_problems=rails.problems if rails and current is None else (),
        unfinished_run=unfinished is not None,
        unfinished_run_from=unfinished.from_revision if unfinished else None,
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
    :param database: PostgreSQL URL to read the starting revision from; if it cannot be
        reached, `ConnectionFailedError` (never a silent plan from base).
    :param x_arguments: `-x` values for the revisions, as for `upgrade`.
    :param script_location: directory with env.py and versions/; the packaged scripts by default.
    """
    from alembic import command

    validate_revision_arguments(x_arguments or {})
    from_rails_record = False
    buffer = io.StringIO()
    config = build_config(location=script_location, x_arguments=x_arguments, output_buffer=buffer)
    scripts = load_scripts(config)
    if from_revision is not None:
        start = _resolve(scripts, from_revision)
    elif database is not None:
        engine = create_database_engine(normalize_database_url(database))
        with connect(engine) as connection, _reporting("plan"):
            start = current_revision_of(connection)
            if start is None:  # not adopted yet: from where Rails' record says the schema is
                rails = read_rails_record(connection, [s.revision for s in revision_chain(scripts)])
                start = rails.revision if rails and not rails.problems else None
                from_rails_record = start is not None
    else:
        start = None
    target = _resolve(scripts, to)
    direction, revisions = revisions_between(revision_chain(scripts), start, target)
    if not revisions:
        return MigrationPlan(start, target, None, (), "", from_rails_record)
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
    return MigrationPlan(
        start, target, direction, tuple(revisions), buffer.getvalue(), from_rails_record
    )


def dump_schema(database: str) -> str:
    """The database's schema as normalized `pg_dump --schema-only` SQL, ending with the
    `alembic_version` row, ready to commit as docs/structure.sql.

    `pg_dump` gets the password through a passfile that only this process can read, never on
    its command line, where any user of the machine could see it.

    :param database: PostgreSQL URL, as for `upgrade`.
    """
    from rayces.migrations.schema_dump import normalize_dump, passfile, run_pg_dump

    url = normalize_database_url(database)
    engine = create_database_engine(url)
    with connect(engine) as connection, _reporting("schema dump"):
        current = current_revision_of(connection)
        version_table_schema = _version_table_schema(connection)
    parameters = connection_parameters(url)
    with passfile(parameters.get("password")) as path:
        without_password = parameters.with_values({"password": None, "passfile": path})
        return normalize_dump(
            run_pg_dump(without_password.conninfo()),
            revision=current,
            version_table_schema=version_table_schema,
        )


def recorded_revisions(connection: Connection) -> tuple[str, ...]:
    """Every row of the database's `alembic_version` table (none: base, or no table).

    Ends the read's transaction, so the connection can be handed to Alembic afterwards.
    """
    from alembic.runtime.migration import MigrationContext

    heads = tuple(MigrationContext.configure(connection).get_current_heads())
    connection.commit()
    return heads


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

    :raises UsageError: the table has several rows (Rayces keeps one line of history).
    """
    heads = recorded_revisions(connection)
    if len(heads) > 1:
        raise UsageError(
            f"the database's alembic_version table has {len(heads)} rows "
            f"({', '.join(heads)}), but the revisions form one line of history",
            hint="record the revision the schema is really at with `raycesctl stamp REV`",
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
    allow_data_loss: bool = True,
) -> MigrationResult:
    """Connect, lock, and run Alembic from the current revision to the chosen target.

    Whatever stops the run (an error, a signal) is reported with a result that says where the
    database is: read from the database again, never guessed from what was attempted.
    """
    started = time.monotonic()
    if lock_wait_timeout < 0:
        raise UsageError(
            f"invalid lock wait timeout {lock_wait_timeout:g}", hint="give 0 or more seconds"
        )
    validate_revision_arguments(x_arguments or {})
    url = normalize_database_url(database)
    config = build_config(location=script_location, x_arguments=x_arguments)
    scripts = load_scripts(config)
    chain = revision_chain(scripts)
    names = {script.revision: revision_name(script) for script in chain}
    engine = create_database_engine(url)
    run = _RunState(command_name, started, [script.revision for script in chain])
    with connect(engine) as connection:
        try:
            # Read before waiting for the lock, so that even a lock timeout says where it is.
            run.before = current_revision_of(connection)
            run.read = True
            acquire_migration_lock(connection, wait_timeout=lock_wait_timeout)
            apply_session_settings(
                connection, lock_timeout=lock_timeout, statement_timeout=statement_timeout
            )
            connection.commit()
            current = run.before = current_revision_of(connection)
            if current is None:  # Rails' record, if any, is adopted once the schema matches it
                adoption = adopt_rails_record(
                    connection,
                    url,
                    scripts,
                    x_arguments=x_arguments,
                    script_location=script_location,
                )
                current = run.before = adoption.revision if adoption else None
                run.adopted = adoption.revision if adoption else None
            rails = read_rails_record(connection, run.chain)
            # An interrupted revision is resumed or undone by Alembic like any other.
            current = settle_interrupted_revision(connection, chain, current, command_name)
            target = run.target = choose_target(scripts, current)
            run.planned, dropped = _checked_plan(
                command_name, connection, chain, current, target, allow_data_loss=allow_data_loss
            )
            planned = run.planned
            run.steps = _apply_recorded(
                command_name,
                config,
                connection,
                current=current,
                target=target,
                names=names,
                planned=planned,
                chain=run.chain,
            )
            _end_record(command_name, connection, target=target, planned=planned, chain=run.chain)
            signal_number = signals.take_signal()
            if signal_number is not None:  # it came when no statement was left to stop
                raise _interrupted(run, signal_number, connection, engine)
            return MigrationResult(
                command=command_name,
                from_revision=run.before,
                to_revision=target,
                target_revision=target,
                steps=tuple(run.steps),
                duration_seconds=time.monotonic() - started,
                adopted_from_rails=run.adopted,
                rails_only_versions=rails.rails_only_versions if rails else (),
                dropped=dropped,
            )
        except RunInterruptedError:
            raise
        except BaseException as error:
            reported = _reported(run, error, connection, engine)
            if reported is error:
                raise
            raise reported from (error.error if isinstance(error, _RevisionFailedError) else None)
        finally:
            _release_quietly(connection)
            progress.leave_revision()


def _reported(
    run: _RunState, error: BaseException, connection: Connection, engine: Engine
) -> BaseException:
    """What a run that stopped with `error` raises: a signal received at any moment before
    makes it interrupted, whichever exception the stop surfaced as (a cancelled statement, a
    `StopRequested`, an `Interrupted`, or a cleanup that failed on the way out)."""
    if isinstance(error, _RevisionFailedError):
        run.steps = error.steps
    signal_number = signals.take_signal()
    if signal_number is not None:
        return _interrupted(run, signal_number, connection, engine)
    if isinstance(error, _RevisionFailedError):
        return _failed(run, error, connection, engine)
    if isinstance(error, MigrationsError):
        if error.result is None:
            error.result = run.result_without_steps(error.error_info())
        return error
    if isinstance(error, Exception):
        found = database_error(error, doing=f"preparing the {run.command}")
        if found is not None:
            found.result = run.result_without_steps(found.error_info())
            return found
    return error


def _checked_plan(
    command_name: Direction,
    connection: Connection,
    chain: list[Script],
    current: str | None,
    target: str | None,
    *,
    allow_data_loss: bool,
) -> tuple[list[str], tuple[DroppedData, ...]]:
    """The revisions from `current` to `target`, once it is safe to run them: the direction
    asked for, no unrecorded MyHub tables under a first upgrade, no rows dropped unless allowed
    or the failed upgrade run's own; and what holds rows but will be dropped as the run's own."""
    direction, planned = revisions_between(chain, current, target)
    if planned and direction != command_name:
        raise _wrong_direction(command_name, current, target)
    if planned and current is None:
        _refuse_unrecorded_tables(connection, chain[0].revision)
    if planned and command_name == "downgrade" and not allow_data_loss:
        by_id = {script.revision: script for script in chain}
        dropped = refuse_data_loss(
            connection,
            [by_id[rev] for rev in planned],
            target=target,
            chain=[script.revision for script in chain],
        )
        return planned, dropped
    return planned, ()


def _apply_recorded(
    direction: Direction,
    config: Config,
    connection: Connection,
    *,
    current: str | None,
    target: str | None,
    names: Mapping[str, str],
    planned: Sequence[str],
    chain: Sequence[str],
) -> list[MigrationStep]:
    """`_apply`; an upgrade records the transactions it commits in the run ledger
    (`rayces.migrations.run_ledger`), started here or continued. `_end_record` follows."""
    if not planned or direction == "downgrade":
        return _apply(direction, config, connection, target, names, planned=planned)
    begin_run(connection, chain, current)
    stop_recording = record_commits(connection)
    try:
        return _apply(direction, config, connection, target, names, planned=planned)
    finally:
        stop_recording()


def _end_record(
    direction: Direction,
    connection: Connection,
    *,
    target: str | None,
    planned: Sequence[str],
    chain: Sequence[str],
) -> None:
    """After a run reached its target: an upgrade ends its record in the run ledger, and so does
    a rollback back to the recorded run's origin. Called once the run's steps are known, so that
    a signal arriving now still reports every revision that completed."""
    if not planned:
        return
    if direction == "upgrade":
        end_run(connection)
    else:
        end_run_if_back_at_origin(connection, chain, target)


class _RunState:
    """What a run has learnt so far, for reporting wherever it stops."""

    def __init__(self, command: Direction, started: float, chain: list[str]) -> None:
        self.command = command
        self.started = started
        self.chain = chain
        self.before: str | None = None
        #: whether `before` was read from the database (else it is unknown, not base)
        self.read = False
        self.target: str | None = None
        #: the revision this run adopted from Rails' `schema_migrations`, if it did
        self.adopted: str | None = None
        self.planned: list[str] = []
        self.steps: list[MigrationStep] = []

    def result_without_steps(self, error: ErrorInfo) -> MigrationResult:
        return MigrationResult(
            command=self.command,
            from_revision=self.before,
            to_revision=self.before,
            target_revision=self.target,
            error=error,
            duration_seconds=time.monotonic() - self.started,
            revisions_known=self.read,
            adopted_from_rails=self.adopted,
        )

    def settle(self, now: str | None) -> tuple[list[MigrationStep], str | None]:
        """The steps that really completed, given the revision the database is at `now`, and
        the planned revision that did not (`None` if all did)."""
        position = {revision: index for index, revision in enumerate(self.chain)}
        here = position.get(now or "", -1)
        if self.command == "upgrade":
            done = [step for step in self.steps if position.get(step.revision, -1) <= here]
        else:
            done = [step for step in self.steps if position.get(step.revision, -1) > here]
        finished = {step.revision for step in done}
        pending = [revision for revision in self.planned if revision not in finished]
        return done, pending[0] if pending else None


def _interrupted(
    run: _RunState, signal_number: int, connection: Connection, engine: Engine
) -> RunInterruptedError:
    signal_name = signals.signal_number_name(signal_number)
    position = progress.current_position()
    # The session goes at once: its transaction rolls back and its lock is released. A cancel
    # request sent for its last statement can no longer reach a statement of the cleanup.
    _discard(connection)
    try:
        now, known = _read_revision_again(connection, engine), True
    except LookupError:
        now, known = run.before, run.read
    done, running = run.settle(now)
    step = position.step if position.revision == running and running else None
    if running and (done or position.revision == running):
        step_text = f", step {step}" if step else ""
        what = (
            f" in revision {running}{step_text}; the running statement was cancelled and the "
            "open transaction rolled back"
        )
    elif done:
        running, what = None, " after every revision of the run had completed"
    else:
        running, what = None, " before any revision ran; nothing was changed"
    error = ErrorInfo(
        kind=ErrorKind.INTERRUPTED,
        message=f"interrupted by {signal_name}{what}",
        hint=f"the database is at {now or 'base'}; run the same command again to continue",
        revision=running,
        step=step,
    )
    interrupted = RunInterruptedError(error.message, hint=error.hint, signal_number=signal_number)
    interrupted.result = MigrationResult(
        command=run.command,
        from_revision=run.before if run.read else now,  # unread: nothing ran, so it is `now`
        to_revision=now,
        target_revision=run.target,
        steps=tuple(done),
        error=error,
        duration_seconds=time.monotonic() - run.started,
        revisions_known=known,
        adopted_from_rails=run.adopted,
    )
    return interrupted


@contextmanager
def _reporting(command_name: str) -> Iterator[None]:
    """Turn a database error outside any revision into the `MigrationsError` it stands for."""
    try:
        yield
    except MigrationsError:
        raise
    except Exception as error:
        found = database_error(error, doing=f"running {command_name}")
        if found is None:
            raise
        raise found from None


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
    run: _RunState, failure: _RevisionFailedError, connection: Connection, engine: Engine
) -> MigrationFailedError:
    now = _revision_after_failure(connection, engine, run.before)
    # A revision whose COMMIT failed was reported by Alembic before the commit: what completed
    # is what the database says, not what the callbacks saw.
    done, failed_at = run.settle(now)
    original = getattr(failure.error, "orig", None) or failure.error
    permission = getattr(original, "sqlstate", None) == "42501"
    error = ErrorInfo(
        kind=ErrorKind.PERMISSION_DENIED if permission else MigrationFailedError.kind,
        message=f"revision {failed_at or '?'} failed: {first_line(failure.error)}",
        hint=(permission_hint(first_line(original)) + "; " if permission else "")
        + f"the database stays at {now or 'base'}; fix the cause and run again",
        revision=failed_at,
        step=_step_in(failed_at),
    )
    result = MigrationResult(
        command=run.command,
        from_revision=run.before,
        to_revision=now,
        target_revision=run.target,
        steps=tuple(done),
        error=error,
        duration_seconds=time.monotonic() - run.started,
        adopted_from_rails=run.adopted,
    )
    return MigrationFailedError(error.message, hint=error.hint, result=result)


def _step_in(revision: str | None) -> str | None:
    position = progress.current_position()
    return position.step if revision and position.revision == revision else None


def _apply(
    direction: Direction,
    config: Config,
    connection: Connection,
    target: str | None,
    names: Mapping[str, str],
    *,
    planned: Sequence[str],
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
        faults.revision_applied(revision)
        log.debug(
            "%s %s %s (%.3fs)", applied.direction, revision, applied.name, applied.duration_seconds
        )
        last = now
        if len(steps) < len(planned):
            progress.enter_revision(planned[len(steps)], direction)

    if planned:
        progress.enter_revision(planned[0], direction)
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
    """Where the database is after a failed revision, or `fallback` if it cannot be read."""
    try:
        return _read_revision_again(connection, engine)
    except LookupError:
        log.warning("cannot read the current revision; reporting the last completed step")
        return fallback


def _read_revision_again(connection: Connection, engine: Engine) -> str | None:
    """Where the database is now: asked again, on a clean transaction, or on a new connection.

    :raises LookupError: neither connection can tell.
    """
    if not connection.invalidated:
        try:
            connection.rollback()
            return current_revision_of(connection)
        except Exception:  # the connection may have died with the revision, or been cancelled
            log.info("cannot read the revision on the migration connection; asking on a new one")
    try:
        with engine.connect() as fresh:
            return current_revision_of(fresh)
    except Exception as error:
        raise LookupError("the current revision cannot be read") from error


def _discard(connection: Connection) -> None:
    """Close the connection's session without a word to the server beyond the goodbye."""
    try:
        connection.invalidate()
    except Exception:  # already gone
        log.debug("could not close the migration connection", exc_info=True)


def _release_quietly(connection: Connection) -> None:
    if connection.invalidated:  # its session is gone, and the lock with it
        return
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
