"""`raycesctl`'s entry point, and the list of command groups it is made of.

To add a command group, write a module with `add_parsers(commands, options)` and list it in
`COMMAND_GROUPS` (see the `rayces.cli` package docstring).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rayces.cli import (
    compat_commands,
    embedded_commands,
    inspection_commands,
    migration_commands,
    operator_commands,
    schema_commands,
    tenant_commands,
)
from rayces.cli.dispatch import run
from rayces.cli.parser import ArgumentParser, CommandGroup
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


#: Every command group, in the order `raycesctl --help` lists their commands.
COMMAND_GROUPS: tuple[CommandGroup, ...] = (
    migration_commands,
    inspection_commands,
    schema_commands,
    embedded_commands,
    compat_commands,
    tenant_commands,
    operator_commands,
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
