"""`raycesctl migrate`, `rollback` and `stamp`: the commands that change the recorded revision.

Each calls one function of `rayces.migrations.commands` and reports its `MigrationResult`: the
JSON result (stdout with `--output json`, and the termination message), or lines for people.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rayces.cli.output import Output, revision_label
from rayces.cli.parser import SharedOptions, Subcommands, add_command, positive_int
from rayces.migrations.errors import RunInterruptedError
from rayces.migrations.results import ExitCode
from rayces.migrations.signals import Interrupted

if TYPE_CHECKING:
    from rayces.cli.invocation import Invocation
    from rayces.migrations.results import MigrationResult


def add_parsers(commands: Subcommands, options: SharedOptions) -> None:
    schema_change = [options.database, options.output, options.run, options.revision_values]
    migrate = add_command(
        commands,
        "migrate",
        "apply the revisions up to a target revision (default: head)",
        "A database Rails made (schema_migrations, no alembic_version) is adopted first:\n"
        "if its versions are a prefix of the revisions and its schema matches that revision,\n"
        "the revision is recorded; otherwise nothing changes and each difference is listed\n"
        "(exit 8). schema_migrations is kept in step with every revision run.\n\n"
        "examples:\n  raycesctl migrate\n  raycesctl migrate --to 20250713000004 --output json",
        schema_change,
        handler=migrate_command,
    )
    migrate.add_argument(
        "--to", metavar="REV", default="head", help="target revision: head (default) or an id"
    )

    rollback = add_command(
        commands,
        "rollback",
        "revert the newest revisions (default: one)",
        "Before anything runs, the rows in every table and column the reverted revisions\n"
        "would drop are counted; if any holds rows, the rollback is refused (exit 5)\n"
        "unless --allow-data-loss is given. Empty ones go down freely.\n\n"
        "examples:\n  raycesctl rollback\n  raycesctl rollback --steps 3\n"
        "  raycesctl rollback --to 20250713000001\n  raycesctl rollback --to base",
        schema_change,
        handler=rollback_command,
    )
    target = rollback.add_mutually_exclusive_group()
    target.add_argument(
        "--steps", metavar="N", type=positive_int, help="how many revisions to revert"
    )
    target.add_argument(
        "--to", metavar="REV", help="revision to end at; base reverts every revision"
    )
    rollback.add_argument(
        "--allow-data-loss",
        action="store_true",
        help="revert even if tables or columns that would be dropped hold rows",
    )

    stamp = add_command(
        commands,
        "stamp",
        "record a revision as applied without running anything",
        "For a database whose schema already is at a revision, e.g. an existing MyHub\n"
        "database, which is at the baseline. Also repairs an alembic_version table that\n"
        "holds several rows.\n\n"
        "examples:\n  raycesctl stamp 20240606034427 && raycesctl migrate\n"
        "  raycesctl stamp base      # forget the recorded revision",
        [options.database, options.output, options.run],
        handler=stamp_command,
    )
    stamp.add_argument("revision", metavar="REV", help="revision the schema is at (or base)")


def migrate_command(invocation: Invocation) -> int:
    from rayces.migrations import commands

    result = commands.upgrade(
        invocation.database(), invocation.args.to, **invocation.schema_change_options()
    )
    report_migration(invocation.output, result)
    return ExitCode.OK


def rollback_command(invocation: Invocation) -> int:
    from rayces.migrations import commands

    args = invocation.args
    result = commands.downgrade(
        invocation.database(),
        to=args.to,
        steps=args.steps,
        allow_data_loss=args.allow_data_loss,
        **invocation.schema_change_options(),
    )
    report_migration(invocation.output, result)
    return ExitCode.OK


def stamp_command(invocation: Invocation) -> int:
    from rayces.migrations import commands

    result = commands.stamp(
        invocation.database(),
        invocation.args.revision,
        lock_wait_timeout=invocation.args.lock_wait_timeout,
    )
    report_migration(invocation.output, result)
    return ExitCode.OK


def report_migration(output: Output, result: MigrationResult) -> None:
    """A run's result: JSON and termination message, or a line per step and a summary.

    :raises RunInterruptedError: a signal arrived after the run and before its result was
        written: the same result, reported as interrupted.
    """
    try:
        output.result(result.to_dict())
    except Interrupted as interrupt:
        raise RunInterruptedError.replacing(
            result,
            interrupt.signal_number,
            hint=f"the database is at {revision_label(result.to_revision)}; run the same "
            "command again to continue",
        ) from None
    for version in result.rails_only_versions:
        output.warning(
            f"schema_migrations holds {version}, a migration only Rails knows (newer than every "
            "revision here); it was left as it is"
        )
    if output.json:
        return
    if result.adoption_message:
        output.line(
            f"{result.adoption_message}: the schema matched it, so it is now recorded in "
            "alembic_version too"
        )
    for step in result.steps:
        output.line(
            f"{step.direction:<9} {step.revision}  {step.name}  ({step.duration_seconds:.3f}s)"
        )
    for item in result.dropped:
        output.line(f"dropped {item.object} ({item.rows} rows): {item.reason}")
    if not result.succeeded:
        return
    if result.command == "stamp":
        output.line(
            f"stamped {revision_label(result.to_revision)} (was "
            f"{revision_label(result.from_revision)}); no revision was run"
        )
        return
    if not result.steps:
        output.line(f"nothing to do: the database is at {revision_label(result.to_revision)}")
        return
    count = len(result.steps)
    verb = "migrated" if result.command == "upgrade" else "rolled back"
    output.line(
        f"{verb} {revision_label(result.from_revision)} -> {revision_label(result.to_revision)}"
        f" ({count} revision{'s' if count != 1 else ''}, {result.duration_seconds:.2f}s)"
    )
