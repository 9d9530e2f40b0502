"""SIGTERM (as the kubelet sends it), SIGINT (Ctrl-C) and SIGKILL during a migration.

A real `raycesctl migrate` process runs revision 20250713000002 while another session holds a
lock on `users`, so its statement is waiting on the server when the signal arrives: the case in
which a client that dies or leaves without cancelling leaves its session, its transaction and the
migration lock behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rayces.migrations import commands
from rayces.migrations.locking import MIGRATION_LOCK_KEY
from rayces.migrations.scripts import build_config, load_scripts, revision_chain

REVISIONS = [script.revision for script in revision_chain(load_scripts(build_config()))]

#: Generous: the machine is shared. The point is "ends by itself", not how fast.
PATIENCE_SECONDS = 60.0


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


def _wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _raycesctl_sessions(database_url: str) -> list[tuple[int, str | None, str | None]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid, wait_event_type, state FROM pg_stat_activity "
            "WHERE application_name LIKE 'raycesctl@%' AND datname = current_database()"
        ).fetchall()
    return [(int(pid), wait, state) for pid, wait, state in rows]


def _polls_for_the_lock(database_url: str) -> bool:
    """Whether a raycesctl session keeps coming back to the server (every 0.25 s while it polls
    for the lock), rather than having made its one-off start-up queries."""

    def last_activity() -> set[object]:
        with psycopg.connect(database_url, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT state_change FROM pg_stat_activity "
                "WHERE application_name LIKE 'raycesctl@%' AND datname = current_database()"
            ).fetchall()
        return {row[0] for row in rows}

    samples = []
    for _ in range(3):
        samples.append(last_activity())
        time.sleep(0.6)
    return all(samples) and samples[0] != samples[1] != samples[2]


def _lock_is_free(database_url: str) -> bool:
    with psycopg.connect(database_url, autocommit=True) as connection:
        taken = connection.execute("SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        row = taken.fetchone()
        if row and row[0]:
            connection.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
            return True
        return False


@pytest.fixture
def blocked_migration(
    database_url: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """`raycesctl migrate` waiting on the server for a lock on `users` inside revision 0002."""
    commands.upgrade(database_url, REVISIONS[1])
    message = tmp_path / "termination-log"
    with psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        process = _raycesctl(
            "migrate",
            "--database-url",
            database_url,
            "--output",
            "json",
            "--termination-message-path",
            str(message),
        )
        try:
            _wait_for(
                lambda: any(wait == "Lock" for _, wait, _ in _raycesctl_sessions(database_url)),
                "the migration to wait for the lock on users",
            )
            yield process, message
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()


@pytest.mark.parametrize(
    ("signal_number", "exit_code"),
    [
        pytest.param(signal.SIGTERM, 143, id="sigterm"),
        pytest.param(signal.SIGINT, 130, id="sigint"),
    ],
)
def test_a_signal_cancels_rolls_back_unlocks_and_reports(
    blocked_migration: tuple[subprocess.Popen[str], Path],
    database_url: str,
    signal_number: int,
    exit_code: int,
) -> None:
    process, message = blocked_migration
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=PATIENCE_SECONDS)
    assert process.returncode == exit_code, stderr
    result = json.loads(stdout)
    assert result["status"] == "failed"
    assert result["error"]["kind"] == "interrupted"
    assert result["error"]["retryable"] is True
    assert result["error"]["revision"] == REVISIONS[2]
    assert signal.Signals(signal_number).name in result["error"]["message"]
    assert result["from_revision"] == REVISIONS[1]
    assert result["to_revision"] == REVISIONS[1]
    assert json.loads(message.read_text()) == result
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("raycesctl: error: interrupted by")
    # Nothing is left on the server: no session, no lock, the revision rolled back.
    assert _raycesctl_sessions(database_url) == []
    assert _lock_is_free(database_url)
    with psycopg.connect(database_url) as connection:
        column = connection.execute(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_name = 'users' AND column_name = 'organization_id'"
        ).fetchone()
    assert column is None


def test_sigkill_leaves_no_session_holding_the_lock(
    blocked_migration: tuple[subprocess.Popen[str], Path], database_url: str
) -> None:
    """A client that dies without a word: the server notices and ends its session by itself
    (client_connection_check_interval), releasing the migration lock for the retry, although
    the session's statement is still waiting for the lock on users."""
    process, _ = blocked_migration
    process.kill()
    process.communicate(timeout=PATIENCE_SECONDS)
    _wait_for(lambda: not _raycesctl_sessions(database_url), "the server to end the session")
    assert _lock_is_free(database_url)


def test_a_signal_while_waiting_for_the_migration_lock(database_url: str) -> None:
    commands.upgrade(database_url, REVISIONS[1])
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        process = _raycesctl("migrate", "--database-url", database_url, "--output", "json")
        try:
            _wait_for(lambda: _polls_for_the_lock(database_url), "raycesctl to poll for the lock")
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=PATIENCE_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 143, stderr
    result = json.loads(stdout)
    assert result["error"]["kind"] == "interrupted"
    assert result["error"]["revision"] is None  # none had started
    assert (result["from_revision"], result["to_revision"]) == (REVISIONS[1], REVISIONS[1])
    assert result["steps"] == []
