"""`raycesctl legacy-writes`: show, switch off (the contract step) or switch on again the path
that gives rows the old MyHub application writes without an organization to the default one.

The work is done by `rayces.migrations.compat`; this module only adds the command to the parser
and prints the answer. `add_parsers` is called by the main parser with the shared option groups
and the function that turns the parsed options into a database URL.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

_ACTIONS = {
    "status": "show whether legacy writes go to the default organization",
    "disable": "refuse rows written without organization_id again (the contract step)",
    "enable": "give rows written without organization_id to the default organization again",
}


def add_parsers(
    subparsers: Any,
    *,
    parents: Sequence[argparse.ArgumentParser],
    resolve_database: Callable[[argparse.Namespace], str],
    epilog: str = "",
) -> None:
    """Add `legacy-writes {status,disable,enable}` to `subparsers`.

    :param subparsers: the main parser's `add_subparsers()` result.
    :param parents: option groups every database command takes (database URL, output format).
    :param resolve_database: parsed options -> the database URL to use.
    :param epilog: text shown under each command's help (the exit codes).
    """
    command = subparsers.add_parser(
        "legacy-writes",
        help="the old application's writes without organization_id: status, disable, enable",
        description="Rows the old MyHub application inserts without organization_id go to the "
        "default organization while this is enabled (from revision 20250713000002 on). "
        "Disable it once every writer sets organization_id; enable it again to undo.",
        epilog="examples:\n  raycesctl legacy-writes status\n  raycesctl legacy-writes disable"
        + ("\n\n" + epilog if epilog else ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = command.add_subparsers(dest="legacy_writes_action", metavar="ACTION", required=True)
    for action, help_text in _ACTIONS.items():
        sub = actions.add_parser(
            action,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            parents=list(parents),
        )
        sub.set_defaults(handler=_handler(action, resolve_database))


def _handler(
    action: str, resolve_database: Callable[[argparse.Namespace], str]
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from rayces.migrations import compat

        database = resolve_database(args)
        if action == "status":
            state = compat.legacy_writes(database)
        else:
            state = compat.set_legacy_writes(database, enabled=action == "enable")
        if args.output == "json":
            document = {**state.to_dict(), "action": action, "status": "succeeded"}
            sys.stdout.write(json.dumps(document) + "\n")
        elif state.default_organization_id is None:
            sys.stdout.write("legacy writes: refused (there is no default organization)\n")
        else:
            where = f"organization {state.default_organization_id}"
            sys.stdout.write(
                f"legacy writes: {'go to the default ' + where if state.enabled else 'refused'}\n"
            )
        return 0

    return run
