"""The data-loss guard of `raycesctl rollback`: each revision declares what its downgrade drops,
the declarations are true, and a rollback that would drop rows is refused unless allowed."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from rayces.cli.main import main
from rayces.migrations import commands
from rayces.migrations.data_loss import declared_drops, declared_values
from rayces.migrations.results import ExitCode
from rayces.migrations.scripts import build_config, load_scripts, revision_chain
from rayces.migrations.settings import Settings

CHAIN = revision_chain(load_scripts(build_config()))
REVISIONS = [script.revision for script in CHAIN]
JTI = REVISIONS.index("20250713000006")


def _tables_and_columns(database_url: str) -> tuple[set[str], set[str]]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name <> 'alembic_version'"
        ).fetchall()
    return {table for table, _ in rows}, {f"{table}.{column}" for table, column in rows}


def test_every_revision_declares_what_its_downgrade_drops(database_url: str) -> None:
    commands.upgrade(database_url)
    for script in reversed(CHAIN):
        tables_before, columns_before = _tables_and_columns(database_url)
        commands.downgrade(database_url, steps=1, allow_data_loss=True)
        tables_after, columns_after = _tables_and_columns(database_url)
        dropped = {f"table {table}" for table in tables_before - tables_after} | {
            f"column {column}"
            for column in columns_before - columns_after
            if column.split(".")[0] in tables_after
        }
        assert set(declared_drops(script)) == dropped, script.revision
        declared_values(script)  # names only columns the revision drops


def _user_at_jti(database_url: str) -> None:
    with psycopg.connect(database_url) as connection:
        [(organization,)] = connection.execute(
            "INSERT INTO organizations (name, subdomain) VALUES ('Acme', 'acme') RETURNING id"
        ).fetchall()
        connection.execute(
            "INSERT INTO users (organization_id, name, email, created_at, updated_at) "
            "VALUES (%s, 'Ana', 'ana@example.com', now(), now())",
            (organization,),
        )


def test_rollback_that_would_drop_rows_is_refused_unless_allowed(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands.upgrade(database_url, REVISIONS[JTI])
    _user_at_jti(database_url)
    message = tmp_path / "termination-log"
    settings = Settings(termination_message_path=str(message))
    argv = ["rollback", "--database-url", database_url, "-o", "json", "-q"]

    code = main(argv, settings=settings)
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert code == ExitCode.DATA_LOSS_REFUSED
    assert result["error"]["kind"] == "data_loss_refused"
    assert result["error"]["data_loss"] == [{"object": "column users.jti", "rows": 1}]
    assert "column users.jti (1 rows)" in captured.err
    assert "--allow-data-loss" in captured.err
    assert result["to_revision"] == REVISIONS[JTI]
    assert json.loads(message.read_text()) == result
    assert commands.status(database_url).current_revision == REVISIONS[JTI]

    code = main([*argv, "--to", "base"], settings=settings)
    losses = json.loads(capsys.readouterr().out)["error"]["data_loss"]
    assert {loss["object"] for loss in losses} >= {
        "column users.jti",
        "table organizations",
        "table users",
    }

    assert main([*argv, "--allow-data-loss"], settings=settings) == ExitCode.OK
    assert commands.status(database_url).current_revision == REVISIONS[JTI - 1]


def test_empty_tables_go_down_freely(database_url: str) -> None:
    commands.upgrade(database_url)
    result = commands.downgrade(database_url, to="base")
    assert result.to_revision is None
