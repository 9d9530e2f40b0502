"""`raycesctl`'s entry point, and the list of command groups it is made of.

To add a command group, write a module with `add_parsers(commands, options)` and list it in
`COMMAND_GROUPS` (see the `rayces.cli` package docstring).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rayces.cli import (
    embedded_commands,
    inspection_commands,
    migration_commands,
    operator_commands,
    schema_commands,
    tenant_commands,
)
from rayces.cli.dispatch import run
from rayces.cli.invocation import Invocation
from rayces.cli.parser import ArgumentParser, CommandGroup, SharedOptions, Subcommands
from rayces.cli.parser import build_parser as _build_parser
from rayces.migrations.results import ExitCode
from rayces.migrations.settings import Settings

# The exit codes under the names callers of this module know; `ExitCode` is their source.
EXIT_OK = ExitCode.OK
EXIT_MIGRATION_FAILED = ExitCode.FAILED
EXIT_USAGE = ExitCode.USAGE
EXIT_CONNECTION = ExitCode.CONNECTION
EXIT_LOCK_TIMEOUT = ExitCode.LOCK_TIMEOUT
EXIT_INTERRUPTED = ExitCode.INTERRUPTED


class _TenantCommands:
    """`seed`, `tenant archive|purge` and `verify` until `tenant_commands` takes the
    `add_parsers(commands, options)` form: its handlers take the parsed arguments and resolve
    the database themselves, so each is wrapped to take an `Invocation`."""

    @staticmethod
    def add_parsers(commands: Subcommands, options: SharedOptions) -> None:
        tenant_commands.add_parsers(
            commands,
            parents=[options.database, _format_option()],
            resolve_database=lambda args: str(args.invocation.database_url()),
        )
        choices: dict[str, ArgumentParser] = getattr(commands, "choices", {})
        parsers = [choices["seed"], choices["verify"]]
        for action in choices["tenant"]._actions:
            parsers += list((getattr(action, "choices", None) or {}).values())
        for parser in parsers:
            handler = parser.get_default("handler")
            if handler is not None:
                parser.set_defaults(handler=_taking_invocation(handler))


def _format_option() -> ArgumentParser:
    parent = ArgumentParser(add_help=False)
    parent.add_argument(
        "--output",
        "-o",
        choices=("text", "json"),
        default="text",
        help="text for people (default) or the JSON result",
    )
    parent.add_argument("--quiet", "-q", action="store_true", help="no progress messages")
    return parent


def _taking_invocation(handler: Any) -> Any:
    def run_handler(invocation: Invocation) -> int:
        invocation.args.invocation = invocation
        return int(handler(invocation.args))

    return run_handler


#: Every command group, in the order `raycesctl --help` lists their commands.
COMMAND_GROUPS: tuple[CommandGroup, ...] = (
    migration_commands,
    inspection_commands,
    schema_commands,
    embedded_commands,
    operator_commands,
    _TenantCommands(),
)


def build_parser() -> ArgumentParser:
    """The whole command line of `raycesctl`."""
    return _build_parser(COMMAND_GROUPS)


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Run `raycesctl` with `argv` (default: the process's arguments); return the exit code.

    :param settings: the run's settings; read from the environment, once, when omitted.
    """
    return run(
        build_parser(),
        sys.argv[1:] if argv is None else argv,
        settings if settings is not None else Settings.from_environment(),
    )


if __name__ == "__main__":
    sys.exit(main())
