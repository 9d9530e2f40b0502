"""`raycesctl current-revision`, the read-only command of dry-run Jobs, on a real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.controller.operator_support import free_port, head_revision

from rayces.cli.main import main
from rayces.migrations.results import MigrationResult


def test_it_reports_the_revision_and_changes_nothing(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = tmp_path / "termination-log"
    arguments = ["--database-url", database_url, "--termination-message-path", str(message)]
    assert main(["current-revision", "-o", "json", *arguments]) == 0
    empty = MigrationResult.from_termination_message(message.read_text())
    assert (empty.from_revision, empty.to_revision) == (None, None)
    assert empty.target_revision == head_revision()
    assert json.loads(capsys.readouterr().out)["command"] == "current-revision"
    assert main(["current-revision", *arguments]) == 0
    assert capsys.readouterr().out.strip() == "base"  # reading created no alembic_version
    assert main(["migrate", "--to", "20250713000003", "--database-url", database_url, "-q"]) == 0
    capsys.readouterr()
    assert main(["current-revision", *arguments]) == 0
    assert capsys.readouterr().out.strip() == "20250713000003"
    assert MigrationResult.from_termination_message(message.read_text()).to_revision == (
        "20250713000003"
    )


def test_an_unreachable_database_is_a_connection_error_in_the_result(tmp_path: Path) -> None:
    message = tmp_path / "termination-log"
    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/none"
    code = main(
        ["current-revision", "--database-url", url, "--termination-message-path", str(message)]
    )
    assert code == 3
    result = MigrationResult.from_termination_message(message.read_text())
    assert result.error is not None and result.error.kind == "connection"
    assert "secret" not in message.read_text()
