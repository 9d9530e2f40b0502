"""The advisory lock that keeps two migration runs from interleaving.

Every run that changes the schema holds a session-level PostgreSQL advisory lock on one fixed key
for its whole duration, on the same connection that runs the revisions. A second run polls
`pg_try_advisory_lock` until the first one is done or its wait time is over; then it fails with a
message naming the holder (pid, application_name, client address, since when), read from
`pg_locks` and `pg_stat_activity`, so a person can find the Job or session in the way.

The key is derived from a name in Python (not with `hashtext`, whose output PostgreSQL does not
promise to keep), so every version of rayces and every server agree on it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from rayces.migrations import signals
from rayces.migrations.errors import LockTimeoutError

if TYPE_CHECKING:
    from sqlalchemy import Connection

#: The name the migration lock's key is derived from.
MIGRATION_LOCK_NAME = "rayces.migrations"


def advisory_lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key: the first 8 bytes of the name's SHA-256."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


MIGRATION_LOCK_KEY = advisory_lock_key(MIGRATION_LOCK_NAME)


@dataclass(frozen=True)
class LockHolder:
    """The session holding the lock, as `pg_stat_activity` sees it."""

    pid: int
    application_name: str
    client_address: str | None
    backend_start: datetime | None
    state: str | None

    def describe(self) -> str:
        client = self.client_address or "local socket"
        since = self.backend_start.isoformat(timespec="seconds") if self.backend_start else "?"
        name = self.application_name or "(no application_name)"
        return (
            f"pid {self.pid}, application_name {name!r}, client {client}, "
            f"connected since {since}, state {self.state or '?'}"
        )


def _key_parts(key: int) -> tuple[int, int]:
    """pg_locks shows a bigint advisory key as classid (high 32 bits) and objid (low 32 bits)."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


def find_lock_holders(connection: Connection, key: int = MIGRATION_LOCK_KEY) -> list[LockHolder]:
    """The sessions holding the advisory lock `key` (at most one for an exclusive lock)."""
    from sqlalchemy import text

    classid, objid = _key_parts(key)
    rows = connection.execute(
        text(
            """
            SELECT a.pid, coalesce(a.application_name, ''), host(a.client_addr),
                   a.backend_start, a.state
              FROM pg_locks l
              JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted
               AND l.classid = CAST(:classid AS oid) AND l.objid = CAST(:objid AS oid)
               AND l.objsubid = 1 AND l.database = (
                   SELECT oid FROM pg_database WHERE datname = current_database())
            """
        ),
        {"classid": classid, "objid": objid},
    ).all()
    return [LockHolder(*row) for row in rows]


def acquire_migration_lock(
    connection: Connection,
    *,
    wait_timeout: float,
    poll_interval: float = 0.25,
    key: int = MIGRATION_LOCK_KEY,
) -> None:
    """Take the session-level advisory lock `key`, polling for at most `wait_timeout` seconds.

    The connection's transaction is committed afterwards (the lock outlives it), so Alembic can
    open one transaction per revision on it.

    :param connection: the connection the migration will run on.
    :param wait_timeout: seconds to keep trying; 0 tries once.
    :param poll_interval: seconds between tries.
    :param key: the advisory lock key; the migration lock's by default.
    :raises LockTimeoutError: naming the session that holds the lock.
    """
    from sqlalchemy import text

    deadline = time.monotonic() + wait_timeout
    while True:
        acquired = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": key}
        ).scalar_one()
        connection.commit()
        if acquired:
            return
        if time.monotonic() >= deadline:
            break
        signals.sleep(min(poll_interval, max(deadline - time.monotonic(), 0.0)))
    holders = find_lock_holders(connection, key)
    connection.commit()
    held_by = "; ".join(holder.describe() for holder in holders) or "a session that has ended"
    raise LockTimeoutError(
        f"another migration run held the lock for more than {wait_timeout:g}s: held by {held_by}",
        hint="wait for it to finish and retry, raise --lock-wait-timeout, or end that session "
        "with pg_terminate_backend(pid)",
    )


def release_migration_lock(connection: Connection, key: int = MIGRATION_LOCK_KEY) -> None:
    """Release the lock taken by `acquire_migration_lock` (closing the connection also does)."""
    from sqlalchemy import text

    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    connection.commit()
