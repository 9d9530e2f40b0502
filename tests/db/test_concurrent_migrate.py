"""Two migration runs never interleave: the migration advisory lock, seen from outside.

The runs are separate `raycesctl` processes, as two Jobs (or a Job and a person) would be.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg

from rayces.migrations.locking import MIGRATION_LOCK_KEY
from rayces.migrations.results import ExitCode
from rayces.migrations.scripts import build_config, load_scripts, revision_chain

EXIT_LOCK_TIMEOUT, EXIT_OK = ExitCode.LOCK_TIMEOUT, ExitCode.OK

REVISIONS = [script.revision for script in revision_chain(load_scripts(build_config()))]


def _raycesctl(*argv: str) -> subprocess.Popen[str]:
    executable = shutil.which("raycesctl", path=str(Path(sys.executable).parent))
    assert executable
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.Popen(
        [executable, *argv],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_concurrent_runs_take_turns(database_url: str) -> None:
    runs = [
        _raycesctl("migrate", "--database-url", database_url, "--output", "json") for _ in range(2)
    ]
    results = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == EXIT_OK, err
        assert "Traceback" not in err
        results.append(json.loads(out))
    # one run applied every revision; the other found them applied when it got the lock
    assert sorted(len(result["steps"]) for result in results) == [0, len(REVISIONS)]
    assert {result["to_revision"] for result in results} == {REVISIONS[-1]}
    with psycopg.connect(database_url) as connection:
        versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        assert versions == [(REVISIONS[-1],)]
        # the schema is whole: the last revision's column exists
        role = connection.execute(
            "SELECT 1 FROM information_schema.columns"
            " WHERE table_name = 'users' AND column_name = 'role'"
        ).fetchone()
        assert role is not None


def test_lock_wait_timeout_names_the_holder(database_url: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url, application_name="lock-holder-in-test") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        holder.commit()  # idle, not in a transaction: only the advisory lock is held
        holder_pid = holder.info.backend_pid
        run = _raycesctl(
            "migrate",
            "--database-url",
            database_url,
            "--lock-wait-timeout",
            "1",
            "--output",
            "json",
            "--termination-message-path",
            str(tmp_path / "termination-log"),
        )
        out, err = run.communicate(timeout=60)
    assert run.returncode == EXIT_LOCK_TIMEOUT
    assert "Traceback" not in err
    error_line = err.strip().splitlines()[-1]
    assert error_line.startswith("raycesctl: error: another migration run held the lock")
    assert f"pid {holder_pid}" in error_line
    assert "'lock-holder-in-test'" in error_line
    assert "connected since" in error_line
    result = json.loads(out)
    assert result["status"] == "failed"
    assert result["error"]["kind"] == "lock_timeout"
    assert f"pid {holder_pid}" in result["error"]["message"]
    assert json.loads((tmp_path / "termination-log").read_text()) == result
    with psycopg.connect(database_url) as connection:
        table = connection.execute("SELECT to_regclass('public.alembic_version')").fetchone()
        assert table == (None,)  # nothing ran


def test_lock_is_released_after_a_run(database_url: str) -> None:
    run = _raycesctl("migrate", "--to", REVISIONS[0], "--database-url", database_url, "-q")
    _, err = run.communicate(timeout=120)
    assert run.returncode == EXIT_OK, err
    with psycopg.connect(database_url) as connection:
        acquired = connection.execute(
            "SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK_KEY,)
        ).fetchone()
        assert acquired == (True,)
