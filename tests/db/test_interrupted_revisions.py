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
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.db.alembic_helpers import BASELINE, HEAD, REPOSITORY_ROOT, offline_sql, revisions
from tests.db.populated import Templates, prepared_templates
from tests.db.populated import copy_of as _copy_of
from tests.db.populated import create_database as _create
from tests.db.populated import drop_database as _drop
from tests.db.populated import fingerprints as _fingerprints
from tests.db.populated import url_of as _url

from rayces.migrations import commands
from rayces.migrations.faults import AFTER_STEP_VARIABLE as FAULT_INJECTION_VARIABLE
from rayces.migrations.journal import RevisionSteps

STRUCTURE_SQL = REPOSITORY_ROOT / "docs" / "structure.sql"
RAYCESCTL = str(Path(sys.executable).parent / "raycesctl")
PARENT = {revision.id: revision.down for revision in revisions()}


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
        "20250718000017",
    }
    for revision in stepped:
        assert DECLARED_STEPS[(revision, "upgrade")], revision
        assert DECLARED_STEPS[(revision, "downgrade")], revision


@pytest.fixture(scope="module")
def templates(postgres_server_url: str) -> Iterator[Templates]:
    with prepared_templates(postgres_server_url) as prepared:
        yield prepared


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
