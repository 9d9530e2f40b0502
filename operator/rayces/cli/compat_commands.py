"""`raycesctl legacy-writes`: show, switch off (the contract step) or switch on again the path
that gives rows the old MyHub application writes without an organization to the default one.

The work is done by `rayces.migrations.compat`; this module only adds the command to the parser
and prints the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rayces.cli.parser import EXIT_CODES_HELP, SharedOptions, Subcommands, add_command
from rayces.migrations.results import ExitCode

if TYPE_CHECKING:
    from rayces.cli.invocation import Invocation

_ACTIONS = {
    "status": "show whether legacy writes go to the default organization",
    "disable": "refuse rows written without organization_id again (the contract step)",
    "enable": "give rows written without organization_id to the default organization again",
}


def add_parsers(commands: Subcommands, options: SharedOptions) -> None:
    command = add_command(
        commands,
        "legacy-writes",
        "the old application's writes without organization_id: status, disable, enable",
        "Rows the old MyHub application inserts without organization_id go to the default\n"
        "organization while this is enabled (from revision 20250713000002 on). Disable it\n"
        "once every writer sets organization_id; enable it again to undo.\n\n"
        "examples:\n  raycesctl legacy-writes status\n  raycesctl legacy-writes disable",
        [],
    )
    actions = command.add_subparsers(dest="legacy_writes_action", metavar="ACTION", required=True)
    for action, help_text in _ACTIONS.items():
        sub = actions.add_parser(
            action,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=EXIT_CODES_HELP,
            parents=[options.database, options.output],
            formatter_class=command.formatter_class,
        )
        sub.set_defaults(handler=legacy_writes_command, result_command=f"legacy-writes {action}")


def legacy_writes_command(invocation: Invocation) -> int:
    from rayces.migrations import compat

    action = invocation.args.legacy_writes_action
    database = invocation.database()
    if action == "status":
        state = compat.legacy_writes(database)
    else:
        state = compat.set_legacy_writes(database, enabled=action == "enable")
    output = invocation.output
    output.result({**state.to_dict(), "command": f"legacy-writes {action}", "status": "succeeded"})
    if output.json:
        return ExitCode.OK
    if state.default_organization_id is None:
        output.line("legacy writes: refused (there is no default organization)")
    else:
        where = f"organization {state.default_organization_id}"
        output.line(
            f"legacy writes: {'go to the default ' + where if state.enabled else 'refused'}"
        )
    return ExitCode.OK
