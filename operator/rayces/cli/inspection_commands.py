"""`raycesctl status` and `plan`: read-only looks at where a database is and what would run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rayces.cli.output import revision_label
from rayces.cli.parser import SharedOptions, Subcommands, add_command
from rayces.migrations.results import ExitCode

if TYPE_CHECKING:
    from rayces.cli.invocation import Invocation


def add_parsers(commands: Subcommands, options: SharedOptions) -> None:
    add_command(
        commands,
        "status",
        "list every revision as up (applied) or down (pending), and the current one",
        "example:\n  raycesctl status --database-url postgresql://app@db:5432/rayces",
        [options.database, options.output],
        handler=status_command,
    )
    plan = add_command(
        commands,
        "plan",
        "print the SQL an upgrade or downgrade would run, without running it",
        "Starts from --from, else the current revision of the database given (an\n"
        "unreachable one is an error, exit 3), else of the embedded PostgreSQL if it is\n"
        "running, else from base.\n\n"
        "examples:\n  raycesctl plan --to head --from base > upgrade.sql\n"
        "  raycesctl plan --to 20250713000011 --database-url postgresql://app@db/rayces",
        [options.database, options.output, options.revision_values],
        handler=plan_command,
    )
    plan.add_argument("--to", metavar="REV", required=True, help="target revision (head, base, id)")
    plan.add_argument(
        "--from", dest="from_revision", metavar="REV", help="starting revision (base allowed)"
    )


def status_command(invocation: Invocation) -> int:
    from rayces.migrations import commands
    from rayces.migrations.connection_url import parse_database_url

    url = invocation.database_url()
    report = commands.status(invocation.connection_string(url))
    output = invocation.output
    output.result(report.to_dict())
    if output.json:
        return ExitCode.OK
    output.line(f"database: {parse_database_url(url).describe()}")
    output.line(
        f"current revision: {revision_label(report.current_revision)}"
        f" (head: {revision_label(report.head_revision)}, {len(report.pending)} pending)"
    )
    if report.rails_revision is not None:
        output.line(
            f"Rails' schema_migrations: at {report.rails_revision}, not yet recorded here; "
            "`raycesctl migrate` adopts it once the schema matches that revision"
        )
    for problem in report.rails_record_problems:
        output.line(f"Rails' schema_migrations: {problem} (migrate refuses to adopt it)")
    for version in report.rails_only_versions:
        output.line(
            f"Rails' schema_migrations: {version} is a migration only Rails knows "
            "(newer than every revision here)"
        )
    output.line()
    output.line(" Status   Revision ID      Name")
    output.line("-" * 60)
    for state in report.revisions:
        output.line(f"{'up' if state.applied else 'down':>5}    {state.revision:<16} {state.name}")
    if report.interrupted is not None:
        part_way = report.interrupted
        verb = "applying" if part_way.direction == "upgrade" else "reverting"
        output.line()
        output.line(
            f"interrupted: {verb} {part_way.revision} stopped part-way; steps done: "
            f"{', '.join(part_way.steps_done) or 'none'}"
        )
        output.line("  `raycesctl migrate` resumes it; `raycesctl rollback` undoes it")
    if report.unfinished_run:
        origin = revision_label(report.unfinished_run_from)
        output.line()
        output.line(
            f"unfinished upgrade run from {origin}: `raycesctl migrate` goes on with it; "
            f"`raycesctl rollback --to {origin}` drops what it wrote (no --allow-data-loss "
            "needed for that)"
        )
    return ExitCode.OK


def plan_command(invocation: Invocation) -> int:
    from rayces.migrations import commands

    args = invocation.args
    database: str | None = None
    if args.from_revision is None:
        if invocation.given_database_url:
            database = invocation.connection_string(invocation.given_database_url)
        else:
            from rayces.migrations.embedded import embedded_server_state

            database = embedded_server_state(invocation.data_dir()).url
            if database is None:
                invocation.output.progress("no database given or running: planning from base")
    plan = commands.plan(
        args.to,
        from_revision=args.from_revision,
        database=database,
        x_arguments=invocation.revision_arguments(),
    )
    output = invocation.output
    output.result(plan.to_dict())
    if output.json:
        return ExitCode.OK
    count = len(plan.revisions)
    output.line(
        f"-- {plan.direction or 'nothing to do'} from {revision_label(plan.from_revision)}"
        f" to {revision_label(plan.to_revision)} ({count} revision{'s' if count != 1 else ''})"
    )
    if plan.from_rails_record:
        output.line(
            f"-- {plan.from_revision} is what Rails' schema_migrations records; `raycesctl "
            "migrate` compares the schema with it and records it before running this"
        )
    if plan.sql:
        output.raw(plan.sql if plan.sql.endswith("\n") else plan.sql + "\n")
    return ExitCode.OK
