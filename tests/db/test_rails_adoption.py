"""Adopting a database the Rails application made, through the `raycesctl` executable.

The Rails database is the SQL Rails 7.1 runs for MyHub's schema.rb (`tests.db.rails_database`).
The baseline revision's DDL gives the same schema except two foreign keys' names: Rails calls
them `fk_rails_1e09b5dabf` and `fk_rails_87a8aac469`, the revision `fk_likes_user` and
`fk_likes_post`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.db.alembic_helpers import BASELINE, HEAD, REPOSITORY_ROOT
from tests.db.populated import fingerprints
from tests.db.rails_database import make_rails_database

from rayces.migrations import commands
from rayces.migrations.faults import AFTER_STEP_VARIABLE as FAULT_INJECTION_VARIABLE
from rayces.migrations.results import ExitCode
from rayces.migrations.schema_dump import normalize_dump, run_pg_dump
from rayces.migrations.scripts import build_config, load_scripts, revision_chain

RAYCESCTL = str(Path(sys.executable).parent / "raycesctl")
REVISIONS = [script.revision for script in revision_chain(load_scripts(build_config()))]
#: The first revisions after the baseline, which some environments ran through Rails already.
RAILS_APPLIED = REVISIONS[: REVISIONS.index("20250713000003") + 1]
#: A migration only the Rails application has: newer than every revision of the chain.
RAILS_ONLY = "20991231000000"


def rails_versions(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT version FROM schema_migrations ORDER BY version")
        return [str(row[0]) for row in rows]


def alembic_version_table_exists(database_url: str) -> bool:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT to_regclass('alembic_version')").fetchone()
        return row is not None and row[0] is not None


def raycesctl(database_url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RAYCESCTL, *argv, "--database-url", database_url],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def raycesctl_json(database_url: str, *argv: str) -> tuple[int, dict[str, Any]]:
    done = raycesctl(database_url, *argv, "--output", "json")
    return done.returncode, json.loads(done.stdout)


def test_adopts_the_baseline_rails_made_and_keeps_its_record_in_step(database_url: str) -> None:
    make_rails_database(database_url)
    rows_before = fingerprints(database_url)

    code, status = raycesctl_json(database_url, "status")
    assert code == ExitCode.OK
    assert status["current_revision"] is None
    assert status["rails_revision"] == BASELINE
    assert status["rails_only_versions"] == []
    assert status["rails_record_problems"] == []

    code, result = raycesctl_json(database_url, "migrate")
    assert code == ExitCode.OK, result
    assert result["adopted_from_rails"] == BASELINE
    assert result["adoption"] == f"adopted from Rails at {BASELINE}"
    assert result["from_revision"] == BASELINE
    assert result["to_revision"] == HEAD
    assert [step["revision"] for step in result["steps"]] == REVISIONS[1:]
    assert "rails_only_versions" not in result
    assert rails_versions(database_url) == REVISIONS

    # The database is now byte for byte the committed schema at head, Rails' tables aside,
    # and every MyHub row is still there.
    dump = run_pg_dump(database_url, exclude_tables=("schema_migrations", "ar_internal_metadata"))
    structure = (REPOSITORY_ROOT / "docs" / "structure.sql").read_text(encoding="utf-8")
    assert normalize_dump(dump, revision=HEAD) == structure
    assert fingerprints(database_url)["users"] == rows_before["users"]

    code, status = raycesctl_json(database_url, "status")
    assert code == ExitCode.OK, status
    assert status["current_revision"] == HEAD
    assert status["pending"] == 0
    assert status["rails_revision"] is None
    applied = [row["revision"] for row in status["revisions"] if row["status"] == "up"]
    assert applied == rails_versions(database_url)

    code, result = raycesctl_json(database_url, "rollback", "--steps", "2", "--allow-data-loss")
    assert code == ExitCode.OK, result
    assert rails_versions(database_url) == REVISIONS[:-2]

    code, result = raycesctl_json(database_url, "rollback", "--to", BASELINE, "--allow-data-loss")
    assert code == ExitCode.OK, result
    assert rails_versions(database_url) == [BASELINE]
    assert fingerprints(database_url) == rows_before

    # The next migrate finds its own record: nothing is adopted again.
    code, result = raycesctl_json(database_url, "migrate", "--to", REVISIONS[1])
    assert code == ExitCode.OK, result
    assert "adopted_from_rails" not in result
    assert rails_versions(database_url) == REVISIONS[:2]


def make_rails_applied_database(database_url: str) -> None:
    """Rails ran 20250713000001-0003 (the revisions' DDL): built with the revisions themselves,
    leaving only Rails' record of them, and Rails' names for the baseline's foreign keys."""
    make_rails_database(database_url)
    commands.stamp(database_url, BASELINE)
    commands.upgrade(database_url, RAILS_APPLIED[-1])
    with psycopg.connect(database_url) as connection:
        connection.execute("DROP TABLE alembic_version")


def test_adopts_revisions_rails_applied(database_url: str) -> None:
    make_rails_applied_database(database_url)
    assert rails_versions(database_url) == RAILS_APPLIED

    code, status = raycesctl_json(database_url, "status")
    assert code == ExitCode.OK, status
    assert status["rails_revision"] == RAILS_APPLIED[-1]

    plan = raycesctl(database_url, "plan", "--to", "20250713000004")
    assert plan.returncode == ExitCode.OK, plan.stderr
    assert f"-- upgrade from {RAILS_APPLIED[-1]} to 20250713000004 (1 revision)" in plan.stdout
    assert "Rails' schema_migrations records" in plan.stdout

    done = raycesctl(database_url, "migrate", "--to", "20250713000005")
    assert done.returncode == ExitCode.OK, done.stderr
    assert f"adopted from Rails at {RAILS_APPLIED[-1]}" in done.stdout
    assert f"migrated {RAILS_APPLIED[-1]} -> 20250713000005 (2 revisions" in done.stdout
    assert "Running upgrade  ->" not in done.stderr  # the scratch database's runs are not shown
    assert rails_versions(database_url) == REVISIONS[: REVISIONS.index("20250713000005") + 1]
    with psycopg.connect(database_url) as connection:
        names = {
            str(row[0])
            for row in connection.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = 'likes'::regclass"
            )
        }
    assert not any(name.startswith("fk_rails_") for name in names), names
    assert {"fk_likes_user", "fk_likes_post"} <= names


def _mismatched(database_url: str) -> None:
    with psycopg.connect(database_url) as connection:
        connection.execute(
            "ALTER TABLE users DROP COLUMN uid;"
            "ALTER TABLE users ALTER COLUMN email TYPE varchar(255);"
            "ALTER TABLE posts ALTER COLUMN source SET NOT NULL;"
            "DROP INDEX index_likes_on_user_id;"
            "CREATE INDEX index_users_on_email ON users (email);"
        )


def test_refuses_a_schema_that_differs_and_changes_nothing(
    database_url: str, postgres_server_url: str
) -> None:
    make_rails_database(database_url)
    _mismatched(database_url)
    dump_before = commands.dump_schema(database_url)

    code, result = raycesctl_json(database_url, "migrate")
    assert code == ExitCode.PRECONDITION_FAILED == 8
    error = result["error"]
    assert error["kind"] == "adoption_refused"
    assert error["retryable"] is False
    for difference in (
        "users.uid: missing",
        "users.email: type varchar(255), expected varchar",
        "posts.source: NOT NULL, expected nullable",
        "index index_likes_on_user_id: missing",
        "index index_users_on_email: unexpected",
    ):
        assert difference in error["message"], error["message"]
    assert "fk_rails" not in error["message"]  # Rails' names for the baseline's keys match
    assert result["from_revision"] is None and result["to_revision"] is None
    assert result["steps"] == []

    assert not alembic_version_table_exists(database_url)
    assert rails_versions(database_url) == [BASELINE]
    assert commands.dump_schema(database_url) == dump_before
    with psycopg.connect(postgres_server_url) as admin:
        scratch = admin.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'rayces_adoption_%'"
        ).fetchone()
    assert scratch == (0,)

    done = raycesctl(database_url, "migrate")
    assert done.returncode == 8
    assert done.stderr.startswith("raycesctl: error: cannot adopt the database Rails made")
    assert "users.uid: missing" in done.stderr


@pytest.mark.parametrize(
    ("versions", "problem"),
    [
        pytest.param(
            [BASELINE, REVISIONS[2]],
            f"version {REVISIONS[1]}: missing from schema_migrations, but the later "
            f"{REVISIONS[2]} is recorded",
            id="gap",
        ),
        pytest.param(
            [BASELINE, "20250101000000"],
            "version 20250101000000: not a revision of this chain",
            id="unknown-older-version",
        ),
        pytest.param(
            [REVISIONS[1]],
            f"version {BASELINE}: missing from schema_migrations",
            id="no-baseline",
        ),
    ],
)
def test_refuses_versions_that_are_not_a_prefix(
    database_url: str, versions: list[str], problem: str
) -> None:
    make_rails_database(database_url, versions)

    code, status = raycesctl_json(database_url, "status")
    assert code == ExitCode.OK
    assert any(problem in line for line in status["rails_record_problems"]), status

    code, result = raycesctl_json(database_url, "migrate")
    assert code == 8
    assert result["error"]["kind"] == "adoption_refused"
    assert problem in result["error"]["message"]
    assert not alembic_version_table_exists(database_url)
    assert rails_versions(database_url) == sorted(versions)


def test_reports_a_version_only_rails_knows(database_url: str) -> None:
    make_rails_database(database_url, [BASELINE, RAILS_ONLY])

    code, status = raycesctl_json(database_url, "status")
    assert code == ExitCode.OK, status
    assert status["rails_only_versions"] == [RAILS_ONLY]
    assert status["rails_revision"] == BASELINE
    text = raycesctl(database_url, "status").stdout
    assert f"{RAILS_ONLY} is a migration only Rails knows" in text

    done = raycesctl(database_url, "migrate", "--to", REVISIONS[1], "--output", "json")
    assert done.returncode == ExitCode.OK, done.stderr
    result = json.loads(done.stdout)
    assert result["adopted_from_rails"] == BASELINE
    assert result["rails_only_versions"] == [RAILS_ONLY]
    assert f"warning: schema_migrations holds {RAILS_ONLY}" in done.stderr
    assert rails_versions(database_url) == [*REVISIONS[:2], RAILS_ONLY]

    code, status = raycesctl_json(database_url, "status")
    assert code == ExitCode.OK, status
    assert status["current_revision"] == REVISIONS[1]
    assert status["rails_only_versions"] == [RAILS_ONLY]

    # stamp keeps Rails' record in step too, and leaves Rails' own version alone.
    code, result = raycesctl_json(database_url, "stamp", "20250713000003")
    assert code == ExitCode.OK, result
    assert rails_versions(database_url) == [*RAILS_APPLIED, RAILS_ONLY]
    code, result = raycesctl_json(database_url, "stamp", "base")
    assert code == ExitCode.OK, result
    assert rails_versions(database_url) == [RAILS_ONLY]


def test_a_stepped_revision_killed_part_way_leaves_rails_record_as_the_database_is(
    database_url: str,
) -> None:
    # 20250713000004 commits in steps (autocommit blocks); its version goes into
    # schema_migrations only with the transaction that records it in alembic_version.
    stepped = "20250713000004"
    make_rails_database(database_url)
    done = raycesctl(database_url, "migrate", "--to", RAILS_APPLIED[-1], "--quiet")
    assert done.returncode == ExitCode.OK, done.stderr

    for argv, direction in (
        (["migrate", "--to", stepped], "upgrade"),
        (["rollback", "--steps", "1", "--allow-data-loss"], "downgrade"),
    ):
        killed = subprocess.run(
            [RAYCESCTL, *argv, "--database-url", database_url, "--quiet"],
            env={**os.environ, FAULT_INJECTION_VARIABLE: f"{stepped}:{direction}:3"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert killed.returncode == -9, killed.stderr[-2000:]
        report = commands.status(database_url)
        assert report.interrupted is not None and report.interrupted.revision == stepped
        before = RAILS_APPLIED if direction == "upgrade" else [*RAILS_APPLIED, stepped]
        assert rails_versions(database_url) == before

        done = raycesctl(database_url, *argv, "--quiet")
        assert done.returncode == ExitCode.OK, done.stderr
        after = [*RAILS_APPLIED, stepped] if direction == "upgrade" else RAILS_APPLIED
        assert rails_versions(database_url) == after


def test_a_revision_failing_after_adoption_leaves_both_records_where_the_database_is(
    database_url: str,
) -> None:
    make_rails_database(database_url)
    with psycopg.connect(database_url) as connection:  # 20250713000005 refuses duplicate e-mails
        connection.execute("UPDATE users SET email = 'same@x.test' WHERE id IN (2, 4)")

    code, result = raycesctl_json(database_url, "migrate")
    assert code == ExitCode.FAILED, result
    assert result["error"]["kind"] == "migration_failed"
    assert result["error"]["revision"] == "20250713000005"
    assert result["adopted_from_rails"] == BASELINE
    assert result["from_revision"] == BASELINE
    assert result["to_revision"] == "20250713000004"
    assert rails_versions(database_url) == REVISIONS[: REVISIONS.index("20250713000004") + 1]


def test_a_role_without_createdb_is_told_what_adoption_needs(database_url: str) -> None:
    role = f"rails_owner_{uuid.uuid4().hex[:8]}"
    database = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN NOCREATEDB")
        admin.execute(f'ALTER DATABASE "{database}" OWNER TO {role}')
        admin.execute(f"ALTER SCHEMA public OWNER TO {role}")
    as_owner = psycopg.conninfo.make_conninfo(database_url, user=role)
    try:
        make_rails_database(as_owner)
        code, result = raycesctl_json(as_owner, "migrate")
        assert code == ExitCode.PERMISSION_DENIED, result
        assert "CREATEDB" in result["error"]["hint"]
        assert "raycesctl stamp" in result["error"]["hint"]
        assert not alembic_version_table_exists(database_url)
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" OWNER TO CURRENT_USER')
            admin.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


def test_current_revision_reports_rails_record_before_adoption(database_url: str) -> None:
    make_rails_database(database_url, [*RAILS_APPLIED[:2], RAILS_ONLY])
    code, result = raycesctl_json(database_url, "current-revision")
    assert code == ExitCode.OK, result
    assert result["to_revision"] == RAILS_APPLIED[1]
    assert result["rails_only_versions"] == [RAILS_ONLY]
    assert "adopted_from_rails" not in result
    assert not alembic_version_table_exists(database_url)


def test_rollback_adopts_first_then_reverts(database_url: str) -> None:
    make_rails_applied_database(database_url)
    code, result = raycesctl_json(database_url, "rollback", "--steps", "1", "--allow-data-loss")
    assert code == ExitCode.OK, result
    assert result["adopted_from_rails"] == RAILS_APPLIED[-1]
    assert [step["revision"] for step in result["steps"]] == [RAILS_APPLIED[-1]]
    assert result["to_revision"] == RAILS_APPLIED[-2]
    assert rails_versions(database_url) == RAILS_APPLIED[:-1]
