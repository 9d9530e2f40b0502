"""A revision killed after any of its steps leaves a known state that `migrate` resumes and
`rollback` undoes exactly, up or down.

Deterministic fault injection: `RAYCES_FAULT_AFTER_STEP=REVISION:DIRECTION:N` makes `raycesctl`
kill itself (SIGKILL, as a lost node) right after the N-th step of that revision in that
direction. Every step of every revision that commits in steps is a case, in both directions, on a
small populated MyHub baseline. After the kill:

- `status` names the revision, its direction, and steps done that are a prefix of its steps;
- `rollback --to` the baseline gives the baseline schema byte for byte (the `schema dump` of a
  fresh baseline) and every MyHub row unchanged, and a `migrate` afterwards gives exactly
  `docs/structure.sql`;
- on a copy of the killed database, a plain `migrate` resumes and also gives exactly
  `docs/structure.sql`, with every row still there.

Each case starts from a copy (`CREATE DATABASE ... TEMPLATE`) of a database prepared once at the
right revision, so the matrix pays for the populated migration only once per revision.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from tests.db.alembic_helpers import BASELINE, HEAD, REPOSITORY_ROOT, offline_sql, revisions

from rayces.migrations import commands
from rayces.migrations.faults import AFTER_STEP_VARIABLE as FAULT_INJECTION_VARIABLE
from rayces.migrations.journal import RevisionSteps

STRUCTURE_SQL = REPOSITORY_ROOT / "docs" / "structure.sql"
RAYCESCTL = str(Path(sys.executable).parent / "raycesctl")
PARENT = {revision.id: revision.down for revision in revisions()}

USERS, POSTS, LIKES = 240, 120, 600
BASELINE_TABLES = {
    "users": "concat_ws(',', id, name, email, image, username, uid, "
    "extract(epoch FROM created_at), extract(epoch FROM updated_at))",
    "posts": "concat_ws(',', id, post_id, hash_id, source, metadata::text, filename, "
    "extract(epoch FROM created_at), extract(epoch FROM updated_at))",
    "likes": "concat_ws(',', id, user_id, post_id, "
    "extract(epoch FROM created_at), extract(epoch FROM updated_at))",
}


def _declared_steps() -> dict[tuple[str, str], list[str]]:
    """(revision, direction) -> its step names in order, as the revisions declare them
    (read by rendering the whole chain offline, up and down)."""
    declared: dict[tuple[str, str], list[str]] = defaultdict(list)
    original = RevisionSteps.step

    def record(self: RevisionSteps, name: str, action: Any) -> None:
        declared[(self.revision, self.direction)].append(name)
        original(self, name, action)

    RevisionSteps.step = record  # type: ignore[method-assign]
    try:
        offline_sql("upgrade", None, "head")
        offline_sql("downgrade", HEAD, "base")
    finally:
        RevisionSteps.step = original  # type: ignore[method-assign]
    return dict(declared)


DECLARED_STEPS = _declared_steps()
CASES = [
    pytest.param(revision, direction, number, id=f"{revision}-{direction}-after-{name}")
    for (revision, direction), names in sorted(DECLARED_STEPS.items())
    for number, name in enumerate(names, start=1)
]


def test_every_revision_that_commits_in_steps_declares_them() -> None:
    stepped = {revision for revision, _ in DECLARED_STEPS}
    assert stepped == {
        "20250713000002",
        "20250713000003",
        "20250713000004",
        "20250713000005",
        "20250713000006",
        "20250718000016",
    }
    for revision in stepped:
        assert DECLARED_STEPS[(revision, "upgrade")], revision
        assert DECLARED_STEPS[(revision, "downgrade")], revision


# --- databases ------------------------------------------------------------------------------


def _url(server_url: str, name: str) -> str:
    return psycopg.conninfo.make_conninfo(server_url, dbname=name)


def _create(server_url: str, name: str, template: str | None = None) -> str:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(statement)
    return name


def _drop(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def _copy_of(server_url: str, template: str) -> Iterator[str]:
    name = _create(server_url, f"case_{uuid.uuid4().hex[:12]}", template)
    try:
        yield _url(server_url, name)
    finally:
        _drop(server_url, name)


def _fill_baseline(database_url: str) -> None:
    with psycopg.connect(database_url) as connection:
        connection.execute(
            """
            INSERT INTO users (id, name, email, image, username, uid, created_at, updated_at)
            SELECT g * 2, 'User ' || g,
                   CASE WHEN g % 7 = 0 THEN NULL ELSE 'u' || g || '@x.test' END,
                   'img' || g, 'user' || g, 'uid-' || g,
                   timestamp '2024-01-01 12:00:00.123456' + g * interval '61 seconds',
                   timestamp '2024-03-01 08:30:00' + g * interval '1 second'
              FROM generate_series(1, %(users)s) AS g;
            INSERT INTO posts (id, post_id, hash_id, source, metadata, filename, created_at,
                               updated_at)
            SELECT g, 'p' || g, md5(g::text), 'instagram', jsonb_build_object('n', g),
                   'f' || g || '.jpg', timestamp '2024-02-01' + g * interval '1 hour',
                   timestamp '2024-02-01' + g * interval '1 hour'
              FROM generate_series(1, %(posts)s) AS g;
            INSERT INTO likes (user_id, post_id, created_at, updated_at)
            SELECT (g % %(users)s + 1) * 2, g % %(posts)s + 1,
                   timestamp '2024-04-01' + g * interval '1 second',
                   timestamp '2024-04-01' + g * interval '1 second'
              FROM generate_series(1, %(likes)s) AS g;
            SELECT setval('users_id_seq', (SELECT max(id) FROM users));
            """.replace("%(users)s", str(USERS))
            .replace("%(posts)s", str(POSTS))
            .replace("%(likes)s", str(LIKES))
        )


def _fingerprints(database_url: str) -> dict[str, tuple[int, str]]:
    with psycopg.connect(database_url) as connection:
        connection.execute("SET timezone = 'UTC'")
        return {
            table: connection.execute(
                f"SELECT count(*), md5(string_agg({row}, '|' ORDER BY id)) FROM {table}"
            ).fetchone()  # type: ignore[misc]
            for table, row in BASELINE_TABLES.items()
        }


class Templates:
    """Databases prepared once, at a given revision, from one populated baseline."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.names: dict[str, str] = {}
        baseline = _create(server_url, f"tpl_{uuid.uuid4().hex[:8]}_baseline")
        url = _url(server_url, baseline)
        commands.upgrade(url, BASELINE)
        _fill_baseline(url)
        self.names[BASELINE] = baseline
        self.baseline_dump = commands.dump_schema(url)
        self.baseline_rows = _fingerprints(url)

    def at(self, revision: str) -> str:
        if revision not in self.names:
            name = _create(
                self.server_url, f"tpl_{uuid.uuid4().hex[:8]}_{revision}", self.names[BASELINE]
            )
            commands.upgrade(_url(self.server_url, name), revision)
            self.names[revision] = name
        return self.names[revision]

    def drop_all(self) -> None:
        for name in self.names.values():
            _drop(self.server_url, name)


@pytest.fixture(scope="module")
def templates(postgres_server_url: str) -> Iterator[Templates]:
    prepared = Templates(postgres_server_url)
    try:
        yield prepared
    finally:
        prepared.drop_all()


def _raycesctl_killed_at(database_url: str, revision: str, direction: str, number: int) -> None:
    verb = (
        ["migrate", "--to", revision]
        if direction == "upgrade"
        else ["rollback", "--steps", "1", "--allow-data-loss"]
    )
    completed = subprocess.run(
        [RAYCESCTL, *verb, "--database-url", database_url, "--quiet"],
        env={**os.environ, FAULT_INJECTION_VARIABLE: f"{revision}:{direction}:{number}"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == -9, (completed.returncode, completed.stderr[-2000:])


# --- the matrix -----------------------------------------------------------------------------


@pytest.mark.parametrize(("revision", "direction", "number"), CASES)
def test_killed_after_a_step_is_resumed_or_undone_exactly(
    templates: Templates, revision: str, direction: str, number: int
) -> None:
    start = PARENT[revision] if direction == "upgrade" else revision
    assert start is not None
    expected_head = STRUCTURE_SQL.read_text()
    with _copy_of(templates.server_url, templates.at(start)) as killed:
        _raycesctl_killed_at(killed, revision, direction, number)

        report = commands.status(killed)
        names = DECLARED_STEPS[(revision, direction)]
        if report.interrupted is not None:
            # Steps that ran in a transaction went with the killed session.
            assert report.interrupted.revision == revision
            assert report.interrupted.direction == direction
            done = list(report.interrupted.steps_done)
            assert done == names[: len(done)]
            assert len(done) <= number

        resumed_name = _create(
            templates.server_url,
            f"case_{uuid.uuid4().hex[:12]}",
            psycopg.conninfo.conninfo_to_dict(killed)["dbname"],  # type: ignore[arg-type]
        )
        resumed = _url(templates.server_url, resumed_name)
        try:
            commands.upgrade(resumed)
            assert commands.dump_schema(resumed) == expected_head
            assert commands.status(resumed).interrupted is None
            rows = _fingerprints(resumed)
            assert {table: count for table, (count, _) in rows.items()} == {
                table: count for table, (count, _) in templates.baseline_rows.items()
            }
        finally:
            _drop(templates.server_url, resumed_name)

        commands.downgrade(killed, to=BASELINE, allow_data_loss=True)
        assert commands.dump_schema(killed) == templates.baseline_dump
        assert _fingerprints(killed) == templates.baseline_rows
        assert commands.status(killed).interrupted is None

        commands.upgrade(killed)
        assert commands.dump_schema(killed) == expected_head


def test_fault_hook_beyond_the_last_step_changes_nothing(templates: Templates) -> None:
    revision = "20250713000002"
    beyond = len(DECLARED_STEPS[(revision, "upgrade")]) + 1
    with _copy_of(templates.server_url, templates.at(BASELINE)) as database:
        completed = subprocess.run(
            [RAYCESCTL, "migrate", "--to", revision, "--database-url", database, "-q"],
            env={**os.environ, FAULT_INJECTION_VARIABLE: f"{revision}:upgrade:{beyond}"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        assert commands.status(database).current_revision == revision


def test_status_shows_the_interrupted_revision_in_text_and_json(templates: Templates) -> None:
    revision = "20250713000004"
    with _copy_of(templates.server_url, templates.at(PARENT[revision] or BASELINE)) as database:
        _raycesctl_killed_at(database, revision, "upgrade", 4)
        as_json = subprocess.run(
            [RAYCESCTL, "status", "--database-url", database, "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        as_text = subprocess.run(
            [RAYCESCTL, "status", "--database-url", database],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    done = DECLARED_STEPS[(revision, "upgrade")][:4]
    assert json.loads(as_json)["interrupted"] == {
        "revision": revision,
        "direction": "upgrade",
        "steps_done": done,
    }
    assert f"interrupted: applying {revision} stopped part-way; steps done: " in as_text
    assert ", ".join(done) in as_text
