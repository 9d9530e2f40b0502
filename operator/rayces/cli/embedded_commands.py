"""`raycesctl embedded start|stop|status`: the embedded PostgreSQL used without a URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rayces.cli.parser import Handler, SharedOptions, Subcommands, add_command
from rayces.migrations.results import ExitCode

if TYPE_CHECKING:
    from rayces.cli.invocation import Invocation


def add_parsers(commands: Subcommands, options: SharedOptions) -> None:
    embedded = add_command(
        commands,
        "embedded",
        "start, stop or show the embedded PostgreSQL",
        "examples:\n  export DATABASE_URL=$(raycesctl embedded start)\n  raycesctl embedded stop",
        [],
    )
    embedded_commands = embedded.add_subparsers(
        dest="embedded_command", metavar="COMMAND", required=True
    )
    handlers: tuple[tuple[str, str, Handler], ...] = (
        ("start", "start it (or reuse the running one) and print its URL", embedded_start),
        ("stop", "stop it", embedded_stop),
        ("status", "say whether it runs, and its URL", embedded_status),
    )
    for name, help_text, handler in handlers:
        sub = embedded_commands.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            parents=[options.database, options.output],
        )
        sub.set_defaults(handler=handler)


def embedded_start(invocation: Invocation) -> int:
    from rayces.migrations.embedded import start_embedded_server

    data_dir = invocation.data_dir()
    url = start_embedded_server(data_dir)
    output = invocation.output
    output.result({"command": "embedded start", "data_dir": str(data_dir), "url": url})
    if not output.json:
        output.line(url)
    return ExitCode.OK


def embedded_stop(invocation: Invocation) -> int:
    from rayces.migrations.embedded import stop_embedded_server

    data_dir = invocation.data_dir()
    stopped = stop_embedded_server(data_dir)
    output = invocation.output
    output.result({"command": "embedded stop", "data_dir": str(data_dir), "stopped": stopped})
    if output.json:
        return ExitCode.OK
    if stopped:
        output.line(f"stopped the embedded PostgreSQL in {data_dir}")
    else:
        output.line(f"no embedded PostgreSQL running in {data_dir}")
    return ExitCode.OK


def embedded_status(invocation: Invocation) -> int:
    from rayces.migrations.embedded import embedded_server_state

    output = invocation.output
    found = embedded_server_state(invocation.data_dir())
    output.result(
        {
            "command": "embedded status",
            "data_dir": str(found.data_dir),
            "running": found.running,
            "url": found.url,
        }
    )
    if output.json:
        return ExitCode.OK
    if found.running:
        output.line(f"running in {found.data_dir}: {found.url}")
    else:
        output.line(f"not running ({found.data_dir})")
    return ExitCode.OK
