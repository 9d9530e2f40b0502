"""Adoption benchmark: `raycesctl migrate` adopting a populated database Rails made.

On one embedded PostgreSQL server, MyHub's database as Rails 7.1 made it (`tests.db.rails_database`)
is filled with N users (1,000,000 by default), as many posts and twice as many likes. Then:

1. `raycesctl migrate --to 20240606034427` on it: the whole adoption (schema_migrations read, a
   scratch database migrated to the baseline and dumped, the live schema dumped, the comparison,
   the record), start-up included, against `raycesctl status` on the same database (start-up
   and a connection, the floor of any Job);
2. where the adoption's time goes, measured in-process: the scratch database at the baseline and
   at 20250713000003, the live dump, the comparison.

None of it reads a row of the tenant tables: the figures should not grow with N.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from bench.migration_timings import POPULATE_BASELINE
from rayces.migrations.embedded import temporary_database, temporary_embedded_server

BASELINE = "20240606034427"
RAILS_APPLIED = "20250713000003"


def _timed(argv: list[str], database_url: str) -> float:
    raycesctl = str(Path(sys.executable).with_name("raycesctl"))
    started = time.perf_counter()
    completed = subprocess.run(
        [raycesctl, *argv, "--database-url", database_url, "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(
            f"raycesctl {' '.join(argv)} exited {completed.returncode}: {completed.stderr[-2000:]}"
        )
    return elapsed


def _seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def run_adoption_benchmark(*, users: int = 1_000_000) -> int:
    """Print the figures; return 0."""
    from tests.db.rails_database import make_rails_database

    from rayces.migrations.adoption import (
        compare_schemas,
        expected_schema_dump,
        live_schema_dump,
        schema_shape,
    )

    posts, likes = users, 2 * users
    with (
        temporary_embedded_server() as server_url,
        temporary_database(server_url, prefix="bench_rails") as database_url,
    ):
        make_rails_database(database_url, rows=False)
        started = time.perf_counter()
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(
                POPULATE_BASELINE.format(users=users, posts=posts, likes=likes).encode()
            )
        filled = time.perf_counter() - started
        status = min(_timed(["status"], database_url) for _ in range(3))
        live = _seconds(lambda: live_schema_dump(database_url))
        scratch_baseline = _seconds(lambda: expected_schema_dump(database_url, BASELINE))
        scratch_applied = _seconds(lambda: expected_schema_dump(database_url, RAILS_APPLIED))
        live_shape = schema_shape(live_schema_dump(database_url))
        expected_shape = schema_shape(expected_schema_dump(database_url, BASELINE))
        comparison = _seconds(lambda: compare_schemas(live_shape, expected_shape))
        adoption = _timed(["migrate", "--to", BASELINE], database_url)
        with psycopg.connect(database_url) as connection:
            recorded = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        if recorded != (BASELINE,):
            raise RuntimeError(f"the database was not adopted at {BASELINE}: {recorded}")
    print(
        f"\nAdoption of a Rails database ({users:,} users, {posts:,} posts, {likes:,} likes; "
        f"filled in {filled:.1f} s)"
    )
    print(f"  raycesctl migrate --to {BASELINE} (adopts, runs nothing): {adoption:.2f} s")
    print(f"  raycesctl status on the same database (start-up, connection): {status:.2f} s")
    print("  in-process:")
    for revision, seconds in ((BASELINE, scratch_baseline), (RAILS_APPLIED, scratch_applied)):
        print(f"    scratch database migrated to {revision} and dumped: {seconds:.2f} s")
    print(f"    live schema dumped: {live:.2f} s; comparison: {comparison * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(run_adoption_benchmark(users=int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
