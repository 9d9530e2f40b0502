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
from rayces.migrations.faults import AFTER_STEP_VARIABLE as FAULT_INJECTION_VARIABLE

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


# Who inserts, as `rayces_app` under row-level security, a row without `organization_id`.
APPLICATION_ROLE = "rayces_app"


def _insert_as_application(
    database_url: str, table: str, declared_tenant: int | None
) -> int | None:
    """Insert a row without `organization_id` into `table` as the application role, with
    `declared_tenant` declared (or none); the organization the row got."""
    values = {
        "users": "INSERT INTO users (name, created_at, updated_at) VALUES ('app', now(), now())",
        "posts": "INSERT INTO posts (post_id, created_at, updated_at) VALUES ('app', now(), now())",
    }
    with psycopg.connect(database_url) as connection:
        connection.execute(f"SET LOCAL ROLE {APPLICATION_ROLE}")
        if declared_tenant is not None:
            connection.execute(
                "SELECT set_config('app.current_organization_id', %s, true)",
                (str(declared_tenant),),
            )
        row = connection.execute(f"{values[table]} RETURNING organization_id").fetchone()
        assert row is not None
        return int(row[0])


def _organization_counts(database_url: str, table: str) -> dict[int, int]:
    with psycopg.connect(database_url) as connection:
        return {
            organization: count
            for organization, count in connection.execute(
                f"SELECT organization_id, count(*) FROM {table} GROUP BY 1"
            )
        }


@pytest.mark.parametrize(
    "table", [pytest.param("users", id="users"), pytest.param("posts", id="posts")]
)
@pytest.mark.parametrize(
    ("declared", "legacy_writes", "outcome"),
    [
        pytest.param("default", True, "default", id="default-declared-gets-it"),
        pytest.param("other", True, "42501", id="other-declared-refused"),
        pytest.param("none", True, "42501", id="none-declared-refused"),
        # The policy sees the NULL organization_id before the NOT NULL constraint does.
        pytest.param("default", False, "42501", id="default-declared-path-off-refused"),
        pytest.param("other", False, "42501", id="other-declared-path-off-refused"),
    ],
)
def test_application_role_under_rls_never_lands_a_row_in_another_tenant(
    database_url: str, table: str, declared: str, legacy_writes: bool, outcome: str
) -> None:
    """Under tenant A, an insert without organization_id gets A or fails: the legacy path's
    default organization passes the tenant policy only when it is A."""
    commands.upgrade(database_url, BASELINE)
    _fill(database_url, users=10)
    commands.upgrade(database_url, "head")
    default = _default_organization_id(database_url)
    with psycopg.connect(database_url) as connection:
        other = connection.execute(
            "INSERT INTO organizations (name, subdomain) VALUES ('A', 'tenant-a') RETURNING id"
        ).fetchone()
        # The legacy path needs no privilege on its schema: its function is SECURITY DEFINER.
        usage = connection.execute(
            "SELECT has_schema_privilege(%s, 'rayces_compat', 'USAGE')", (APPLICATION_ROLE,)
        ).fetchone()
    assert other is not None and usage == (False,)
    if not legacy_writes:
        assert main(["legacy-writes", "disable", "--database-url", database_url, "-q"]) == EXIT_OK
    tenant = {"default": default, "other": other[0], "none": None}[declared]
    before = _organization_counts(database_url, table)

    if outcome == "default":
        assert _insert_as_application(database_url, table, tenant) == default
        assert _organization_counts(database_url, table) == {default: before[default] + 1}
        return
    with pytest.raises(psycopg.Error) as caught:
        _insert_as_application(database_url, table, tenant)
    assert caught.value.sqlstate == outcome
    assert _organization_counts(database_url, table) == before


def test_0017_locks_referencing_tables_before_the_tables_they_reference(
    database_url: str,
) -> None:
    """Revision 0017 takes its locks children first, so a writer whose foreign-key check needs
    a parent of the table it holds never waits in a cycle with it."""
    import importlib.util

    path = (
        Path(__file__).resolve().parents[2]
        / "alembic"
        / "versions"
        / "20250718000017_row_level_security_and_state_machines.py"
    )
    spec = importlib.util.spec_from_file_location("revision_0017_locks", path)
    assert spec is not None and spec.loader is not None
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    order: tuple[str, ...] = revision.LOCK_ORDER
    assert sorted(order) == sorted((*revision.TENANT_TABLES, "organizations"))

    commands.upgrade(database_url, "head")
    with psycopg.connect(database_url) as connection:
        references = connection.execute(
            "SELECT DISTINCT conrelid::regclass::text, confrelid::regclass::text "
            "FROM pg_constraint WHERE contype = 'f' AND conrelid <> confrelid"
        ).fetchall()
    backwards = [
        (child, parent)
        for child, parent in references
        if child in order and parent in order and order.index(child) > order.index(parent)
    ]
    assert {child for child, parent in references if parent == "organizations"} >= set(order) - {
        "organizations"
    }
    assert backwards == []
