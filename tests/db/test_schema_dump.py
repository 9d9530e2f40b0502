"""The committed docs/structure.sql is what the revisions produce.

Every schema change therefore shows up in a review as a diff of that file; a revision changed
without regenerating it fails here.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from rayces.cli.main import EXIT_OK, main

STRUCTURE_SQL = Path(__file__).resolve().parents[2] / "docs" / "structure.sql"
REGENERATE = (
    "raycesctl migrate --database-url URL && "
    "raycesctl schema dump --database-url URL --output-file docs/structure.sql "
    "(URL: an empty database; omit --database-url to use the embedded one)"
)


def test_committed_dump_matches_the_migrations(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--database-url", database_url, "--quiet"]) == EXIT_OK
    fresh = tmp_path / "structure.sql"
    code = main(
        ["schema", "dump", "--database-url", database_url, "--output-file", str(fresh), "-q"]
    )
    assert code == EXIT_OK, capsys.readouterr().err
    expected = STRUCTURE_SQL.read_text() if STRUCTURE_SQL.exists() else ""
    actual = fresh.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                "docs/structure.sql (committed)",
                "docs/structure.sql (from the migrations)",
                n=2,
            )
        )
        pytest.fail(
            f"docs/structure.sql is not what the migrations produce; regenerate it with\n"
            f"  {REGENERATE}\n\n{diff[:6000]}",
            pytrace=False,
        )


def test_dump_is_stable(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--to", "20250713000004", "--database-url", database_url, "-q"]) == 0
    capsys.readouterr()
    dumps = []
    for _ in range(2):
        assert main(["schema", "dump", "--database-url", database_url, "-q"]) == EXIT_OK
        dumps.append(capsys.readouterr().out)
    assert dumps[0] == dumps[1]
    assert "\\restrict" not in dumps[0]
    assert "\nSET " not in dumps[0]
    assert dumps[0].endswith("VALUES ('20250713000004');\n")


def test_dump_of_a_database_with_another_search_path_loads(
    postgres_server_url: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import psycopg
    from psycopg import sql
    from tests.db.alembic_helpers import run_psql, scratch_database

    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA app")
        connection.execute(
            sql.SQL("ALTER DATABASE {} SET search_path = app").format(sql.Identifier(str(name)))
        )
    assert main(["migrate", "--database-url", database_url, "-q"]) == EXIT_OK
    with psycopg.connect(database_url) as connection:
        # 0017's functions and grants follow the schema the migration ran in.
        placed = connection.execute(
            "SELECT to_regprocedure('app.current_organization_id()') IS NOT NULL, "
            "has_schema_privilege('rayces_app', 'app', 'USAGE'), "
            "has_sequence_privilege('rayces_app', 'app.users_id_seq', 'USAGE')"
        ).fetchone()
    assert placed == (True, True, True)
    capsys.readouterr()
    assert main(["schema", "dump", "--database-url", database_url, "-q"]) == EXIT_OK
    dump = capsys.readouterr().out
    assert "INSERT INTO app.alembic_version" in dump
    with scratch_database(postgres_server_url) as copy:
        loaded = run_psql(copy, dump)
        assert loaded.returncode == 0, loaded.stderr
