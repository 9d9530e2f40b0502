"""The top-level parser, the option groups commands share, and the help that lists exit codes.

Option values are checked here as far as they can be without a database, so a bad value is a
usage error (exit 2) before anything runs. The exit-code and environment help are generated from
`ExitCode` and `ENVIRONMENT_VARIABLES`, the facts they describe.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from rayces import __version__
from rayces.migrations.results import EXIT_CODE_MEANINGS, CommandResult, ErrorInfo
from rayces.migrations.settings import ENVIRONMENT_VARIABLES

if TYPE_CHECKING:
    from rayces.cli.invocation import Invocation

PROG = "raycesctl"

#: What a command's `handler` is: it runs the command and returns the exit code.
Handler = Callable[["Invocation"], int]

#: What a command's `failure_result` is: the result a failure is reported as when the command
#: did not attach its own to the error, from the command's name in results, the error, and the
#: seconds the command ran. Without one, `MigrationsError.to_result` builds it.
FailureResult = Callable[["Invocation", str, ErrorInfo, float], CommandResult]


def _exit_codes_help() -> str:
    lines = ["exit codes:"]
    for code, meaning in EXIT_CODE_MEANINGS.items():
        lines.append(f"  {int(code):<4} {meaning}")
    return "\n".join(lines)


EXIT_CODES_HELP = _exit_codes_help()

ENVIRONMENT_HELP = "environment:\n" + "\n".join(
    f"  {name:<38} {meaning}" for name, meaning in ENVIRONMENT_VARIABLES.items()
)

MAIN_EPILOG = f"""\
Without --database-url or DATABASE_URL, commands use an embedded PostgreSQL kept
running in ${{XDG_DATA_HOME:-~/.local/share}}/rayces/embedded-postgres (as root:
/var/lib/rayces/embedded-postgres; or --data-dir);
`raycesctl embedded stop` stops it.

With --output json, every command writes one JSON document to stdout, success or
failure (the result contract of the README), and --termination-message-path gets
the same document cut to 4096 bytes.

examples:
  raycesctl migrate                               migrate to the newest revision
  raycesctl status                                every revision, up or down
  raycesctl rollback --steps 2                    revert the two newest revisions
  raycesctl plan --to head --from base            SQL of a full upgrade, no database needed
  raycesctl schema dump --output-file docs/structure.sql
  DATABASE_URL=postgresql://app@db:5432/rayces raycesctl migrate --to 20250713000001 --output json

{EXIT_CODES_HELP}

{ENVIRONMENT_HELP}"""


class CommandLineError(Exception):
    """The command line cannot be parsed; the message is argparse's, one line."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.message = message
        self.prog = prog


class ArgumentParser(argparse.ArgumentParser):
    """argparse, raising `CommandLineError` so that dispatch reports usage errors like any
    other error (one line, JSON, termination message, exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise CommandLineError(message, self.prog)


class Subcommands(Protocol):
    """What `add_parsers` receives: argparse's subparsers action."""

    def add_parser(self, name: str, **kwargs: Any) -> ArgumentParser: ...


# ---------------------------------------------------------------- option values


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not 0 or more seconds")
    return value


def duration(text: str) -> str:
    from rayces.migrations.database import validate_duration
    from rayces.migrations.errors import UsageError

    try:
        return validate_duration(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(f"{error.message}; {error.hint}") from None


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


# ---------------------------------------------------------------- shared option groups


def _database_options() -> ArgumentParser:
    parent = ArgumentParser(add_help=False)
    group = parent.add_argument_group("database")
    group.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL URL (postgresql://USER:PASSWORD@HOST:5432/DBNAME, postgres://, "
        "postgresql+psycopg://, or libpq's key=value form); it must name a user, a database and "
        "a host; default: $DATABASE_URL (better for a password: the command line of a process is "
        "visible to every user of the machine), else the embedded PostgreSQL",
    )
    group.add_argument(
        "--connect-timeout",
        metavar="SECONDS",
        type=seconds,
        help="give up connecting after this long (default: the URL's connect_timeout, else 10)",
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


def _output_options() -> ArgumentParser:
    parent = ArgumentParser(add_help=False)
    group = parent.add_argument_group("output")
    group.add_argument(
        "--output",
        "-o",
        choices=("text", "json"),
        default="text",
        help="text for people (default) or one JSON document on stdout",
    )
    group.add_argument("--quiet", "-q", action="store_true", help="no progress messages on stderr")
    group.add_argument(
        "--termination-message-path",
        metavar="PATH",
        help="also write the JSON result here, cut to Kubernetes' 4096 bytes "
        "(default: $RAYCES_TERMINATION_MESSAGE_PATH; unset: not written)",
    )
    return parent


def _revision_argument_options() -> ArgumentParser:
    parent = ArgumentParser(add_help=False)
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
        type=key_value,
        default=[],
        help="any other value for the revisions, as `alembic -x` passes it (repeatable)",
    )
    return parent


def _run_options() -> ArgumentParser:
    parent = ArgumentParser(add_help=False)
    group = parent.add_argument_group("locking and timeouts")
    group.add_argument(
        "--lock-wait-timeout",
        metavar="SECONDS",
        type=seconds,
        default=60.0,
        help="how long to wait while another run holds the migration lock (default: 60)",
    )
    group.add_argument(
        "--lock-timeout",
        metavar="DURATION",
        type=duration,
        help="PostgreSQL lock_timeout for the revisions, 1ms to 24d, e.g. 5s, 500ms "
        "(default: the server's)",
    )
    group.add_argument(
        "--statement-timeout",
        metavar="DURATION",
        type=duration,
        help="PostgreSQL statement_timeout for the revisions, 1ms to 24d, e.g. 10min "
        "(default: the server's)",
    )
    return parent


@dataclass(frozen=True)
class SharedOptions:
    """Option groups a command takes as `parents=[...]`."""

    database: ArgumentParser
    output: ArgumentParser
    run: ArgumentParser
    revision_values: ArgumentParser


def add_command(
    commands: Subcommands,
    name: str,
    help_text: str,
    epilog: str,
    parents: Sequence[ArgumentParser],
    *,
    handler: Handler | None = None,
    failure_result: FailureResult | None = None,
) -> ArgumentParser:
    """Add command `name`, whose help ends with the exit codes; `handler` runs it, and
    `failure_result` (if given) shapes the result of its failures."""
    parser = commands.add_parser(
        name,
        help=help_text,
        description=help_text[0].upper() + help_text[1:] + ".",
        epilog=(epilog + "\n\n" if epilog else "") + EXIT_CODES_HELP,
        parents=list(parents),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if handler is not None:
        parser.set_defaults(handler=handler)
    if failure_result is not None:
        parser.set_defaults(failure_result=failure_result)
    return parser


class CommandGroup(Protocol):
    """A module of commands, as listed in `rayces.cli.main.COMMAND_GROUPS`."""

    def add_parsers(self, commands: Subcommands, options: SharedOptions) -> None: ...


def build_parser(groups: Sequence[CommandGroup]) -> ArgumentParser:
    """The whole command line: every group's commands under one `raycesctl`."""
    parser = ArgumentParser(
        prog=PROG,
        description="Migrate, inspect and dump the Rayces PostgreSQL schema.",
        epilog=MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    options = SharedOptions(
        database=_database_options(),
        output=_output_options(),
        run=_run_options(),
        revision_values=_revision_argument_options(),
    )
    for group in groups:
        group.add_parsers(commands, options)
    return parser
