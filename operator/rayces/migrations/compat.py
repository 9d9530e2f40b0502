"""The legacy-write compatibility path: on while the old MyHub application still writes, then off.

Revisions 20250713000002 to 0004 add `organization_id` to users, posts and likes. The old
application does not know the column; a trigger gives the rows it inserts without one to the
default organization, which the table `rayces_compat.default_organization` remembers
(expand/contract). Once every writer sets `organization_id` itself, switch the path off: a row
without `organization_id` is then refused again by the column's NOT NULL. Switching is one row
update, instant and reversible, and changes no schema object, so `docs/structure.sql` holds
either way.

These functions take a database URL, like `rayces.migrations.commands`, and are what
`raycesctl legacy-writes` calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rayces.migrations.database import connect, create_database_engine, normalize_database_url
from rayces.migrations.errors import MigrationsError
from rayces.migrations.online_operations import DEFAULT_ORGANIZATION_TABLE
from rayces.migrations.results import ErrorKind

if TYPE_CHECKING:
    from sqlalchemy import Connection


class CompatibilityPathMissingError(MigrationsError):
    """The database has no compatibility path to switch (it is older than 20250713000002)."""

    kind = ErrorKind.PRECONDITION_FAILED


@dataclass(frozen=True)
class LegacyWrites:
    """Whether rows written without an organization go to the default organization.

    `default_organization_id` is `None` when no default organization was ever needed (the
    tables were empty when the organization columns were added): such rows are refused.
    """

    default_organization_id: int | None
    enabled: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": "legacy-writes",
            "default_organization_id": self.default_organization_id,
            "enabled": self.enabled,
        }


def legacy_writes(database: str) -> LegacyWrites:
    """The compatibility path's state.

    :param database: PostgreSQL URL, as for `rayces.migrations.commands.upgrade`.
    :raises CompatibilityPathMissingError: the database is older than 20250713000002.
    """
    with _connection(database) as connection:
        state = _read(connection)
        connection.rollback()
        return state


def set_legacy_writes(database: str, *, enabled: bool) -> LegacyWrites:
    """Switch the compatibility path off (`enabled=False`, the contract step) or on again.

    :param database: PostgreSQL URL, as for `rayces.migrations.commands.upgrade`.
    :param enabled: whether rows written without `organization_id` go to the default
        organization from now on (inserts already running finish under the old setting).
    :raises CompatibilityPathMissingError: the database is older than 20250713000002, or
        `enabled` is asked with no default organization to send rows to.
    """
    from sqlalchemy import text

    with _connection(database) as connection:
        state = _read(connection)
        if enabled and state.default_organization_id is None:
            raise CompatibilityPathMissingError(
                "there is no default organization to give legacy writes to",
                hint="the tables were empty when the organization columns were added; "
                "writers must set organization_id",
            )
        connection.execute(
            text(f"UPDATE {DEFAULT_ORGANIZATION_TABLE} SET accepts_legacy_writes = :enabled"),
            {"enabled": enabled},
        )
        connection.commit()
        return LegacyWrites(state.default_organization_id, enabled)


def _connection(database: str) -> Connection:
    return connect(create_database_engine(normalize_database_url(database)))


def _read(connection: Connection) -> LegacyWrites:
    from sqlalchemy import text

    if not connection.scalar(text(f"SELECT to_regclass('{DEFAULT_ORGANIZATION_TABLE}')")):
        connection.rollback()
        raise CompatibilityPathMissingError(
            "the database has no legacy-write compatibility path",
            hint="migrate to 20250713000002 or later first",
        )
    row = connection.execute(
        text(f"SELECT organization_id, accepts_legacy_writes FROM {DEFAULT_ORGANIZATION_TABLE}")
    ).first()
    if row is None:
        return LegacyWrites(default_organization_id=None, enabled=False)
    return LegacyWrites(default_organization_id=int(row[0]), enabled=bool(row[1]))
