"""The old MyHub application keeps writing while and after tenancy is added (expand/contract).

It inserts users, posts and likes without `organization_id`. From revision 20250713000002 on,
its rows go to the default organization and none of its inserts fail, also while a revision is
part-way. Switching the path off (`raycesctl legacy-writes disable`) makes such a row refused
again; switching it on undoes that.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from rayces.cli.main import EXIT_OK, main
from rayces.migrations import commands, compat
from rayces.migrations.journal import FAULT_INJECTION_VARIABLE

BASELINE = "20240606034427"
RAYCESCTL = str(Path(sys.executable).parent / "raycesctl")


def _fill(database_url: str, users: int = 3000) -> None:
    with psycopg.connect(database_url) as connection:
        connection.execute(
            "INSERT INTO users (name, email, created_at, updated_at) "
            "SELECT 'u' || g, 'u' || g || '@x.test', localtimestamp, localtimestamp "
            f"FROM generate_series(1, {users}) AS g"
        )
        connection.execute(
            "INSERT INTO posts (post_id, created_at, updated_at) "
            f"SELECT 'p' || g, localtimestamp, localtimestamp FROM generate_series(1, {users}) g"
        )
        connection.execute(
            "INSERT INTO likes (user_id, post_id, created_at, updated_at) "
            "SELECT id, id, localtimestamp, localtimestamp FROM users"
        )


class LegacyWriter:
    """The old application: a user, a post and a like per round, never naming an organization."""

    def __init__(self, database_url: str) -> None:
        self.connection = psycopg.connect(database_url, autocommit=True)
        self.rounds = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def write_once(self) -> None:
        number = self.rounds
        execute = self.connection.execute
        user = execute(
            "INSERT INTO users (name, email, created_at, updated_at) "
            "VALUES (%s, %s, localtimestamp, localtimestamp) RETURNING id",
            (f"legacy {number}", f"legacy{number}@myhub.test"),
        ).fetchone()
        post = execute(
            "INSERT INTO posts (post_id, created_at, updated_at) "
            "VALUES (%s, localtimestamp, localtimestamp) RETURNING id",
            (f"legacy-{number}",),
        ).fetchone()
        assert user is not None and post is not None
        execute(
            "INSERT INTO likes (user_id, post_id, created_at, updated_at) "
            "VALUES (%s, %s, localtimestamp, localtimestamp)",
            (user[0], post[0]),
        )
        self.rounds += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.write_once()
            except psycopg.Error as error:
                self.failures.append(str(error).splitlines()[0])
                self.rounds += 1
            self._stop.wait(0.002)

    def __enter__(self) -> LegacyWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.connection.close()


def _organizations_of_rows(database_url: str) -> dict[str, set[int | None]]:
    with psycopg.connect(database_url) as connection:
        return {
            table: {
                row[0]
                for row in connection.execute(f"SELECT DISTINCT organization_id FROM {table}")
            }
            for table in ("users", "posts", "likes")
        }


def _default_organization_id(database_url: str) -> int:
    state = compat.legacy_writes(database_url)
    assert state.default_organization_id is not None
    return state.default_organization_id


def test_legacy_writer_never_fails_while_and_after_the_upgrade_runs(database_url: str) -> None:
    commands.upgrade(database_url, BASELINE)
    _fill(database_url)
    with LegacyWriter(database_url) as writer:
        commands.upgrade(database_url, "head")
        after_upgrade = writer.rounds
        while writer.rounds < after_upgrade + 20:
            threading.Event().wait(0.01)
    assert writer.failures == []
    assert writer.rounds > 20
    default = _default_organization_id(database_url)
    assert _organizations_of_rows(database_url) == {
        "users": {default},
        "posts": {default},
        "likes": {default},
    }


@pytest.mark.parametrize(
    ("revision", "step"),
    [
        pytest.param("20250713000002", 1, id="users-column-added-not-yet-not-null"),
        pytest.param("20250713000003", 1, id="posts-column-added-not-yet-not-null"),
        pytest.param("20250713000004", 1, id="likes-column-added-not-yet-not-null"),
        pytest.param("20250713000004", 3, id="likes-not-null-before-new-keys"),
    ],
)
def test_rows_written_while_a_revision_is_part_way_never_make_it_fail(
    database_url: str, revision: str, step: int
) -> None:
    commands.upgrade(database_url, BASELINE)
    _fill(database_url, users=200)
    completed = subprocess.run(
        [RAYCESCTL, "migrate", "--to", revision, "--database-url", database_url, "-q"],
        env={**os.environ, FAULT_INJECTION_VARIABLE: f"{revision}:upgrade:{step}"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == -9, completed.stderr
    writer = LegacyWriter(database_url)
    for _ in range(25):
        writer.write_once()
    writer.connection.close()

    commands.upgrade(database_url, "head")
    default = _default_organization_id(database_url)
    assert _organizations_of_rows(database_url) == {
        "users": {default},
        "posts": {default},
        "likes": {default},
    }


def _insert_user(database_url: str, organization_id: int | None = None) -> int:
    with psycopg.connect(database_url) as connection:
        if organization_id is None:
            row = connection.execute(
                "INSERT INTO users (name, created_at, updated_at) "
                "VALUES ('legacy', now(), now()) RETURNING organization_id"
            ).fetchone()
        else:
            row = connection.execute(
                "INSERT INTO users (name, organization_id, created_at, updated_at) "
                "VALUES ('new', %s, now(), now()) "
                "RETURNING organization_id",
                (organization_id,),
            ).fetchone()
        assert row is not None
        return int(row[0])


def test_switching_legacy_writes_off_refuses_them_and_on_again_accepts_them(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    commands.upgrade(database_url, BASELINE)
    _fill(database_url, users=10)
    commands.upgrade(database_url, "head")
    default = _default_organization_id(database_url)
    with psycopg.connect(database_url) as connection:
        connection.execute("INSERT INTO organizations (id, name, subdomain) VALUES (77, 'B', 'b')")
    schema_before = commands.dump_schema(database_url)
    assert _insert_user(database_url) == default

    assert main(["legacy-writes", "disable", "--database-url", database_url, "-o", "json"]) == 0
    assert '"enabled": false' in capsys.readouterr().out
    with pytest.raises(psycopg.errors.NotNullViolation):
        _insert_user(database_url)
    assert _insert_user(database_url, organization_id=77) == 77
    assert commands.dump_schema(database_url) == schema_before

    assert main(["legacy-writes", "enable", "--database-url", database_url, "-q"]) == EXIT_OK
    assert "go to the default organization" in capsys.readouterr().out
    assert _insert_user(database_url) == default
    # A row that names its organization keeps it, whatever the path says.
    assert _insert_user(database_url, organization_id=77) == 77


def test_legacy_writes_command_before_the_path_exists_is_a_precondition_failure(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    commands.upgrade(database_url, "20250713000001")
    code = main(["legacy-writes", "status", "--database-url", database_url, "-o", "json"])
    assert code == 8
    assert '"kind": "precondition_failed"' in capsys.readouterr().out


def test_empty_tables_get_no_default_organization_and_refuse_legacy_rows(
    database_url: str,
) -> None:
    commands.upgrade(database_url, "head")
    assert compat.legacy_writes(database_url).default_organization_id is None
    with pytest.raises(psycopg.errors.NotNullViolation):
        _insert_user(database_url)
