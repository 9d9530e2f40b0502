"""The step journal: how far a revision that commits in steps got before it was interrupted.

Most revisions run in one transaction: they are applied or not, never in between. A few cannot:
a batched backfill commits between batches, `CREATE INDEX CONCURRENTLY` refuses a transaction
block, and a `NOT VALID` constraint is validated in a transaction of its own. When such a revision
is killed part-way, `alembic_version` still names the revision before it, although some of its
steps are in the database. The journal makes that state known instead of a surprise:

- each step, once it has completed, adds a row `(revision, direction, step)` to the table
  `rayces_migration_steps` (in the same transaction as the step's own change when the step runs
  in a transaction);
- the revision's last statement, in the transaction Alembic stamps the new revision in, deletes
  the revision's rows, and the table itself once it is empty. A database that is not part-way
  through a revision has no journal table at all, so the booking schema (`docs/structure.sql`)
  never shows it; `schema dump` leaves it out in any case.

A resumed run in the same direction skips the steps the journal lists; every step can also be
run again safely (they are idempotent), which covers a step that committed its change but was
killed before its journal row. A run in the other direction (`rollback` after an interrupted
upgrade, or `migrate` after an interrupted rollback) runs the revision's other function, whose
steps each undo only what is there: the engine first records the revision as applied (or not)
so that Alembic runs it, see `rayces.migrations.commands`.

The test-only fault hook `RAYCES_FAULT_AFTER_STEP=REVISION:DIRECTION:N[:SIGNAL]` kills the
process (SIGKILL, as a lost node would, or the signal named) right after the N-th step (1-based,
in the order the revision declares them) of that revision in that direction has completed; see
`rayces.migrations.faults`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rayces.migrations import faults, progress
from rayces.migrations.errors import MigrationsError
from rayces.migrations.results import Direction, ErrorKind, InterruptedRevision

if TYPE_CHECKING:
    from alembic.script import Script
    from sqlalchemy import Connection

log = logging.getLogger(__name__)

JOURNAL_TABLE = "rayces_migration_steps"
"""The journal's table, in the default schema; it exists only while a revision is part-way."""


_CREATE_JOURNAL = f"""CREATE TABLE IF NOT EXISTS {JOURNAL_TABLE} (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    revision varchar NOT NULL,
    direction varchar NOT NULL CHECK (direction IN ('upgrade', 'downgrade')),
    step varchar NOT NULL,
    completed_at timestamp(6) with time zone NOT NULL DEFAULT clock_timestamp()
)"""

# Steps done in `direction` since the revision last ran a step in the other direction: an undo
# after them makes them not done any more.
_DONE_STEPS = f"""SELECT step FROM {JOURNAL_TABLE}
WHERE revision = :revision AND direction = :direction
  AND position > coalesce((SELECT max(position) FROM {JOURNAL_TABLE}
                           WHERE revision = :revision AND direction <> :direction), 0)
ORDER BY position"""


class RevisionSteps:
    """The steps of one run of a revision, in one direction, recorded in the journal.

    A revision creates one in `upgrade()` (and one in `downgrade()`), runs each step through
    `step(name, action)`, and ends with `finish()` in a transaction (outside any autocommit
    block), so that clearing the journal commits together with Alembic's new revision stamp.
    Offline (`raycesctl plan`, `alembic upgrade --sql`) the actions only render their SQL.
    """

    def __init__(self, revision: str, direction: Direction) -> None:
        from alembic import context

        self.revision = revision
        self.direction = direction
        self._offline = context.is_offline_mode()
        self._count = 0
        self._done: frozenset[str] | None = None
        if progress.current_position().revision != revision:
            progress.enter_revision(revision, direction)

    def step(self, name: str, action: Callable[[], None]) -> None:
        """Run `action` as the step `name`, unless the journal lists it as done already."""
        self._count += 1
        progress.enter_step(name)
        if self._offline:
            action()
            return
        if name not in self._steps_done():
            action()
            self._record(name)
        self._maybe_fail(self._count)

    def finish(self) -> None:
        """Clear this revision from the journal (and drop the journal once empty).

        Call it last, in a transaction: it commits with Alembic's revision stamp.
        """
        if self._offline:
            return
        from alembic import op

        op.execute(
            f"""DO $clear_journal$
BEGIN
    IF to_regclass('{JOURNAL_TABLE}') IS NOT NULL THEN
        DELETE FROM {JOURNAL_TABLE} WHERE revision = '{self.revision}';
        IF NOT EXISTS (SELECT 1 FROM {JOURNAL_TABLE}) THEN
            DROP TABLE {JOURNAL_TABLE};
        END IF;
    END IF;
END
$clear_journal$"""
        )

    def _steps_done(self) -> frozenset[str]:
        if self._done is None:
            from alembic import op

            connection = op.get_bind()
            self._done = frozenset(steps_done(connection, self.revision, self.direction))
        return self._done

    def _record(self, name: str) -> None:
        import sqlalchemy as sa
        from alembic import op

        op.execute(_CREATE_JOURNAL)
        op.execute(
            sa.text(
                f"INSERT INTO {JOURNAL_TABLE} (revision, direction, step) "
                "VALUES (:revision, :direction, :step)"
            ).bindparams(revision=self.revision, direction=self.direction, step=name)
        )

    def _maybe_fail(self, number: int) -> None:
        faults.step_completed(self.revision, self.direction, number)


def journal_exists(connection: Connection) -> bool:
    from sqlalchemy import text

    return bool(connection.scalar(text(f"SELECT to_regclass('{JOURNAL_TABLE}') IS NOT NULL")))


def steps_done(connection: Connection, revision: str, direction: Direction) -> list[str]:
    """The steps of `revision` completed in `direction` and not undone since, in order."""
    from sqlalchemy import text

    if not journal_exists(connection):
        return []
    rows = connection.execute(text(_DONE_STEPS), {"revision": revision, "direction": direction})
    return [row[0] for row in rows]


def interrupted_revision(connection: Connection) -> InterruptedRevision | None:
    """The revision left part-way, with its direction and its completed steps; `None` if none.

    :raises ValueError: more than one revision is part-way (only the plain `alembic` command,
        run by hand on a part-way database, can cause that).
    """
    from sqlalchemy import text

    if not journal_exists(connection):
        return None
    rows = connection.execute(
        text(
            f"SELECT DISTINCT ON (revision) revision, direction FROM {JOURNAL_TABLE} "
            "ORDER BY revision, position DESC"
        )
    ).all()
    if not rows:
        return None
    if len(rows) > 1:
        raise ValueError(
            "several revisions are part-way: " + ", ".join(str(row[0]) for row in rows)
        )
    revision, last_direction = str(rows[0][0]), str(rows[0][1])
    direction: Direction = "downgrade" if last_direction == "downgrade" else "upgrade"
    return InterruptedRevision(
        revision=revision,
        direction=direction,
        steps_done=tuple(steps_done(connection, revision, direction)),
    )


class InterruptedStateError(MigrationsError):
    """The journal and `alembic_version` disagree in a way no interruption can cause."""

    kind = ErrorKind.PRECONDITION_FAILED


def read_interrupted_revision(connection: Connection) -> InterruptedRevision | None:
    """`interrupted_revision`, ending the read's transaction; a journal that names several
    revisions is reported as an InterruptedStateError."""
    try:
        return interrupted_revision(connection)
    except ValueError as error:
        raise InterruptedStateError(
            str(error),
            hint=f"inspect the table {JOURNAL_TABLE}; keep the rows of the one revision that "
            "really ran part-way",
        ) from None
    finally:
        connection.commit()


def settle_interrupted_revision(
    connection: Connection, chain: Sequence[Script], current: str | None, direction: Direction
) -> str | None:
    """Prepare an interrupted revision for a run in `direction`; returns the revision to start
    from.

    A revision that stopped part-way is recorded (in `alembic_version`) as not applied when it
    was being applied, and as applied when it was being reverted. For Alembic to pick it up,
    an upgrade needs it recorded as not applied, a downgrade as applied: the record is changed
    accordingly, in one transaction with nothing else. The journal's rows stay until the
    revision completes, so the state remains known if this run is interrupted too.

    :raises InterruptedStateError: the interrupted revision is neither the current revision nor
        the next one.
    """
    from sqlalchemy import text

    interrupted = read_interrupted_revision(connection)
    if interrupted is None:
        return current
    ids = [script.revision for script in chain]
    if interrupted.revision not in ids:
        raise InterruptedStateError(
            f"revision {interrupted.revision} stopped part-way, but no revision script has that id",
            hint="run this command with the scripts (image) that started that revision",
        )
    position = ids.index(interrupted.revision)
    parent = ids[position - 1] if position else None
    if current not in (interrupted.revision, parent):
        raise InterruptedStateError(
            f"revision {interrupted.revision} stopped part-way, but the database is recorded "
            f"at {current or 'base'}",
            hint=f"inspect the table {JOURNAL_TABLE}; it should list only the revision after "
            "the current one, or the current one",
        )
    wanted = parent if direction == "upgrade" else interrupted.revision
    if wanted != current:
        if wanted is None or current is None:
            raise InterruptedStateError(
                f"revision {interrupted.revision} stopped part-way at the base of the chain",
                hint="a first revision runs in one transaction; inspect the database by hand",
            )
        connection.execute(
            text("UPDATE alembic_version SET version_num = :wanted WHERE version_num = :current"),
            {"wanted": wanted, "current": current},
        )
        connection.commit()
        log.info(
            "revision %s stopped part-way while %s; running it again to %s it",
            interrupted.revision,
            "applied" if interrupted.direction == "upgrade" else "reverted",
            "apply" if direction == "upgrade" else "revert",
        )
    return wanted
