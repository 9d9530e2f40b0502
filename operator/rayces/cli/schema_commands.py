"""`raycesctl schema dump`: the database's schema as normalized SQL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rayces.cli.parser import EXIT_CODES_HELP, SharedOptions, Subcommands, add_command
from rayces.migrations.results import ExitCode

if TYPE_CHECKING:
    from rayces.cli.invocation import Invocation


def add_parsers(commands: Subcommands, options: SharedOptions) -> None:
    schema = add_command(
        commands,
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
        "copy is docs/structure.sql. pg_dump gets the password through a passfile, never on "
        "its command line.",
        epilog="example:\n  raycesctl migrate && raycesctl schema dump --output-file "
        "docs/structure.sql\n\n" + EXIT_CODES_HELP,
        parents=[options.database, options.output],
        formatter_class=schema.formatter_class,
    )
    dump.add_argument(
        "--output-file", metavar="PATH", help="write the SQL to PATH instead of stdout (- : stdout)"
    )
    dump.set_defaults(handler=schema_dump_command)


def _write_output_file(path: Path, text: str) -> None:
    from rayces.migrations.errors import SchemaDumpError

    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise SchemaDumpError(
            f"cannot write {path}: {error.strerror or error}",
            hint="give --output-file a path in an existing, writable directory",
        ) from None


def schema_dump_command(invocation: Invocation) -> int:
    from rayces.migrations import commands

    args, output = invocation.args, invocation.output
    sql = commands.dump_schema(invocation.database())
    to_file = bool(args.output_file) and args.output_file != "-"
    if to_file:
        _write_output_file(Path(args.output_file), sql)
        output.progress(f"wrote {args.output_file}")
    document: dict[str, Any] = {
        "command": "schema dump",
        "status": "succeeded",
        "output_file": args.output_file if to_file else None,
    }
    if not to_file:
        document["sql"] = sql
    if output.json:
        output.result(document)
    else:
        output.termination_message({key: document[key] for key in ("command", "status")})
        if not to_file:
            output.raw(sql)
    return ExitCode.OK
