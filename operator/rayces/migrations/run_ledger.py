"""The run ledger: which rows an upgrade run wrote itself, so that the rollback after it fails
may drop them without `--allow-data-loss`.

An upgrade from revision A that fails at revision C leaves the database at B, with the tables
and columns of the revisions between A and B in it, filled by the run itself: the default
organization, the column defaults existing rows took, the backfills. Going back to A drops those
objects. The data-loss guard (`rayces.migrations.data_loss`) refuses to drop rows, and it must
still refuse when someone else (the application, a person, a seeded tenant) wrote into those
objects meanwhile; but rows only the run wrote are the run's own, and going back loses nothing
that running the upgrade again would not write the same way.

PostgreSQL records on each row version the transaction that wrote it (`xmin`). So while an
upgrade runs, the ledger, the table `rayces_migration_run` in the default schema, records:

- the **origin**: the revision the run started from, and the oldest transaction still running
  when it started (`pg_snapshot_xmin`): a row whose `xmin` is older was there before the run,
  and holds in a new column only the value the column's default gave it;
- each **transaction the run committed** that wrote anything: every revision's transaction (a
  SQLAlchemy `commit` hook on the run's connection) and every batch of a batched backfill
  (`rayces.migrations.online_operations` inserts its own id before each `COMMIT`).

A row in an object the run created is the run's own when it was there before the run or was last
written by one of the run's transactions. In a column, so is a row holding the value the run
gives every row: the column's constant default, or what the revision declares in
`upgrade_values` (the default organization); another writer (the application renaming a user,
or inserting one that the legacy-write trigger gives the default organization) then only wrote
other columns. Anything else (a row inserted or updated by another transaction after the run
started, with another value) is not, and the guard counts it.

The ledger exists only between a run's start and the moment the database is past it: an upgrade
that reaches its target drops it (nothing is left to roll back on failure), and so does a
rollback that reaches the origin. A run that starts while a ledger is left over from a failed
run above its origin continues it (a retried Job), so the rollback can still go back to where the
first attempt started. `schema dump` leaves the table out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection

log = logging.getLogger(__name__)

LEDGER_TABLE = "rayces_migration_run"
"""The ledger's table, in the default schema; it exists only while a run may be rolled back."""

_CREATE = f"""CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
    entry varchar NOT NULL CHECK (entry IN ('origin', 'transaction')),
    xid xid8 NOT NULL,
    from_revision varchar,
    PRIMARY KEY (entry, xid)
)"""

RECORD_TRANSACTION = (
    f"INSERT INTO {LEDGER_TABLE} (entry, xid) "
    "SELECT 'transaction', pg_current_xact_id_if_assigned() "
    "WHERE pg_current_xact_id_if_assigned() IS NOT NULL ON CONFLICT DO NOTHING"
)
"""Record the current transaction as the run's, if it has written anything. Run it just before
the transaction commits, in that transaction."""

RECORD_TRANSACTION_PLPGSQL = (
    f"IF to_regclass('{LEDGER_TABLE}') IS NOT NULL THEN "
    f"EXECUTE $record${RECORD_TRANSACTION}$record$; END IF;"
)
"""The same, as a PL/pgSQL statement for a `DO` block that commits by itself (a batched
backfill); it does nothing when no run is being recorded."""

_MODULO = 4294967296  # row versions carry 32-bit transaction ids; the ledger keeps 64-bit ones


@dataclass(frozen=True)
class Ledger:
    """The run being recorded: the revision it started from (`None`: base)."""

    from_revision: str | None


def read_ledger(connection: Connection) -> Ledger | None:
    """The run recorded in the database, if any. Leaves the transaction open."""
    from sqlalchemy import text

    if connection.execute(text("SELECT to_regclass(:name)"), {"name": LEDGER_TABLE}).scalar():
        origin = connection.execute(
            text(f"SELECT from_revision FROM {LEDGER_TABLE} WHERE entry = 'origin'")
        ).first()
        if origin is not None:
            return Ledger(from_revision=origin[0])
    return None


def begin_run(connection: Connection, chain: Sequence[str], current: str | None) -> Ledger:
    """Start recording an upgrade run from `current`, or continue the one left over by a failed
    run that started below it. Commits.

    :param chain: the revision ids, oldest first.
    """
    from sqlalchemy import text

    ledger = read_ledger(connection)
    if ledger is not None and _position(chain, ledger.from_revision) <= _position(chain, current):
        connection.commit()
        log.debug("continuing the run recorded from %s", ledger.from_revision or "base")
        return ledger
    connection.execute(text(f"DROP TABLE IF EXISTS {LEDGER_TABLE}"))
    connection.execute(text(_CREATE))
    connection.execute(
        text(
            f"INSERT INTO {LEDGER_TABLE} (entry, xid, from_revision) "
            "SELECT 'origin', pg_snapshot_xmin(pg_current_snapshot()), :revision"
        ),
        {"revision": current},
    )
    connection.commit()
    return Ledger(from_revision=current)


def end_run(connection: Connection) -> None:
    """Stop recording: the database is past the run (at its target, or back at its origin)."""
    from sqlalchemy import text

    connection.execute(text(f"DROP TABLE IF EXISTS {LEDGER_TABLE}"))
    connection.commit()


def end_run_if_back_at_origin(
    connection: Connection, chain: Sequence[str], current: str | None
) -> None:
    """After a rollback to `current`: stop recording if that is at or below the run's origin."""
    ledger = read_ledger(connection)
    if ledger is not None and _position(chain, current) <= _position(chain, ledger.from_revision):
        end_run(connection)
    else:
        connection.commit()


def record_commits(connection: Connection) -> Callable[[], None]:
    """Record each transaction `connection` commits (that wrote anything) as the run's.

    :returns: a function that stops recording.
    """
    from sqlalchemy import event

    def before_commit(conn: Any) -> None:
        cursor = conn.connection.cursor()
        try:
            cursor.execute(RECORD_TRANSACTION)
        finally:
            cursor.close()

    event.listen(connection, "commit", before_commit)
    return lambda: event.remove(connection, "commit", before_commit)


def written_by_others(table: str, column: str | None, own_values: Sequence[str] = ()) -> str:
    """SQL counting the rows of `table` (with `column` not NULL) that are not the run's own.

    :param own_values: SQL conditions on a row of `table` that hold when `column` has the value
        the run itself gives every row (a constant default, the default organization): such a
        row is the run's own whoever wrote it last, since only another column can have changed.
        `table` and `column` must already be safe identifiers.
    """
    where = f'"{column}" IS NOT NULL AND ' if column else ""
    values = "".join(f" OR ({condition})" for condition in own_values)
    return (
        f'SELECT count(*) FROM "{table}" WHERE {where}NOT ('
        # there before the run: older than the oldest transaction running when it started
        f"age(xmin) > (SELECT age(((xid::text::numeric % {_MODULO})::text)::xid) "
        f"FROM {LEDGER_TABLE} WHERE entry = 'origin') "
        # or last written by one of the run's transactions
        f"OR xmin::text::bigint IN (SELECT (xid::text::numeric % {_MODULO})::bigint "
        f"FROM {LEDGER_TABLE} WHERE entry = 'transaction'){values})"
    )


def made_by_run(chain: Sequence[str], ledger: Ledger | None, revision: str) -> bool:
    """Whether `revision` was applied by the recorded run (it lies above the run's origin)."""
    return ledger is not None and _position(chain, revision) > _position(
        chain, ledger.from_revision
    )


def _position(chain: Sequence[str], revision: str | None) -> int:
    if revision is None:
        return -1
    try:
        return list(chain).index(revision)
    except ValueError:
        return len(chain)  # unknown to this chain: treat as above everything
