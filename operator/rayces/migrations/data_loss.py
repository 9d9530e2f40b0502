"""What a downgrade would destroy, counted before it runs.

Many downgrades drop tables or columns. Each revision declares what its `downgrade()` drops in a
module-level constant, right below its identifiers:

    downgrade_drops = ("table students", "column users.jti")

`raycesctl rollback` adds up the declarations of every revision it would revert and counts the
rows holding data in each object (every row of a table; the rows where a column is not NULL).
If any holds rows, the rollback is refused unless data loss was allowed; empty objects go down
freely. A test compares each declaration with what the downgrade really drops.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rayces.migrations.errors import DataLossRefusedError
from rayces.migrations.results import DataLoss

if TYPE_CHECKING:
    from alembic.script import Script
    from sqlalchemy import Connection

_IDENTIFIER = r"[a-z_][a-z0-9_]*"
_DECLARATION = re.compile(rf"(table) ({_IDENTIFIER})|(column) ({_IDENTIFIER})\.({_IDENTIFIER})")


def declared_drops(script: Script) -> tuple[str, ...]:
    """The objects `script`'s downgrade drops, as its `downgrade_drops` declares them.

    :raises ValueError: the revision declares nothing, or an entry is not "table T" or
        "column T.C".
    """
    declared = getattr(script.module, "downgrade_drops", None)
    if declared is None:
        raise ValueError(f"revision {script.revision} does not declare downgrade_drops")
    for entry in declared:
        if not _DECLARATION.fullmatch(entry):
            raise ValueError(
                f"revision {script.revision}: downgrade_drops entry {entry!r} is not "
                "'table NAME' or 'column TABLE.COLUMN'"
            )
    return tuple(declared)


def count_rows(connection: Connection, objects: Iterable[str]) -> tuple[DataLoss, ...]:
    """Each of `objects` ("table T", "column T.C") that exists and holds rows, with the count.

    Ends the read's transaction.
    """
    from sqlalchemy import text

    found: list[DataLoss] = []
    for entry in dict.fromkeys(objects):
        match = _DECLARATION.fullmatch(entry)
        if match is None:
            raise ValueError(f"cannot count rows of {entry!r}")
        if match.group(1):
            table, column = match.group(2), None
        else:
            table, column = match.group(4), match.group(5)
        exists = connection.execute(
            text(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = :table "
                "AND (CAST(:column AS text) IS NULL OR column_name = :column)"
            ),
            {"table": table, "column": column},
        ).scalar_one()
        if not exists:
            continue
        where = f' WHERE "{column}" IS NOT NULL' if column else ""
        rows = connection.execute(text(f'SELECT count(*) FROM "{table}"{where}')).scalar_one()
        if rows:
            found.append(DataLoss(object=entry, rows=int(rows)))
    connection.commit()
    return tuple(found)


def refuse_data_loss(
    connection: Connection, scripts_to_revert: Sequence[Script], *, target: str | None
) -> None:
    """Raise `DataLossRefusedError` if reverting `scripts_to_revert` would drop rows.

    :param scripts_to_revert: the revisions the downgrade would revert.
    :param target: where the downgrade goes, for the message.
    """
    objects = [entry for script in scripts_to_revert for entry in declared_drops(script)]
    losses = count_rows(connection, objects)
    if not losses:
        return
    listed = ", ".join(f"{loss.object} ({loss.rows} rows)" for loss in losses)
    raise DataLossRefusedError(
        f"rolling back to {target or 'base'} would drop data: {listed}",
        hint="back the data up first, then run again with --allow-data-loss",
        data_loss=losses,
    )
