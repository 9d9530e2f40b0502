"""200 signals at uniformly random moments of a populated upgrade, base of MyHub to head.

The named moments of `test_signal_moments` cover every kind of place a run can be; this covers
the places nobody named. Each signal (SIGTERM and SIGINT in turn) lands at a moment drawn
uniformly over the time an uninterrupted run of the same command takes, on a fresh copy of the
populated baseline, and each must give exit 143/130 with the `interrupted` result, leave no
session, and let a plain rerun reach exactly `docs/structure.sql` with every row.

A signal that comes after the result is written (the process is exiting) is ignored, and the
run's exit code stays the result's; such a draw is drawn again. A signal in the first few
milliseconds, while the interpreter starts and before any of the
project's code runs, ends the process by the default action (the kubelet reports exit 143 then,
which the operator reads as an interruption; raycesctl writes no result). Moments start after
that window. The run is bounded: 200 signals, and a deadline for the whole soak.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.db.alembic_helpers import BASELINE, HEAD, REPOSITORY_ROOT
from tests.db.populated import Templates, copy_of, prepared_templates
from tests.db.test_signal_moments import (
    EXIT_STATUS,
    Expectation,
    _contract_problems,
    _finish,
    _start,
    _user_count,
)

from rayces.migrations import commands

SIGNALS = 200
#: Ends the soak (as a failure) if the machine is far slower than expected.
DEADLINE_SECONDS = 1500.0
#: The interpreter's own start, before the console script's first line notes signals.
STARTUP_WINDOW_SECONDS = 0.05
USERS, POSTS, LIKES = 3000, 1500, 9000
SEED = 20261206


@pytest.fixture(scope="module")
def templates(postgres_server_url: str) -> Iterator[Templates]:
    # User ids 7 apart: the 3,000 users span three backfill batches.
    with prepared_templates(postgres_server_url, USERS, POSTS, LIKES, user_id_step=7) as prepared:
        yield prepared


def test_200_signals_at_random_moments_of_a_populated_upgrade(
    templates: Templates, tmp_path: Path
) -> None:
    structure = (REPOSITORY_ROOT / "docs" / "structure.sql").read_text()
    with copy_of(templates.server_url, templates.at(BASELINE)) as database_url:
        message = tmp_path / "clean.termination-log"
        started = time.time()
        clean = _finish(_start(["migrate", "--database-url", database_url], {}, message), message)
        # Up to the moment its result is written: a signal after that changes nothing.
        run_seconds = message.stat().st_mtime - started
        assert clean.returncode == 0, clean.stderr
        assert commands.dump_schema(database_url) == structure

    rng = random.Random(SEED)
    soak_started = time.monotonic()
    landed: list[tuple[float, float]] = []  # (moment, seconds from signal to exit)
    finished_first = 0
    failures: list[str] = []
    while len(landed) < SIGNALS:
        assert time.monotonic() - soak_started < DEADLINE_SECONDS, (
            f"only {len(landed)} signals in {DEADLINE_SECONDS:.0f}s"
        )
        name = "TERM" if len(landed) % 2 == 0 else "INT"
        moment = rng.uniform(STARTUP_WINDOW_SECONDS, run_seconds)
        with copy_of(templates.server_url, templates.at(BASELINE)) as database_url:
            message = tmp_path / "soak.termination-log"
            message.unlink(missing_ok=True)
            process = _start(["migrate", "--database-url", database_url], {}, message)
            time.sleep(moment)
            if process.poll() is not None:  # quicker than the clean run: draw again
                finished_first += 1
                _finish(process, message)
                continue
            sent, sent_at = time.monotonic(), time.time()
            process.send_signal(signal.SIGTERM if name == "TERM" else signal.SIGINT)
            run = _finish(process, message)
            if run.returncode == 0 and message.stat().st_mtime <= sent_at:
                # Its result was written before the signal came (the process was exiting): the
                # signal is ignored, as it should be. Draw again.
                finished_first += 1
                continue
            landed.append((moment, time.monotonic() - sent))
            problems = _contract_problems(
                run, name, database_url, Expectation("", "upgrade", BASELINE, HEAD)
            )
            if run.returncode == EXIT_STATUS[name]:
                commands.upgrade(database_url)
                if commands.dump_schema(database_url) != structure:
                    problems.append("the rerun does not give docs/structure.sql")
                if _user_count(database_url) != USERS:
                    problems.append("rows were lost")
            failures += [f"SIG{name} at {moment:.3f}s: {problem}" for problem in problems]
    elapsed = time.monotonic() - soak_started
    print(
        f"\nsoak: {len(landed)} signals over a {run_seconds:.2f}s upgrade in {elapsed:.0f}s "
        f"({finished_first} runs finished before their moment); signal to exit: "
        f"median {sorted(s for _, s in landed)[len(landed) // 2]:.3f}s, "
        f"max {max(s for _, s in landed):.3f}s"
    )
    assert not failures, "\n".join(failures[:20])
