"""The rollback after a failed upgrade, without `--allow-data-loss`: it drops what the failed run
wrote itself and restores the database exactly, and it still refuses when anyone else wrote into
what it would drop.

Each case runs `raycesctl` as a Job would, on a copy of a populated MyHub baseline that holds two
users with the same e-mail: 20250713000005 (e-mail unique per organization) fails for that real
reason, after 20250713000001-0004 committed the default organization and the organization
columns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.db.alembic_helpers import BASELINE
from tests.db.populated import Templates, copy_of, fingerprints, prepared_templates

from rayces.migrations import commands
from rayces.migrations.faults import AFTER_STEP_VARIABLE
from rayces.migrations.results import ExitCode
from rayces.migrations.run_ledger import LEDGER_TABLE

RAYCESCTL = str(Path(sys.executable).parent / "raycesctl")
ORGANIZATION_COLUMNS = "20250713000004"
UNIQUE_EMAIL = "20250713000005"


@pytest.fixture(scope="module")
def templates(postgres_server_url: str) -> Iterator[Templates]:
    with prepared_templates(postgres_server_url) as prepared:
        yield prepared


@pytest.fixture
def duplicated(templates: Templates) -> Iterator[str]:
    """A copy of the baseline in which a second user has user 1's e-mail."""
    with copy_of(templates.server_url, templates.at(BASELINE)) as database:
        with psycopg.connect(database) as connection:
            connection.execute(
                "INSERT INTO users (name, email, created_at, updated_at) "
                "SELECT 'Twin', email, created_at, updated_at FROM users WHERE id = 2"
            )
        yield database


def raycesctl(database_url: str, *argv: str, **env: str) -> tuple[int, dict[str, Any], str]:
    completed = subprocess.run(
        [RAYCESCTL, *argv, "--database-url", database_url, "-o", "json", "-q"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **env},
    )
    result = json.loads(completed.stdout) if completed.stdout.strip() else {}
    return completed.returncode, result, completed.stderr


def failed_upgrade(database_url: str) -> dict[str, Any]:
    code, result, stderr = raycesctl(database_url, "migrate")
    assert code == ExitCode.FAILED, stderr
    assert result["error"]["revision"] == UNIQUE_EMAIL
    assert "unique per organization" in result["error"]["message"]
    assert result["to_revision"] == ORGANIZATION_COLUMNS
    return result


def ledger_exists(database_url: str) -> bool:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT to_regclass(%s)", (LEDGER_TABLE,)).fetchone()
    return row is not None and row[0] is not None


def test_the_rollback_restores_exactly_what_the_failed_run_found(duplicated: str) -> None:
    before_dump = commands.dump_schema(duplicated)
    before_rows = fingerprints(duplicated)
    failed = failed_upgrade(duplicated)
    assert ledger_exists(duplicated)
    code, status, _ = raycesctl(duplicated, "status")
    assert status["unfinished_run"] == {"from_revision": BASELINE}

    code, result, stderr = raycesctl(duplicated, "rollback", "--to", failed["from_revision"])

    assert code == ExitCode.OK, stderr
    assert result["to_revision"] == BASELINE
    users = before_rows["users"][0]
    dropped = {item["object"]: item for item in result["dropped"]}
    assert {name: item["rows"] for name, item in dropped.items()} == {
        "table organizations": 1,
        "column users.organization_id": users,
        "column posts.organization_id": before_rows["posts"][0],
        "column likes.organization_id": before_rows["likes"][0],
    }
    assert all(
        item["reason"] == f"every row was written by the upgrade run from {BASELINE}"
        for item in dropped.values()
    )
    assert commands.dump_schema(duplicated) == before_dump
    assert fingerprints(duplicated) == before_rows
    assert not ledger_exists(duplicated)


def test_the_human_output_says_what_was_dropped_and_why(duplicated: str) -> None:
    failed_upgrade(duplicated)
    status = subprocess.run(
        [RAYCESCTL, "status", "--database-url", duplicated],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert (
        f"unfinished upgrade run from {BASELINE}: `raycesctl migrate` goes on with it; "
        f"`raycesctl rollback --to {BASELINE}` drops what it wrote" in status
    )
    completed = subprocess.run(
        [RAYCESCTL, "rollback", "--to", BASELINE, "--database-url", duplicated],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "unfinished_run" not in raycesctl(duplicated, "status")[1]
    assert (
        "dropped table organizations (1 rows): every row was written by the upgrade run from "
        f"{BASELINE}" in completed.stdout
    )


ACME = "(SELECT id FROM organizations WHERE subdomain = 'acme')"


@pytest.mark.parametrize(
    ("someone_else_writes", "refused"),
    [
        pytest.param(
            ["INSERT INTO organizations (name, subdomain) VALUES ('Acme', 'acme')"],
            ["table organizations (1 rows not written by the upgrade run that started at "],
            id="a-seeded-tenant",
        ),
        pytest.param(
            [
                "INSERT INTO organizations (name, subdomain) VALUES ('Acme', 'acme')",
                "INSERT INTO users (organization_id, name, created_at, updated_at) "
                f"SELECT {ACME}, 'Acme ' || g, now(), now() FROM generate_series(1, 3) AS g",
                "INSERT INTO posts (id, organization_id, post_id, created_at, updated_at) "
                f"VALUES (10001, {ACME}, 'acme-1', now(), now())",
            ],
            [
                "table organizations (1 rows not written",
                "column users.organization_id (3 rows not written by the upgrade run that "
                f"started at {BASELINE})",
                "column posts.organization_id (1 rows not written",
            ],
            id="a-seeded-tenant-with-users-and-posts",
        ),
    ],
)
def test_rows_anyone_else_wrote_are_still_refused(
    duplicated: str, someone_else_writes: list[str], refused: list[str]
) -> None:
    failed_upgrade(duplicated)
    with psycopg.connect(duplicated) as connection:
        for statement in someone_else_writes:
            connection.execute(statement)  # type: ignore[arg-type]
    schema = commands.dump_schema(duplicated)

    code, result, stderr = raycesctl(duplicated, "rollback", "--to", BASELINE)

    assert code == ExitCode.DATA_LOSS_REFUSED
    assert result["error"]["kind"] == "data_loss_refused"
    for text in refused:
        assert text in result["error"]["message"]
        assert text in stderr
    assert "--allow-data-loss" in result["error"]["hint"]
    assert commands.status(duplicated).current_revision == ORGANIZATION_COLUMNS
    assert commands.dump_schema(duplicated) == schema
    assert ledger_exists(duplicated)

    code, result, stderr = raycesctl(duplicated, "rollback", "--to", BASELINE, "--allow-data-loss")
    assert code == ExitCode.OK, stderr
    assert not ledger_exists(duplicated)


def test_the_application_writing_meanwhile_does_not_stop_the_rollback(duplicated: str) -> None:
    """The old application kept running: it renamed users and inserted a user and a like, which
    the legacy-write trigger gave the default organization. Those rows hold in the organization
    columns only what the run gives every row, so they go like the run's own; the application's
    rows themselves stay."""
    before_dump = commands.dump_schema(duplicated)
    failed_upgrade(duplicated)
    with psycopg.connect(duplicated) as connection:
        connection.execute("UPDATE users SET name = name || ' (renamed)' WHERE id IN (4, 6, 8)")
        connection.execute(
            "INSERT INTO users (name, email, created_at, updated_at) "
            "VALUES ('Newcomer', 'new@x.test', now(), now())"
        )
        connection.execute(
            "INSERT INTO likes (user_id, post_id, created_at, updated_at) "
            "SELECT id, 1, now(), now() FROM users WHERE name = 'Newcomer'"
        )

    code, result, stderr = raycesctl(duplicated, "rollback", "--to", BASELINE)

    assert code == ExitCode.OK, stderr
    assert "column users.organization_id" in {item["object"] for item in result["dropped"]}
    assert commands.dump_schema(duplicated) == before_dump
    with psycopg.connect(duplicated) as connection:
        renamed = connection.execute(
            "SELECT count(*) FROM users WHERE name LIKE '%(renamed)'"
        ).fetchone()
        newcomer = connection.execute(
            "SELECT count(*) FROM likes JOIN users ON users.id = likes.user_id "
            "WHERE users.name = 'Newcomer'"
        ).fetchone()
    assert (renamed, newcomer) == ((3,), (1,))


def test_a_run_stopped_after_its_backfills_is_rolled_back_exactly(templates: Templates) -> None:
    """Killed inside 20250718000016, after 20250713000006 backfilled every user's `jti` in
    committed batches: the rollback drops every object the run made, backfills included."""
    with copy_of(templates.server_url, templates.at(BASELINE)) as database:
        code, _, stderr = raycesctl(
            database, "migrate", **{AFTER_STEP_VARIABLE: "20250718000016:upgrade:1"}
        )
        assert code == -9, stderr
        assert commands.status(database).current_revision == "20250718000015"

        code, result, stderr = raycesctl(database, "rollback", "--to", BASELINE)

        assert code == ExitCode.OK, stderr
        assert commands.dump_schema(database) == templates.baseline_dump
        assert fingerprints(database) == templates.baseline_rows
        assert {item["object"] for item in result["dropped"]} >= {
            "column users.jti",
            "column users.encrypted_password",
            "column users.organization_id",
            "table organizations",
        }
        assert not ledger_exists(database)
        code, _, stderr = raycesctl(database, "migrate")
        assert code == ExitCode.OK, stderr
        assert not ledger_exists(database)


def test_a_retried_run_is_rolled_back_to_where_the_first_attempt_started(duplicated: str) -> None:
    """The first attempt is killed inside 20250713000004; the retry starts above the baseline and
    fails on the duplicate e-mail. Rolling back to where the first attempt started drops what
    both attempts wrote, without `--allow-data-loss`."""
    before_dump, before_rows = commands.dump_schema(duplicated), fingerprints(duplicated)
    code, _, stderr = raycesctl(
        duplicated, "migrate", **{AFTER_STEP_VARIABLE: f"{ORGANIZATION_COLUMNS}:upgrade:1"}
    )
    assert code == -9, stderr
    retry = failed_upgrade(duplicated)
    assert retry["from_revision"] != BASELINE

    code, result, stderr = raycesctl(duplicated, "rollback", "--to", BASELINE)

    assert code == ExitCode.OK, stderr
    assert "table organizations" in {item["object"] for item in result["dropped"]}
    assert commands.dump_schema(duplicated) == before_dump
    assert fingerprints(duplicated) == before_rows
