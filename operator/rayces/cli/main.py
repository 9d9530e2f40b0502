"""`raycesctl`: parse the command line, call one function of `rayces.migrations`, print the result.

Nothing here decides how to migrate; it picks the database (the URL given, or the embedded
PostgreSQL), turns options into arguments of `rayces.migrations.commands`, prints the answer for
a person (stdout) or as JSON (stdout, and the Kubernetes termination message file), and turns
errors into one line on stderr and an exit code.

Every Job the operator runs starts this program, so start-up matters: only argparse is imported
up front; SQLAlchemy, Alembic and psycopg are imported by the command that needs them, and
`raycesctl --help` imports none of them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rayces import __version__

if TYPE_CHECKING:
    from rayces.migrations.errors import MigrationsError
    from rayces.migrations.results import MigrationResult

PROG = "raycesctl"

EXIT_OK = 0
EXIT_MIGRATION_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_LOCK_TIMEOUT = 4
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    success (also: nothing to do)
  1    a revision failed (the database stays at the last revision that completed;
       the JSON's to_revision says which), or another operation failed
  2    usage error: bad option, database URL, revision or step count
  3    cannot connect to the database, or the embedded PostgreSQL did not start
  4    another run held the migration lock longer than --lock-wait-timeout
  130  interrupted"""

ENVIRONMENT_HELP = """\
environment:
  DATABASE_URL                     database to work on (like --database-url)
  RAYCES_DATA_DIR                  embedded PostgreSQL data directory (like --data-dir)
  RAYCES_TERMINATION_MESSAGE_PATH  default of --termination-message-path
  RAYCES_DEBUG=1                   show a traceback for unexpected errors"""

MAIN_EPILOG = f"""\
Without --database-url or DATABASE_URL, commands use an embedded PostgreSQL kept
running in ${{XDG_DATA_HOME:-~/.local/share}}/rayces/embedded-postgres (as root:
/var/lib/rayces/embedded-postgres; or --data-dir);
`raycesctl embedded stop` stops it.

examples:
  raycesctl migrate                               migrate to the newest revision
  raycesctl status                                every revision, up or down
  raycesctl rollback --steps 2                    revert the two newest revisions
  raycesctl plan --to head --from base            SQL of a full upgrade, no database needed
  raycesctl schema dump --output-file docs/structure.sql
  DATABASE_URL=postgresql://app@db:5432/rayces raycesctl migrate --to 20250713000001 --output json

{EXIT_CODES_HELP}

{ENVIRONMENT_HELP}"""


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, with usage errors on one line in the same form as every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (hint: see `{self.prog} --help`)\n")


# ---------------------------------------------------------------- option values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not 0 or more seconds")
    return value


def _duration(text: str) -> str:
    from rayces.migrations.database import validate_duration
    from rayces.migrations.errors import UsageError

    try:
        return validate_duration(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(f"{error.message}; {error.hint}") from None


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


# ---------------------------------------------------------------- parser


def _database_options() -> _ArgumentParser:
    parent = _ArgumentParser(add_help=False)
    group = parent.add_argument_group("database")
    group.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL URL (postgresql://, postgres:// or postgresql+psycopg://); "
        "default: $DATABASE_URL, else the embedded PostgreSQL",
    )
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        type=Path,
        help="data directory of the embedded PostgreSQL; default: $RAYCES_DATA_DIR, else "
        "${XDG_DATA_HOME:-~/.local/share}/rayces/embedded-postgres "
        "(as root: /var/lib/rayces/embedded-postgres)",
    )
    return parent


def _output_options() -> _ArgumentParser:
    parent = _ArgumentParser(add_help=False)
    group = parent.add_argument_group("output")
    group.add_argument(
        "--output",
        "-o",
        choices=("text", "json"),
        default="text",
        help="text for people (default) or one JSON document on stdout",
    )
    group.add_argument("--quiet", "-q", action="store_true", help="no progress messages on stderr")
    return parent


def _revision_argument_options() -> _ArgumentParser:
    parent = _ArgumentParser(add_help=False)
    group = parent.add_argument_group("values passed to the revisions")
    group.add_argument(
        "--default-organization-name",
        metavar="NAME",
        help="name of the organization that existing rows are given when tenancy is added "
        "(default: $RAYCES_DEFAULT_ORGANIZATION_NAME, else 'Default Organization')",
    )
    group.add_argument(
        "--default-organization-subdomain",
        metavar="SUBDOMAIN",
        help="its subdomain (default: $RAYCES_DEFAULT_ORGANIZATION_SUBDOMAIN, else 'default')",
    )
    group.add_argument(
        "-x",
        dest="x_arguments",
        metavar="KEY=VALUE",
        action="append",
        type=_key_value,
        default=[],
        help="any other value for the revisions, as `alembic -x` passes it (repeatable)",
    )
    return parent


def _run_options() -> _ArgumentParser:
    parent = _ArgumentParser(add_help=False)
    group = parent.add_argument_group("locking and timeouts")
    group.add_argument(
        "--lock-wait-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=60.0,
        help="how long to wait while another run holds the migration lock (default: 60)",
    )
    group.add_argument(
        "--lock-timeout",
        metavar="DURATION",
        type=_duration,
        help="PostgreSQL lock_timeout for the revisions, e.g. 5s, 500ms (default: the server's)",
    )
    group.add_argument(
        "--statement-timeout",
        metavar="DURATION",
        type=_duration,
        help="PostgreSQL statement_timeout for the revisions, e.g. 10min (default: the server's)",
    )
    group.add_argument(
        "--termination-message-path",
        metavar="PATH",
        default=os.environ.get("RAYCES_TERMINATION_MESSAGE_PATH") or None,
        help="also write the JSON result here, cut to Kubernetes' 4096 bytes "
        "(default: $RAYCES_TERMINATION_MESSAGE_PATH; unset: not written)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The whole command line of `raycesctl`."""
    parser = _ArgumentParser(
        prog=PROG,
        description="Migrate, inspect and dump the Rayces PostgreSQL schema.",
        epilog=MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    database, output = _database_options(), _output_options()
    revision_values, run = _revision_argument_options(), _run_options()

    def add(name: str, help_text: str, epilog: str, parents: list[_ArgumentParser]) -> Any:
        return commands.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=epilog + "\n\n" + EXIT_CODES_HELP,
            parents=parents,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    migrate = add(
        "migrate",
        "apply the revisions up to a target revision (default: head)",
        "examples:\n  raycesctl migrate\n  raycesctl migrate --to 20250713000004 --output json",
        [database, output, run, revision_values],
    )
    migrate.add_argument(
        "--to", metavar="REV", default="head", help="target revision: head (default) or an id"
    )
    migrate.set_defaults(handler=_migrate)

    rollback = add(
        "rollback",
        "revert the newest revisions (default: one)",
        "examples:\n  raycesctl rollback\n  raycesctl rollback --steps 3\n"
        "  raycesctl rollback --to 20250713000001\n  raycesctl rollback --to base",
        [database, output, run, revision_values],
    )
    target = rollback.add_mutually_exclusive_group()
    target.add_argument(
        "--steps", metavar="N", type=_positive_int, help="how many revisions to revert"
    )
    target.add_argument(
        "--to", metavar="REV", help="revision to end at; base reverts every revision"
    )
    rollback.set_defaults(handler=_rollback)

    stamp = add(
        "stamp",
        "record a revision as applied without running anything",
        "For a database whose schema already is at a revision, e.g. an existing MyHub\n"
        "database, which is at the baseline:\n\n"
        "examples:\n  raycesctl stamp 20240606034427 && raycesctl migrate\n"
        "  raycesctl stamp base      # forget the recorded revision",
        [database, output, run],
    )
    stamp.add_argument("revision", metavar="REV", help="revision the schema is at (or base)")
    stamp.set_defaults(handler=_stamp)

    status = add(
        "status",
        "list every revision as up (applied) or down (pending), and the current one",
        "example:\n  raycesctl status --database-url postgresql://app@db:5432/rayces",
        [database, output],
    )
    status.set_defaults(handler=_status)

    plan = add(
        "plan",
        "print the SQL an upgrade or downgrade would run, without running it",
        "Starts from --from, else the database's current revision if one is given and\n"
        "reachable (the embedded one only if it is running), else from base.\n\n"
        "examples:\n  raycesctl plan --to head --from base > upgrade.sql\n"
        "  raycesctl plan --to 20250713000011 --database-url postgresql://app@db/rayces",
        [database, output, revision_values],
    )
    plan.add_argument("--to", metavar="REV", required=True, help="target revision (head, base, id)")
    plan.add_argument(
        "--from", dest="from_revision", metavar="REV", help="starting revision (base allowed)"
    )
    plan.set_defaults(handler=_plan)

    schema = add(
        "schema",
        "work with the schema as SQL",
        "example:\n  raycesctl schema dump --output-file docs/structure.sql",
        [],
    )
    schema_commands = schema.add_subparsers(dest="schema_command", metavar="COMMAND", required=True)
    dump = schema_commands.add_parser(
        "dump",
        help="print the whole schema as normalized pg_dump SQL",
        description="Print the database's schema as `pg_dump --schema-only` SQL without the "
        "lines that change from run to run, followed by its Alembic revision. The committed "
        "copy is docs/structure.sql.",
        epilog="example:\n  raycesctl migrate && raycesctl schema dump --output-file "
        "docs/structure.sql\n\n" + EXIT_CODES_HELP,
        parents=[database, output],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dump.add_argument(
        "--output-file", metavar="PATH", help="write the SQL to PATH instead of stdout"
    )
    dump.set_defaults(handler=_schema_dump)

    embedded = add(
        "embedded",
        "start, stop or show the embedded PostgreSQL",
        "examples:\n  export DATABASE_URL=$(raycesctl embedded start)\n  raycesctl embedded stop",
        [],
    )
    embedded_commands = embedded.add_subparsers(
        dest="embedded_command", metavar="COMMAND", required=True
    )
    for name, help_text, handler in (
        ("start", "start it (or reuse the running one) and print its URL", _embedded_start),
        ("stop", "stop it", _embedded_stop),
        ("status", "say whether it runs, and its URL", _embedded_status),
    ):
        sub = embedded_commands.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            parents=[database, output],
        )
        sub.set_defaults(handler=handler)
    from rayces.cli import compat_commands

    compat_commands.add_parsers(
        commands, parents=[database, output], resolve_database=_database, epilog=EXIT_CODES_HELP
    )
    return parser


# ---------------------------------------------------------------- helpers


def _out(text: str = "", end: str = "\n") -> None:
    """Results, for people or programs: stdout."""
    sys.stdout.write(text + end)


def _err(text: str) -> None:
    """Progress, warnings and errors: stderr, so stdout stays parseable."""
    sys.stderr.write(text + "\n")


def _progress(args: argparse.Namespace, message: str) -> None:
    if not getattr(args, "quiet", False):
        _err(message)


def _data_dir(args: argparse.Namespace) -> Path:
    from rayces.migrations.embedded import default_data_dir

    return Path(args.data_dir) if args.data_dir else default_data_dir()


def _database(args: argparse.Namespace) -> str:
    """The URL given, else the embedded PostgreSQL's (started if needed)."""
    url: str | None = args.database_url or os.environ.get("DATABASE_URL") or None
    if url:
        return url
    from rayces.migrations.embedded import start_embedded_server

    data_dir = _data_dir(args)
    _progress(args, f"using the embedded PostgreSQL in {data_dir} (`raycesctl embedded stop`)")
    return start_embedded_server(data_dir)


def _x_arguments(args: argparse.Namespace) -> dict[str, str]:
    values = dict(args.x_arguments)
    if args.default_organization_name is not None:
        values["default_organization_name"] = args.default_organization_name
    if args.default_organization_subdomain is not None:
        values["default_organization_subdomain"] = args.default_organization_subdomain
    return values


def _configure_logging(args: argparse.Namespace) -> None:
    import logging

    if getattr(args, "quiet", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    # Alembic's "Running upgrade A -> B" says what starts; ours what finished and how long it took.
    handler.addFilter(
        lambda record: (
            record.getMessage().startswith("Running ") or record.name.startswith("rayces")
        )
    )
    for name in ("alembic.runtime.migration", "rayces"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        logger.propagate = False


def _print_json(document: dict[str, Any]) -> None:
    _out(json.dumps(document, indent=2, ensure_ascii=False))


def _write_termination_message(args: argparse.Namespace, document: dict[str, Any]) -> None:
    path = getattr(args, "termination_message_path", None)
    if not path:
        return
    from rayces.migrations.results import termination_message

    try:
        Path(path).write_text(termination_message(document), encoding="utf-8")
    except OSError as error:
        _err(f"{PROG}: warning: cannot write {path}: {error}")


def _revision_label(revision: str | None) -> str:
    return revision or "base"


def _report_migration(args: argparse.Namespace, result: MigrationResult) -> None:
    document = result.to_dict()
    _write_termination_message(args, document)
    if args.output == "json":
        _print_json(document)
        return
    for step in result.steps:
        _out(f"{step.direction:<9} {step.revision}  {step.name}  ({step.duration_seconds:.3f}s)")
    if not result.succeeded:
        return
    if result.command == "stamp":
        _out(
            f"stamped {_revision_label(result.to_revision)} (was "
            f"{_revision_label(result.from_revision)}); no revision was run"
        )
        return
    if not result.steps:
        _out(f"nothing to do: the database is at {_revision_label(result.to_revision)}")
        return
    count = len(result.steps)
    verb = "migrated" if result.command == "upgrade" else "rolled back"
    _out(
        f"{verb} {_revision_label(result.from_revision)} -> {_revision_label(result.to_revision)}"
        f" ({count} revision{'s' if count != 1 else ''}, {result.duration_seconds:.2f}s)"
    )


# ---------------------------------------------------------------- commands


def _schema_change_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options `migrate` and `rollback` share: locking, timeouts and revision arguments."""
    return {
        "lock_wait_timeout": args.lock_wait_timeout,
        "lock_timeout": args.lock_timeout,
        "statement_timeout": args.statement_timeout,
        "x_arguments": _x_arguments(args),
    }


def _migrate(args: argparse.Namespace) -> int:
    from rayces.migrations import commands

    result = commands.upgrade(_database(args), args.to, **_schema_change_options(args))
    _report_migration(args, result)
    return EXIT_OK


def _rollback(args: argparse.Namespace) -> int:
    from rayces.migrations import commands

    result = commands.downgrade(
        _database(args), to=args.to, steps=args.steps, **_schema_change_options(args)
    )
    _report_migration(args, result)
    return EXIT_OK


def _stamp(args: argparse.Namespace) -> int:
    from rayces.migrations import commands

    result = commands.stamp(
        _database(args), args.revision, lock_wait_timeout=args.lock_wait_timeout
    )
    _report_migration(args, result)
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from rayces.migrations import commands
    from rayces.migrations.database import redact_url

    database = _database(args)
    report = commands.status(database)
    if args.output == "json":
        _print_json(report.to_dict())
        return EXIT_OK
    _out(f"database: {redact_url(database)}")
    pending = len(report.pending)
    _out(
        f"current revision: {_revision_label(report.current_revision)}"
        f" (head: {_revision_label(report.head_revision)}, {pending} pending)"
    )
    _out()
    _out(" Status   Revision ID      Name")
    _out("-" * 60)
    for state in report.revisions:
        _out(f"{'up' if state.applied else 'down':>5}    {state.revision:<16} {state.name}")
    if report.interrupted is not None:
        part_way = report.interrupted
        verb = "applying" if part_way.direction == "upgrade" else "reverting"
        _out()
        _out(
            f"interrupted: {verb} {part_way.revision} stopped part-way; steps done: "
            f"{', '.join(part_way.steps_done) or 'none'}"
        )
        _out("  `raycesctl migrate` resumes it; `raycesctl rollback` undoes it")
    return EXIT_OK


def _plan(args: argparse.Namespace) -> int:
    from rayces.migrations import commands
    from rayces.migrations.errors import ConnectionFailedError

    database: str | None = None
    if args.from_revision is None:
        database = args.database_url or os.environ.get("DATABASE_URL") or None
        if database is None:
            from rayces.migrations.embedded import embedded_server_state

            database = embedded_server_state(_data_dir(args)).url
    try:
        plan = commands.plan(
            args.to,
            from_revision=args.from_revision,
            database=database,
            x_arguments=_x_arguments(args),
        )
    except ConnectionFailedError as error:
        _progress(args, f"{PROG}: warning: {error.message}; planning from base")
        plan = commands.plan(args.to, from_revision="base", x_arguments=_x_arguments(args))
    if args.output == "json":
        _print_json(plan.to_dict())
        return EXIT_OK
    count = len(plan.revisions)
    _out(
        f"-- {plan.direction or 'nothing to do'} from {_revision_label(plan.from_revision)}"
        f" to {_revision_label(plan.to_revision)} ({count} revision{'s' if count != 1 else ''})"
    )
    if plan.sql:
        _out(plan.sql, end="" if plan.sql.endswith("\n") else "\n")
    return EXIT_OK


def _write_output_file(path: Path, text: str) -> None:
    from rayces.migrations.errors import SchemaDumpError

    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise SchemaDumpError(
            f"cannot write {path}: {error.strerror or error}",
            hint="give --output-file a path in an existing, writable directory",
        ) from None


def _schema_dump(args: argparse.Namespace) -> int:
    from rayces.migrations import commands

    sql = commands.dump_schema(_database(args))
    if args.output_file and args.output_file != "-":
        _write_output_file(Path(args.output_file), sql)
        _progress(args, f"wrote {args.output_file}")
    elif args.output != "json":
        sys.stdout.write(sql)
    if args.output == "json":
        document: dict[str, Any] = {"command": "schema dump", "status": "succeeded"}
        document["output_file"] = args.output_file
        if not args.output_file:
            document["sql"] = sql
        _print_json(document)
    return EXIT_OK


def _embedded_start(args: argparse.Namespace) -> int:
    from rayces.migrations.embedded import start_embedded_server

    url = start_embedded_server(_data_dir(args))
    if args.output == "json":
        _print_json({"command": "embedded start", "data_dir": str(_data_dir(args)), "url": url})
    else:
        _out(url)
    return EXIT_OK


def _embedded_stop(args: argparse.Namespace) -> int:
    from rayces.migrations.embedded import stop_embedded_server

    data_dir = _data_dir(args)
    stopped = stop_embedded_server(data_dir)
    if args.output == "json":
        _print_json({"command": "embedded stop", "data_dir": str(data_dir), "stopped": stopped})
    elif stopped:
        _out(f"stopped the embedded PostgreSQL in {data_dir}")
    else:
        _out(f"no embedded PostgreSQL running in {data_dir}")
    return EXIT_OK


def _embedded_status(args: argparse.Namespace) -> int:
    from rayces.migrations.embedded import embedded_server_state

    state = embedded_server_state(_data_dir(args))
    if args.output == "json":
        _print_json(
            {
                "command": "embedded status",
                "data_dir": str(state.data_dir),
                "running": state.running,
                "url": state.url,
            }
        )
    elif state.running:
        _out(f"running in {state.data_dir}: {state.url}")
    else:
        _out(f"not running ({state.data_dir})")
    return EXIT_OK


# ---------------------------------------------------------------- errors and entry point


def _command_name(args: argparse.Namespace) -> str:
    name = {"migrate": "upgrade", "rollback": "downgrade"}.get(args.command, args.command)
    sub = getattr(args, "schema_command", None) or getattr(args, "embedded_command", None)
    return f"{name} {sub}" if sub else str(name)


def _fail(args: argparse.Namespace, error: MigrationsError) -> int:
    from rayces.migrations.errors import MigrationFailedError
    from rayces.migrations.results import ErrorInfo, MigrationResult

    hint = f" (hint: {error.hint})" if error.hint else ""
    _err(f"{PROG}: error: {error.message}{hint}")
    if isinstance(error, MigrationFailedError):
        result = error.result
    else:
        result = MigrationResult(
            command=_command_name(args),
            from_revision=None,
            to_revision=None,
            target_revision=None,
            error=ErrorInfo(kind=error.kind, message=error.message, hint=error.hint),
        )
    if args.command in {"migrate", "rollback"}:
        _report_migration(args, result)
    elif args.output == "json":
        document = result.to_dict()
        _print_json({key: document[key] for key in ("command", "status", "error")})
    return int(error.kind.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `raycesctl` with `argv` (default: the process's arguments); return the exit code."""
    from rayces.migrations.errors import MigrationsError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    _configure_logging(args)
    try:
        return handler(args)
    except MigrationsError as error:
        return _fail(args, error)
    except KeyboardInterrupt:
        _err(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
    except Exception as error:
        if os.environ.get("RAYCES_DEBUG"):
            raise
        _err(
            f"{PROG}: error: unexpected {type(error).__name__}: {error}"
            " (hint: set RAYCES_DEBUG=1 to see the traceback, and report it)"
        )
        return EXIT_MIGRATION_FAILED


if __name__ == "__main__":
    sys.exit(main())
