"""`raycesctl` end to end on a real PostgreSQL: migrate, status, rollback, plan, errors, embedded.

Most tests call `main([...])` in-process (fast, and the coverage of the CLI layer); one runs the
installed `raycesctl` executable, as a Job would, to check exit codes and stdout/stderr for real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from rayces.cli.main import main
from rayces.migrations import commands
from rayces.migrations.errors import MigrationFailedError
from rayces.migrations.results import ExitCode
from rayces.migrations.scripts import build_config, load_scripts, revision_chain

EXIT_OK, EXIT_USAGE = ExitCode.OK, ExitCode.USAGE
EXIT_CONNECTION, EXIT_MIGRATION_FAILED = ExitCode.CONNECTION, ExitCode.FAILED
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
REVISIONS = [script.revision for script in revision_chain(load_scripts(build_config()))]
HEAD = REVISIONS[-1]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = main([*argv, "--output", "json", "--quiet"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def version_in(database_url: str) -> str | None:
    with psycopg.connect(database_url) as connection:
        exists = connection.execute("SELECT to_regclass('public.alembic_version')").fetchone()
        if exists is None or exists[0] is None:
            return None
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None else str(row[0])


def test_migrate_status_rollback(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = run_json(capsys, "migrate", "--database-url", database_url)
    assert code == EXIT_OK
    assert result["status"] == "succeeded"
    assert result["from_revision"] is None
    assert result["to_revision"] == HEAD
    steps = result["steps"]
    assert isinstance(steps, list)
    assert [step["revision"] for step in steps] == REVISIONS
    assert all(step["direction"] == "upgrade" for step in steps)
    assert all(step["duration_seconds"] >= 0 for step in steps)
    assert version_in(database_url) == HEAD

    code, status = run_json(capsys, "status", "--database-url", database_url)
    assert code == EXIT_OK
    assert status["current_revision"] == HEAD
    assert status["pending"] == 0
    assert [row["status"] for row in status["revisions"]] == ["up"] * len(REVISIONS)  # type: ignore[union-attr, index]

    code, result = run_json(capsys, "rollback", "--steps", "2", "--database-url", database_url)
    assert code == EXIT_OK
    assert [step["revision"] for step in result["steps"]] == REVISIONS[:-3:-1]  # type: ignore[union-attr, index]
    assert result["to_revision"] == REVISIONS[-3]

    code, result = run_json(
        capsys, "rollback", "--to", REVISIONS[1], "--database-url", database_url
    )
    assert code == EXIT_OK
    assert result["to_revision"] == REVISIONS[1]
    assert version_in(database_url) == REVISIONS[1]

    code = main(["status", "--database-url", database_url])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert f"current revision: {REVISIONS[1]}" in out
    assert f"   up    {REVISIONS[0]}" in out
    assert f" down    {REVISIONS[2]}" in out

    code, result = run_json(capsys, "rollback", "--to", "base", "--database-url", database_url)
    assert code == EXIT_OK
    assert result["to_revision"] is None
    assert version_in(database_url) is None

    code, status = run_json(capsys, "status", "--database-url", database_url)
    assert status["current_revision"] is None
    assert status["pending"] == len(REVISIONS)


def test_migrate_to_a_revision_then_nothing_to_do(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--to", REVISIONS[2], "--database-url", database_url, "-q"]) == 0
    assert f"-> {REVISIONS[2]} (3 revisions" in capsys.readouterr().out
    assert main(["migrate", "--to", REVISIONS[2], "--database-url", database_url, "-q"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_session_settings_reach_the_revisions(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--lock-timeout applies to the revisions: one that waits for a table lock fails, and the
    database stays at the revision before it."""
    assert main(["migrate", "--to", REVISIONS[1], "--database-url", database_url, "-q"]) == 0
    capsys.readouterr()
    with psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        code, result = run_json(
            capsys, "migrate", "--lock-timeout", "200ms", "--database-url", database_url
        )
    assert code == EXIT_MIGRATION_FAILED
    error = result["error"]
    assert isinstance(error, dict)
    assert error["kind"] == "migration_failed"
    assert error["revision"] == REVISIONS[2]
    assert "lock timeout" in error["message"]
    assert result["to_revision"] == REVISIONS[1]
    assert version_in(database_url) == REVISIONS[1]


def test_failed_revision_leaves_the_last_completed_one(database_url: str, tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    (scripts / "versions").mkdir(parents=True)
    shutil.copy(REPOSITORY_ROOT / "alembic" / "env.py", scripts / "env.py")
    shutil.copy(REPOSITORY_ROOT / "alembic" / "script.py.mako", scripts / "script.py.mako")
    bodies = {
        "a1": ["op.execute('CREATE TABLE first_table (id int)')"],
        "b2": [
            "op.execute('CREATE TABLE second_table (id int)')",
            "raise RuntimeError('the data is not what this revision expects')",
        ],
    }
    for revision, down in (("a1", None), ("b2", "a1")):
        lines = [
            f'"""Revision {revision}."""',
            "from alembic import op",
            f"revision = {revision!r}",
            f"down_revision = {down!r}",
            "def upgrade() -> None:",
            *(f"    {line}" for line in bodies[revision]),
            "def downgrade() -> None:",
            "    pass",
        ]
        (scripts / "versions" / f"{revision}.py").write_text("\n".join(lines) + "\n")
    with pytest.raises(MigrationFailedError) as raised:
        commands.upgrade(database_url, script_location=scripts)
    result = raised.value.result
    assert result.to_revision == "a1"
    assert [step.revision for step in result.steps] == ["a1"]
    assert result.error is not None
    assert result.error.revision == "b2"
    assert "the data is not what this revision expects" in result.error.message
    assert version_in(database_url) == "a1"
    with psycopg.connect(database_url) as connection:
        tables = connection.execute(
            "SELECT to_regclass('first_table'), to_regclass('second_table')"
        )
        assert tables.fetchone() == ("first_table", None)


def test_plan_renders_sql_without_running_it(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--to", "head", "--from", "base", "-q"]) == EXIT_OK
    sql = capsys.readouterr().out
    assert f"-- upgrade from base to {HEAD} ({len(REVISIONS)} revisions)" in sql
    assert "CREATE TABLE alembic_version" in sql
    assert "CREATE TABLE organizations" in sql

    assert main(["migrate", "--database-url", database_url, "-q"]) == EXIT_OK
    capsys.readouterr()
    code, plan = run_json(capsys, "plan", "--to", REVISIONS[-2], "--database-url", database_url)
    assert code == EXIT_OK
    assert plan["direction"] == "downgrade"
    assert plan["from_revision"] == HEAD
    assert plan["revisions"] == [HEAD]
    assert f"UPDATE alembic_version SET version_num='{REVISIONS[-2]}'" in str(plan["sql"])
    assert version_in(database_url) == HEAD  # nothing ran


@pytest.mark.parametrize("quiet", [pytest.param([], id="plain"), pytest.param(["-q"], id="quiet")])
def test_plan_against_an_unreachable_database_fails(
    quiet: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """It never plans from base as if the database were empty (it is not known to be)."""
    url = "postgresql://postgres@127.0.0.1:9/x"
    code = main(["plan", "--to", REVISIONS[0], "--database-url", url, *quiet])
    captured = capsys.readouterr()
    assert code == EXIT_CONNECTION
    assert "cannot connect to the database" in captured.err
    assert "-- upgrade" not in captured.out


@pytest.mark.parametrize(
    ("argv", "exit_code", "message"),
    [
        pytest.param(["migrate", "--to", "nope"], EXIT_USAGE, "unknown revision 'nope'", id="rev"),
        pytest.param(
            ["migrate", "--database-url", "postgresql://postgres@127.0.0.1:9/rayces"],
            EXIT_CONNECTION,
            "cannot connect to the database",
            id="unreachable",
        ),
        pytest.param(
            ["migrate", "--database-url", "mysql://root@localhost/rayces"],
            EXIT_USAGE,
            "unsupported database URL scheme 'mysql'",
            id="mysql",
        ),
        pytest.param(
            ["status", "--database-url", "postgresql://h:port/db"],
            EXIT_USAGE,
            "malformed database URL",
            id="malformed",
        ),
        pytest.param(["rollback", "--steps", "0"], EXIT_USAGE, "0 is not 1 or more", id="steps"),
        pytest.param(["rollback", "--steps", "99"], EXIT_USAGE, "cannot roll back 99", id="many"),
    ],
)
def test_errors_are_one_line(
    database_url: str,
    argv: list[str],
    exit_code: int,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if "--database-url" not in argv:
        argv = [*argv, "--database-url", database_url]
    assert main(argv) == exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("raycesctl: error: ")
    assert message in err[0]
    assert "(hint: " in err[0]


def test_json_error_result(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    message_file = tmp_path / "termination-log"
    code, result = run_json(
        capsys,
        "migrate",
        "--database-url",
        "postgresql://postgres@127.0.0.1:9/rayces",
        "--termination-message-path",
        str(message_file),
    )
    assert code == EXIT_CONNECTION
    assert result["status"] == "failed"
    assert result["error"]["kind"] == "connection"  # type: ignore[index]
    assert json.loads(message_file.read_text()) == result


def _raycesctl() -> str:
    found = shutil.which("raycesctl", path=str(Path(sys.executable).parent))
    assert found, "raycesctl is not installed next to this Python"
    return found


def test_executable(database_url: str, tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environment["RAYCES_TERMINATION_MESSAGE_PATH"] = str(tmp_path / "termination-log")
    done = subprocess.run(
        [_raycesctl(), "migrate", "--to", REVISIONS[3], "--output", "json"],
        env={**environment, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == EXIT_OK, done.stderr
    result = json.loads(done.stdout)
    assert result["to_revision"] == REVISIONS[3]
    assert f"Running upgrade  -> {REVISIONS[0]}" in done.stderr  # progress goes to stderr
    assert json.loads((tmp_path / "termination-log").read_text()) == result

    for argv, exit_code in (
        (["migrate", "--to", "nope", "--database-url", database_url], EXIT_USAGE),
        (["migrate", "--database-url", "postgresql://postgres@127.0.0.1:9/db"], EXIT_CONNECTION),
        (["status", "--database-url", "mysql://root@localhost/rayces"], EXIT_USAGE),
    ):
        done = subprocess.run(
            [_raycesctl(), *argv], env=environment, capture_output=True, text=True, check=False
        )
        assert done.returncode == exit_code, (argv, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.startswith("raycesctl: error: ")
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.slow
def test_embedded_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    tmp_path.chmod(0o755)  # the server runs as an unprivileged user when tests run as root
    data_dir = str(tmp_path / "pg")
    try:
        assert main(["migrate", "--to", REVISIONS[4], "--data-dir", data_dir]) == EXIT_OK
        captured = capsys.readouterr()
        assert f"using the embedded PostgreSQL in {data_dir}" in captured.err
        code, status = run_json(capsys, "status", "--data-dir", data_dir)
        assert code == EXIT_OK
        assert status["current_revision"] == REVISIONS[4]
        code, state = run_json(capsys, "embedded", "status", "--data-dir", data_dir)
        assert state["running"] is True
    finally:
        assert main(["embedded", "stop", "--data-dir", data_dir]) == EXIT_OK
    assert "stopped the embedded PostgreSQL" in capsys.readouterr().out
    code, state = run_json(capsys, "embedded", "status", "--data-dir", data_dir)
    assert state["running"] is False


def test_existing_myhub_database_is_refused_until_stamped(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database with MyHub's tables but no recorded revision is not mistaken for an empty one."""
    # MyHub's tables as the baseline revision creates them, made without the migrations.
    commands.upgrade(database_url, REVISIONS[0])
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("DROP TABLE alembic_version")
        connection.execute(
            "INSERT INTO users (name, email, created_at, updated_at)"
            " VALUES ('Ana', 'ana@example.com', now(), now())"
        )

    code = main(["migrate", "--database-url", database_url])
    error = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "existing MyHub database" in error
    assert f"raycesctl stamp {REVISIONS[0]}" in error
    assert version_in(database_url) is None

    code, result = run_json(capsys, "stamp", REVISIONS[0], "--database-url", database_url)
    assert code == EXIT_OK
    assert (result["command"], result["from_revision"], result["to_revision"]) == (
        "stamp",
        None,
        REVISIONS[0],
    )
    assert result["steps"] == []

    assert main(["migrate", "--database-url", database_url, "--quiet"]) == EXIT_OK
    assert version_in(database_url) == HEAD
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT u.name, o.subdomain FROM users u JOIN organizations o"
            " ON o.id = u.organization_id"
        ).fetchall()
    assert row == [("Ana", "default")]


def test_stamp_base_forgets_the_revision(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    commands.upgrade(database_url, REVISIONS[2])
    code, result = run_json(capsys, "stamp", "base", "--database-url", database_url)
    assert code == EXIT_OK
    assert (result["from_revision"], result["to_revision"]) == (REVISIONS[2], None)
    assert version_in(database_url) is None


def test_stamp_unknown_revision_is_a_usage_error(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stamp", "nope", "--database-url", database_url]) == EXIT_USAGE
    error = capsys.readouterr().err
    assert error.startswith("raycesctl: error: unknown revision 'nope'")
    assert "Traceback" not in error


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["migrate", "--to", ""], "empty revision", id="empty-revision"),
        pytest.param(["migrate", "--to", "  "], "empty revision", id="blank-revision"),
        pytest.param(
            ["schema", "dump", "--output-file", "/nonexistent-directory/structure.sql"],
            "cannot write /nonexistent-directory/structure.sql",
            id="unwritable-dump-file",
        ),
    ],
)
def test_unusual_input_gets_a_one_line_error(
    argv: list[str], expected: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*argv, "--database-url", database_url])
    error = capsys.readouterr().err
    assert code != EXIT_OK
    assert expected in error
    assert "unexpected" not in error
    assert len(error.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["migrate"], id="migrate"),
        pytest.param(["rollback"], id="rollback-one-step"),
        pytest.param(["rollback", "--steps", "2"], id="rollback-steps"),
        pytest.param(["status"], id="status"),
        pytest.param(["plan", "--to", "head"], id="plan"),
    ],
)
def test_database_at_a_revision_unknown_to_these_scripts(
    argv: list[str], database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database migrated by another version of rayces is reported, not touched."""
    commands.upgrade(database_url, REVISIONS[2])
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'f00dcafe'")
    code = main([*argv, "--database-url", database_url])
    error = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "the database is at revision 'f00dcafe', which is not in the revision scripts" in error
    assert version_in(database_url) == "f00dcafe"
