"""SIGTERM and SIGINT at every kind of moment of a migration: exit 143/130, an `interrupted`
result naming the revision and step, no session left behind, and a rerun that converges.

A signal sent "at a random moment" misses the moments that used to turn an interruption into
exit 1 (between a batch's COMMIT and the next statement, inside `CREATE INDEX CONCURRENTLY`,
while the journal records a step). So the moments are named here, with the test-only fault hooks
of `rayces.migrations.faults`, and chosen from a trace of the same run:

- after each step of every revision that commits in steps, up and down;
- inside the first statement of each kind that revision runs (its DDL, the batched backfill, a
  concurrent index build, a `VALIDATE CONSTRAINT`, the journal's reads and writes, Alembic's
  version row, ...);
- inside each of its COMMITs, and as Alembic records it done;
- as the result is written, between the revisions of a longer run, and a second signal during
  the shutdown;
- from outside, in statements held on purpose: a later batch of a backfill, a concurrent index
  build waiting for an old snapshot; and while connecting to a server that never answers.

Every case starts from a copy of a small populated MyHub database whose users are spread over
three backfill batches.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.db.alembic_helpers import BASELINE, HEAD, revisions, stepped_revisions
from tests.db.populated import Templates, copy_of, prepared_templates

from rayces.migrations import commands
from rayces.migrations.faults import AFTER_STEP_VARIABLE, SIGNAL_VARIABLE, TRACE_VARIABLE
from rayces.migrations.locking import MIGRATION_LOCK_KEY

RAYCESCTL = str(Path(sys.executable).parent / "raycesctl")
PARENT = {revision.id: revision.down for revision in revisions()}
STEPPED = stepped_revisions()
EXIT_STATUS = {"TERM": 143, "INT": 130}
#: The server session must be gone this soon after the process ends.
SESSION_GRACE_SECONDS = 3.0
#: Generous: the machine is shared. The point is "ends by itself", not how fast.
PATIENCE_SECONDS = 120.0
#: 240 users 100 ids apart: three batches of the 10,000-id backfill.
USER_ID_STEP = 100


@pytest.fixture(scope="module")
def templates(postgres_server_url: str) -> Iterator[Templates]:
    with prepared_templates(postgres_server_url, user_id_step=USER_ID_STEP) as prepared:
        yield prepared


# --- running raycesctl ----------------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    termination_message: str

    @property
    def result(self) -> dict[str, Any]:
        document = json.loads(self.stdout)
        assert isinstance(document, dict)
        return document


def _start(
    argv: Sequence[str], environment: dict[str, str], message: Path
) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.Popen(
        [RAYCESCTL, *argv, "--output", "json", "--termination-message-path", str(message)],
        env={**base, **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str], message: Path) -> Run:
    try:
        stdout, stderr = process.communicate(timeout=PATIENCE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    text = message.read_text() if message.exists() else ""
    return Run(process.returncode, stdout, stderr, text)


def _raycesctl(
    argv: Sequence[str], environment: dict[str, str], tmp_path: Path, name: str = "run"
) -> Run:
    message = tmp_path / f"{name}.termination-log"
    message.unlink(missing_ok=True)
    return _finish(_start(argv, environment, message), message)


def _command(database_url: str, revision: str, direction: str) -> list[str]:
    if direction == "upgrade":
        return ["migrate", "--to", revision, "--database-url", database_url]
    parent = PARENT[revision] or "base"
    return ["rollback", "--to", parent, "--allow-data-loss", "--database-url", database_url]


# --- what the server shows ------------------------------------------------------------------


def _raycesctl_sessions(database_url: str, where: str = "true") -> int:
    """How many raycesctl sessions the database has (that also satisfy `where`)."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'raycesctl@%' "
            f"AND datname = current_database() AND {where}"
        ).fetchone()
    return int(row[0]) if row else 0


def _sessions_gone(database_url: str) -> bool:
    deadline = time.monotonic() + SESSION_GRACE_SECONDS
    while _raycesctl_sessions(database_url):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _lock_is_free(database_url: str) -> bool:
    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK_KEY,)
        ).fetchone()
        if row and row[0]:
            connection.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
            return True
    return False


def _user_count(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*) FROM users").fetchone()
    return int(row[0]) if row else -1


def _wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _waiting_on_a_lock(database_url: str) -> bool:
    return _raycesctl_sessions(database_url, "wait_event_type = 'Lock'") > 0


# --- the contract ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """What an interrupted run of one revision may report."""

    revision: str
    direction: str
    start: str | None
    end: str | None
    steps: tuple[str, ...] = ()


def _contract_problems(
    run: Run,
    signal_name: str,
    database_url: str,
    expected: Expectation | None,
    *,
    in_step: bool = False,
) -> list[str]:
    """Everything wrong with an interrupted run's exit, result and leftovers (none: it held).
    Without `expected`, any revision may be the one stopped."""
    if run.returncode != EXIT_STATUS[signal_name]:
        return [f"exit {run.returncode}, not {EXIT_STATUS[signal_name]}: {run.stderr[-600:]}"]
    problems = []
    try:
        result = run.result
    except ValueError:
        return [f"stdout is not one JSON document: {run.stdout[-300:]!r}"]
    error = result.get("error") or {}
    if error.get("kind") != "interrupted" or error.get("retryable") is not True:
        problems.append(f"error {error}")
    if f"SIG{signal_name}" not in str(error.get("message")):
        problems.append(f"message does not name SIG{signal_name}: {error.get('message')}")
    if not run.termination_message or json.loads(run.termination_message) != result:
        problems.append("the termination message is not the JSON result")
    if "Traceback" in run.stderr:
        problems.append(f"a traceback: {run.stderr[run.stderr.index('Traceback') :][:3000]}")
    elif not run.stderr.strip().splitlines()[-1].startswith("raycesctl: error: interrupted by"):
        problems.append(f"stderr does not end with the error: {run.stderr[-600:]}")
    if not _sessions_gone(database_url):
        problems.append(f"a raycesctl session is still there {SESSION_GRACE_SECONDS}s later")
    if not _lock_is_free(database_url):
        problems.append("the migration lock is still held")
    actual = commands.status(database_url).current_revision
    if result.get("revisions_known") is False:
        # Stopped before it read the database: it says so, and changed nothing.
        if result.get("to_revision") is not None or result.get("steps"):
            problems.append(f"revisions unknown, yet {result.get('to_revision')}")
        if expected is not None and actual != expected.start:
            problems.append(f"stopped before reading the database, which is at {actual}")
    elif result.get("to_revision") != actual:
        problems.append(f"to_revision {result.get('to_revision')} but the database is at {actual}")
    if expected is not None:
        problems += _position_problems(error, actual, expected, in_step=in_step)
    return problems


def _position_problems(
    error: dict[str, Any], actual: str | None, expected: Expectation, *, in_step: bool
) -> list[str]:
    """The result names the revision and step that were stopped, consistently with where the
    database is (`actual`). An expectation without a revision accepts any revision of an
    upgrade from `start` to `end`."""
    problems = []
    stopped = error.get("revision")
    if expected.revision and stopped not in (None, expected.revision):
        problems.append(f"names revision {stopped}")
    if stopped is not None:
        before = expected.start if expected.revision else PARENT.get(stopped)
        if actual != before:
            problems.append(f"names {stopped} as stopped, but the database is at {actual}")
    elif actual not in (expected.start, expected.end):
        problems.append(f"names no revision, and the database is at {actual}")
    if in_step and (stopped != expected.revision or not error.get("step")):
        problems.append(f"a stop between steps names revision/step {error}")
    if expected.steps and error.get("step") not in (None, *expected.steps):
        problems.append(f"names step {error['step']}, not one of {expected.steps}")
    return problems


def _converges(database_url: str, expected: Expectation, reference: str, users: int) -> list[str]:
    """Running the same command again ends exactly where an uninterrupted run ends."""
    if expected.direction == "upgrade":
        commands.upgrade(database_url, expected.end or "base")
    else:
        commands.downgrade(database_url, to=expected.end or "base", allow_data_loss=True)
    problems = []
    if commands.dump_schema(database_url) != reference:
        problems.append("the rerun does not give the schema of an uninterrupted run")
    if commands.status(database_url).interrupted is not None:
        problems.append("the journal still names an interrupted revision after the rerun")
    if _user_count(database_url) != users:
        problems.append("rows were lost")
    return problems


# --- the moments ----------------------------------------------------------------------------

#: Statement kinds, by the start of their SQL; the first match names the kind.
_KINDS = (
    (re.compile(r"^DO \$backfill"), "batched backfill"),
    (re.compile(r"^DO \$(\w+)\$"), "DO block"),
    (re.compile(r"CREATE (UNIQUE )?INDEX CONCURRENTLY"), "CREATE INDEX CONCURRENTLY"),
    (re.compile(r"^DROP INDEX CONCURRENTLY"), "DROP INDEX CONCURRENTLY"),
    (re.compile(r"VALIDATE CONSTRAINT"), "VALIDATE CONSTRAINT"),
    (re.compile(r"^CREATE TABLE IF NOT EXISTS rayces_migration_steps"), "journal table"),
    (re.compile(r"^INSERT INTO rayces_migration_steps"), "journal records a step"),
    (re.compile(r"rayces_migration_steps"), "journal read"),
    (re.compile(r"alembic_version"), "version row"),
    (re.compile(r"^ALTER TABLE \S+ (\w+ \w+)"), "ALTER TABLE"),
)


def statement_kind(sql: str) -> str:
    for pattern, kind in _KINDS:
        match = pattern.search(sql)
        if match:
            detail = (
                match.group(1) if pattern.groups and kind in ("DO block", "ALTER TABLE") else ""
            )
            return f"{kind} {detail}".strip()
    return " ".join(sql.split()[:2]).upper()


@dataclass(frozen=True)
class Moment:
    label: str
    environment: dict[str, str]
    signal_name: str
    in_step: bool = False
    kind: str | None = None


@dataclass
class Trace:
    """An uninterrupted run's statements and COMMITs, in order."""

    lines: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> Trace:
        return cls([json.loads(line) for line in path.read_text().splitlines()])

    def steps(self, revision: str) -> tuple[str, ...]:
        names: list[str] = []
        for line in self.lines:
            if line["revision"] == revision and line["step"] and line["step"] not in names:
                names.append(line["step"])
        return tuple(names)


def _alternate(index: int) -> str:
    return "TERM" if index % 2 == 0 else "INT"


def moments_of(trace: Trace, revision: str, direction: str) -> list[Moment]:
    """After each step; inside the first statement of each kind and inside each COMMIT of
    `revision`; and as Alembic records it."""
    moments = [
        Moment(
            f"after step {number} ({name})",
            {AFTER_STEP_VARIABLE: f"{revision}:{direction}:{number}:{_alternate(number)}"},
            _alternate(number),
            in_step=True,
        )
        for number, name in enumerate(trace.steps(revision), start=1)
    ]
    seen: set[str] = set()
    for line in trace.lines:
        if line["revision"] != revision:
            continue
        kind = statement_kind(line["sql"]) if line["kind"] == "statement" else "COMMIT"
        if line["kind"] == "statement" and kind in seen:
            continue
        seen.add(kind)
        name = _alternate(len(moments))
        moments.append(
            Moment(
                f"inside {line['kind']} {line['number']} ({kind}, step {line['step']})",
                {SIGNAL_VARIABLE: f"{name}@{line['kind']}:{line['number']}"},
                name,
                kind=kind,
            )
        )
    recorded = {SIGNAL_VARIABLE: f"TERM@applied:{revision}"}
    moments.append(Moment("as Alembic records it done", recorded, "TERM"))
    return moments


# --- the matrix -----------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["upgrade", "downgrade"])
@pytest.mark.parametrize("revision", STEPPED)
def test_a_signal_at_any_moment_of_a_stepped_revision(
    templates: Templates, tmp_path: Path, revision: str, direction: str
) -> None:
    parent = PARENT[revision]
    start, end = (parent, revision) if direction == "upgrade" else (revision, parent)
    source = templates.at(start or BASELINE)
    trace_path = tmp_path / "trace.jsonl"
    with copy_of(templates.server_url, source) as database_url:
        traced = _raycesctl(
            _command(database_url, revision, direction),
            {TRACE_VARIABLE: str(trace_path)},
            tmp_path,
        )
        assert traced.returncode == 0, traced.stderr
        reference = commands.dump_schema(database_url)
    trace = Trace.read(trace_path)
    expected = Expectation(revision, direction, start, end, trace.steps(revision))
    moments = moments_of(trace, revision, direction)
    kinds = {moment.kind for moment in moments}
    # The trace found what the revision really does, and every moment is tried.
    assert {"journal records a step", "version row", "COMMIT"} <= kinds, kinds
    assert len(expected.steps) >= 2

    failures = []
    for moment in moments:
        with copy_of(templates.server_url, source) as database_url:
            run = _raycesctl(
                _command(database_url, revision, direction), moment.environment, tmp_path
            )
            problems = _contract_problems(
                run, moment.signal_name, database_url, expected, in_step=moment.in_step
            )
            if run.returncode == EXIT_STATUS[moment.signal_name]:
                problems += _converges(database_url, expected, reference, 240)
        failures += [f"{moment.label}: {problem}" for problem in problems]
    assert not failures, "\n".join(failures)


def test_the_statement_kinds_of_the_stepped_revisions() -> None:
    """The classification the matrix picks its moments by."""
    assert statement_kind("DO $backfill$ DECLARE batch_start bigint") == "batched backfill"
    assert statement_kind("DO $lock_retries$ DECLARE attempt") == "DO block lock_retries"
    assert statement_kind("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS x") == (
        "CREATE INDEX CONCURRENTLY"
    )
    assert statement_kind("ALTER TABLE likes VALIDATE CONSTRAINT fk") == "VALIDATE CONSTRAINT"
    assert statement_kind("ALTER TABLE users ADD COLUMN IF NOT EXISTS jti") == (
        "ALTER TABLE ADD COLUMN"
    )
    assert statement_kind("INSERT INTO rayces_migration_steps (revision)") == (
        "journal records a step"
    )
    assert statement_kind("UPDATE alembic_version SET version_num='1'") == "version row"
    assert statement_kind("VACUUM (ANALYZE) users") == "VACUUM (ANALYZE)"


# --- moments around the revisions -----------------------------------------------------------


def _full_upgrade(templates: Templates, tmp_path: Path) -> tuple[Trace, str]:
    """A traced, uninterrupted upgrade from the populated baseline to head, and its schema."""
    trace_path = tmp_path / "full-trace.jsonl"
    with copy_of(templates.server_url, templates.at(BASELINE)) as database_url:
        traced = _raycesctl(
            ["migrate", "--database-url", database_url], {TRACE_VARIABLE: str(trace_path)}, tmp_path
        )
        assert traced.returncode == 0, traced.stderr
        return Trace.read(trace_path), commands.dump_schema(database_url)


@pytest.fixture(scope="module")
def full_upgrade(
    templates: Templates, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Trace, str]:
    return _full_upgrade(templates, tmp_path_factory.mktemp("full-upgrade"))


FULL_RUN = Expectation("", "upgrade", BASELINE, HEAD)


def _interrupt_full_upgrade(
    templates: Templates,
    tmp_path: Path,
    reference: str,
    environment: dict[str, str],
    signal_name: str,
) -> dict[str, Any]:
    """Run baseline -> head with `environment`'s fault hooks; check the contract and the
    rerun to head; return the result."""
    with copy_of(templates.server_url, templates.at(BASELINE)) as database_url:
        run = _raycesctl(["migrate", "--database-url", database_url], environment, tmp_path)
        assert run.returncode == EXIT_STATUS[signal_name], run.stderr
        result = run.result
        problems = _contract_problems(run, signal_name, database_url, FULL_RUN)
        problems += _converges(database_url, FULL_RUN, reference, 240)
        assert not problems, problems
        return result


@pytest.mark.parametrize(
    "revision", ["20250713000001", "20250713000004", "20250713000011", "20250718000016"]
)
def test_a_signal_between_revisions(
    templates: Templates, tmp_path: Path, full_upgrade: tuple[Trace, str], revision: str
) -> None:
    """Sent as Alembic records `revision` done: the revision commits, the next one does not
    start, and the result says where the database is."""
    _, reference = full_upgrade
    result = _interrupt_full_upgrade(
        templates, tmp_path, reference, {SIGNAL_VARIABLE: f"INT@applied:{revision}"}, "INT"
    )
    assert result["to_revision"] in (revision, PARENT[revision])
    assert [step["revision"] for step in result["steps"]][-1:] in ([revision], [PARENT[revision]])


def test_a_signal_as_the_result_of_a_completed_run_is_written(
    templates: Templates, tmp_path: Path, full_upgrade: tuple[Trace, str]
) -> None:
    """Every revision ran: the result still says interrupted (exit 143), and that the database
    is at head, with every step listed."""
    _, reference = full_upgrade
    result = _interrupt_full_upgrade(
        templates, tmp_path, reference, {SIGNAL_VARIABLE: "TERM@result"}, "TERM"
    )
    assert result["to_revision"] == HEAD
    assert len(result["steps"]) == len(revisions()) - 1
    assert result["error"]["revision"] is None
    assert HEAD in result["error"]["hint"]


def test_a_signal_as_the_result_of_a_refused_run_is_written(
    templates: Templates, tmp_path: Path
) -> None:
    """A rollback refused by the data-loss guard, signalled as its refusal is written: the
    result is interrupted (exit 130), nothing was changed."""
    with copy_of(templates.server_url, templates.at("20250713000002")) as database_url:
        run = _raycesctl(
            ["rollback", "--database-url", database_url],
            {SIGNAL_VARIABLE: "INT@result"},
            tmp_path,
        )
        expected = Expectation("20250713000002", "downgrade", "20250713000002", "20250713000001")
        assert not _contract_problems(run, "INT", database_url, expected, in_step=False)
        assert run.result["to_revision"] == "20250713000002"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("TERM", "TERM", id="sigterm-twice"),
        pytest.param("INT", "INT", id="ctrl-c-twice"),
        pytest.param("TERM", "INT", id="sigterm-then-ctrl-c"),
    ],
)
def test_a_second_signal_during_the_shutdown(
    templates: Templates,
    tmp_path: Path,
    full_upgrade: tuple[Trace, str],
    first: str,
    second: str,
) -> None:
    """The first signal lands inside the first batched backfill; the second inside the very
    next statement, which is the shutdown's own (reading back the revision): it is noted and
    ignored, never a traceback or exit 1."""
    trace, reference = full_upgrade
    backfill = next(
        line["number"]
        for line in trace.lines
        if line["kind"] == "statement" and statement_kind(line["sql"]) == "batched backfill"
    )
    faults = f"{first}@statement:{backfill},{second}@statement:{backfill + 1}"
    result = _interrupt_full_upgrade(
        templates, tmp_path, reference, {SIGNAL_VARIABLE: faults}, first
    )
    assert result["error"]["revision"] == "20250713000002"
    assert result["error"]["step"] == "backfill"


# --- statements held on purpose, signalled from outside ----------------------------------------


def _stopped(process: subprocess.Popen[str]) -> bool:
    """Whether the process is frozen by SIGSTOP (state T in /proc)."""
    stat = Path(f"/proc/{process.pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def test_a_signal_inside_a_later_batch_of_a_backfill(templates: Templates, tmp_path: Path) -> None:
    """Users span three batches. The run freezes itself just before its backfill (the revision's
    ALTER TABLE committed), a row of the second batch is locked, and the run goes on: the
    backfill commits its first batch and waits inside the second when SIGTERM comes."""
    revision, parent = "20250713000006", "20250713000005"
    trace_path = tmp_path / "trace.jsonl"
    with copy_of(templates.server_url, templates.at(parent)) as database_url:
        argv = ["migrate", "--to", revision, "--database-url", database_url]
        assert _raycesctl(argv, {TRACE_VARIABLE: str(trace_path)}, tmp_path).returncode == 0
    backfill = next(
        line["number"]
        for line in Trace.read(trace_path).lines
        if line["kind"] == "statement" and statement_kind(line["sql"]) == "batched backfill"
    )
    with copy_of(templates.server_url, templates.at(parent)) as database_url:
        argv = ["migrate", "--to", revision, "--database-url", database_url]
        message = tmp_path / "batch.termination-log"
        process = _start(argv, {SIGNAL_VARIABLE: f"STOP@before-statement:{backfill}"}, message)
        try:
            _wait_until(lambda: _stopped(process), "the run to freeze before its backfill")
            with psycopg.connect(database_url) as blocker:
                second_batch_user = 150 * USER_ID_STEP
                blocker.execute(
                    "SELECT 1 FROM users WHERE id = %s FOR UPDATE", (second_batch_user,)
                )
                process.send_signal(signal.SIGCONT)
                _wait_until(lambda: _waiting_on_a_lock(database_url), "the backfill to wait")
                with psycopg.connect(database_url, autocommit=True) as observer:
                    row = observer.execute("SELECT count(jti) FROM users").fetchone()
                process.send_signal(signal.SIGTERM)
                run = _finish(process, message)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
        first_batch = row[0] if row else 0
        expected = Expectation(revision, "upgrade", parent, revision, ("add_column", "backfill"))
        assert not _contract_problems(run, "TERM", database_url, expected, in_step=False)
        assert run.result["error"]["step"] == "backfill"
        assert 0 < first_batch < 240  # the first batch had committed
        with copy_of(templates.server_url, templates.at(revision)) as reference_url:
            reference = commands.dump_schema(reference_url)
        assert not _converges(database_url, expected, reference, 240)


def test_a_signal_inside_a_concurrent_index_build(templates: Templates, tmp_path: Path) -> None:
    """`CREATE INDEX CONCURRENTLY` waits for an older transaction to end; SIGINT cancels it
    there, and the invalid index it leaves is replaced by the rerun."""
    with copy_of(templates.server_url, templates.at("20250718000015")) as database_url:
        with psycopg.connect(database_url) as old_snapshot:
            # Repeatable read keeps the transaction's snapshot while it sits idle.
            old_snapshot.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            old_snapshot.execute("SELECT txid_current(), count(*) FROM posts")
            message = tmp_path / "index.termination-log"
            process = _start(
                ["migrate", "--to", "20250718000016", "--database-url", database_url], {}, message
            )
            _wait_until(lambda: _waiting_on_a_lock(database_url), "the index build to wait")
            process.send_signal(signal.SIGINT)
            run = _finish(process, message)
        expected = Expectation(
            "20250718000016",
            "upgrade",
            "20250718000015",
            "20250718000016",
            ("add_columns", "validate_checks", "users_role_index"),
        )
        assert not _contract_problems(run, "INT", database_url, expected, in_step=False)
        assert run.result["error"]["step"] == "users_role_index"
        with copy_of(templates.server_url, templates.at("20250718000016")) as reference_url:
            reference = commands.dump_schema(reference_url)
        assert not _converges(database_url, expected, reference, 240)


def test_a_signal_while_connecting(tmp_path: Path) -> None:
    """A server that accepts the TCP connection and never answers: SIGTERM ends the wait at
    once (without it, the 10 s connect timeout would end it with exit 3)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        message = tmp_path / "connect.termination-log"
        process = _start(
            ["migrate", "--database-url", f"postgresql://u:secret@127.0.0.1:{port}/db"],
            {},
            message,
        )
        silent.settimeout(PATIENCE_SECONDS)
        accepted, _ = silent.accept()  # raycesctl is connected and waits for an answer
        with accepted:
            process.send_signal(signal.SIGTERM)
            run = _finish(process, message)
    assert run.returncode == 143, run.stderr
    assert run.result["error"]["kind"] == "interrupted"
    assert json.loads(run.termination_message) == run.result
    assert "Traceback" not in run.stderr
    assert "secret" not in run.stdout + run.stderr
