"""How `raycesctl` fails: every failure a result with a kind, an exit code, and the revisions
right; values refused before anything runs; the repairs `stamp` can make; the plain `alembic`
command under the same lock.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from rayces.cli.main import main
from rayces.migrations import commands
from rayces.migrations.errors import MigrationFailedError
from rayces.migrations.locking import MIGRATION_LOCK_KEY
from rayces.migrations.results import ExitCode
from rayces.migrations.scripts import build_config, load_scripts, revision_chain
from rayces.migrations.settings import Settings

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
REVISIONS = [script.revision for script in revision_chain(load_scripts(build_config()))]
HEAD = REVISIONS[-1]


def run_json(
    capsys: pytest.CaptureFixture[str], *argv: str, settings: Settings | None = None
) -> tuple[int, dict[str, object], str]:
    code = main([*argv, "--output", "json", "--quiet"], settings=settings or Settings())
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def version_rows(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as connection:
        if connection.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,):
            return []
        return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]


# ---------------------------------------------------------------- revisions in failed results


def test_a_usage_error_at_head_reports_head(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    commands.upgrade(database_url)
    code, result, _ = run_json(capsys, "migrate", "--to", "nope", "--database-url", database_url)
    assert code == ExitCode.USAGE
    assert (result["from_revision"], result["to_revision"]) == (HEAD, HEAD)


def test_a_lock_timeout_reports_where_the_database_is(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    commands.upgrade(database_url)
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        code, result, _ = run_json(
            capsys, "rollback", "--lock-wait-timeout", "0", "--database-url", database_url
        )
    assert code == ExitCode.LOCK_TIMEOUT
    assert result["error"]["kind"] == "lock_timeout"  # type: ignore[index]
    assert (result["from_revision"], result["to_revision"]) == (HEAD, HEAD)


def _write_revisions(directory: Path, bodies: dict[str, list[str]]) -> Path:
    (directory / "versions").mkdir(parents=True)
    shutil.copy(REPOSITORY_ROOT / "alembic" / "env.py", directory / "env.py")
    down = None
    for revision, body in bodies.items():
        lines = [
            f'"""Revision {revision}."""',
            "from alembic import op",
            f"revision = {revision!r}",
            f"down_revision = {down!r}",
            "downgrade_drops = ()",
            "def upgrade() -> None:",
            *(f"    {line}" for line in body),
            "def downgrade() -> None:",
            "    pass",
        ]
        (directory / "versions" / f"{revision}.py").write_text("\n".join(lines) + "\n")
        down = revision
    return directory


def test_a_revision_failing_at_commit_is_the_one_blamed(database_url: str, tmp_path: Path) -> None:
    """A deferred foreign key is checked at COMMIT, after Alembic reported the revision done."""
    scripts = _write_revisions(
        tmp_path / "scripts",
        {
            "a0": ["op.execute('CREATE TABLE parent (id int PRIMARY KEY)')"],
            "a1": [
                "op.execute('CREATE TABLE child (parent_id int REFERENCES parent "
                "DEFERRABLE INITIALLY DEFERRED)')",
                "op.execute('INSERT INTO child VALUES (42)')",
            ],
            "a2": ["op.execute('CREATE TABLE third (id int)')"],
        },
    )
    with pytest.raises(MigrationFailedError) as raised:
        commands.upgrade(database_url, script_location=scripts)
    result = raised.value.result
    assert result.error is not None
    assert result.error.revision == "a1"
    assert [step.revision for step in result.steps] == ["a0"]
    assert result.to_revision == "a0"
    assert version_rows(database_url) == ["a0"]


# ---------------------------------------------------------------- values checked before running


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(["--default-organization-subdomain", "acme\n"], id="subdomain-newline"),
        pytest.param(["--default-organization-subdomain", ""], id="subdomain-empty"),
        pytest.param(["--default-organization-subdomain", "-acme"], id="subdomain-hyphen"),
        pytest.param(["--default-organization-name", ""], id="name-empty"),
        pytest.param(["--default-organization-name", "Acme\n"], id="name-newline"),
        pytest.param(["-x", "default_organization_subdomain=Acme"], id="x-upper-case"),
        pytest.param(["--lock-timeout", "400us"], id="lock-timeout-below-1ms"),
        pytest.param(["--statement-timeout", "25d"], id="statement-timeout-too-long"),
    ],
)
def test_bad_values_are_usage_errors_before_anything_runs(
    database_url: str, options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, result, err = run_json(capsys, "migrate", "--database-url", database_url, *options)
    assert code == ExitCode.USAGE
    assert result["error"]["kind"] == "usage"  # type: ignore[index]
    assert len(err.strip().splitlines()) == 1
    assert version_rows(database_url) == []  # not even the baseline ran


def test_an_empty_default_subdomain_from_the_environment_is_refused(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(default_organization_subdomain="")
    code, _, _ = run_json(capsys, "migrate", "--database-url", database_url, settings=settings)
    assert code == ExitCode.USAGE
    assert version_rows(database_url) == []


# ---------------------------------------------------------------- URLs and connecting


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("postgresql://:@:/", id="everything-defaulted"),
        pytest.param("postgresql://127.0.0.1/rayces", id="no-user"),
        pytest.param("postgresql://app@127.0.0.1", id="no-database"),
        pytest.param("postgresql://app@/rayces", id="default-socket"),
    ],
)
def test_incomplete_urls_are_usage_errors(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, result, _ = run_json(capsys, "status", "--database-url", url)
    assert code == ExitCode.USAGE
    assert "names no" in str(result["error"]["message"])  # type: ignore[index]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()


@pytest.mark.parametrize(
    ("query", "options"),
    [
        pytest.param("?connect_timeout=2", [], id="url"),
        pytest.param("", ["--connect-timeout", "2"], id="option"),
        pytest.param("?connect_timeout=30", ["--connect-timeout", "2"], id="option-wins"),
    ],
)
def test_connect_timeout_is_honoured(
    silent_server: int, query: str, options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql://app@127.0.0.1:{silent_server}/rayces{query}"
    started = time.monotonic()
    code, result, _ = run_json(capsys, "status", "--database-url", url, *options)
    elapsed = time.monotonic() - started
    assert code == ExitCode.CONNECTION
    assert result["error"]["retryable"] is True  # type: ignore[index]
    # 2 s asked for; the default would have been 10 s and the 30 s of the URL longer still.
    assert elapsed < 9, elapsed


# ---------------------------------------------------------------- permissions


@pytest.fixture
def unprivileged_url(database_url: str) -> Iterator[str]:
    """The same database, as a role that may connect but not create anything."""
    role = "rayces_no_rights_" + os.urandom(4).hex()
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        admin.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    try:
        yield psycopg.conninfo.make_conninfo(database_url, user=role)
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_missing_privilege_is_named(
    unprivileged_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = tmp_path / "termination-log"
    code, result, err = run_json(
        capsys,
        "migrate",
        "--database-url",
        unprivileged_url,
        "--termination-message-path",
        str(message),
    )
    assert code == ExitCode.PERMISSION_DENIED
    error = result["error"]
    assert isinstance(error, dict)
    assert error["kind"] == "permission_denied"
    assert "GRANT CREATE" in error["hint"] and "SCHEMA public" in error["hint"]
    assert json.loads(message.read_text()) == result
    assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- stamp repairs


def test_stamp_repairs_an_alembic_version_with_two_rows(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands.upgrade(database_url)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("INSERT INTO alembic_version VALUES (%s)", (REVISIONS[3],))
    code, result, err = run_json(capsys, "status", "--database-url", database_url)
    assert code == ExitCode.USAGE
    assert "raycesctl stamp" in err
    assert "alembic merge" not in err

    code, result, _ = run_json(capsys, "stamp", HEAD, "--database-url", database_url)
    assert code == ExitCode.OK
    assert set(str(result["from_revision"]).split(",")) == {HEAD, REVISIONS[3]}
    assert version_rows(database_url) == [HEAD]


def test_stamp_failures_write_the_termination_message(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = tmp_path / "termination-log"
    code, result, _ = run_json(
        capsys,
        "stamp",
        "nope",
        "--database-url",
        database_url,
        "--termination-message-path",
        str(message),
    )
    assert code == ExitCode.USAGE
    assert json.loads(message.read_text()) == result
    assert result["command"] == "stamp"


# ---------------------------------------------------------------- plain alembic, dump output


def test_plain_alembic_takes_the_migration_lock(database_url: str) -> None:
    environment = {**os.environ, "DATABASE_URL": database_url}
    alembic = [
        str(Path(sys.executable).parent / "alembic"),
        "-c",
        str(REPOSITORY_ROOT / "alembic.ini"),
        "-x",
        "lock_wait_timeout=0",
        "upgrade",
        "head",
    ]
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        done = subprocess.run(alembic, env=environment, capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "another migration run held the lock" in done.stderr
    assert version_rows(database_url) == []
    done = subprocess.run(alembic, env=environment, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert version_rows(database_url) == [HEAD]


def test_schema_dump_json_to_stdout_keeps_the_sql(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    commands.upgrade(database_url, REVISIONS[1])
    code, result, _ = run_json(
        capsys, "schema", "dump", "--output-file", "-", "--database-url", database_url
    )
    assert code == ExitCode.OK
    assert "CREATE TABLE public.organizations" in str(result["sql"])
