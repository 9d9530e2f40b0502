"""What a downgrade would destroy, counted before it runs.

Many downgrades drop tables or columns. Each revision declares what its `downgrade()` drops in a
module-level constant, right below its identifiers:

    downgrade_drops = ("table students", "column users.jti")

`raycesctl rollback` adds up the declarations of every revision it would revert and counts the
rows holding data in each object (every row of a table; the rows where a column is not NULL).
If any holds rows, the rollback is refused unless data loss was allowed; empty objects go down
freely. A test compares each declaration with what the downgrade really drops.

The objects an upgrade run created, while the run ledger (`rayces.migrations.run_ledger`) still
records it (the run failed, or is running), are counted differently: only the rows that are not
the run's own (written by another transaction since the run started) count as data that would be
lost. The run's own rows (its default organization, column defaults, backfills) are dropped,
and the rollback reports them, so that the rollback after a failed upgrade returns the database
to exactly where the run found it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from rayces.migrations.errors import DataLossRefusedError
from rayces.migrations.results import DataLoss, DroppedData
from rayces.migrations.run_ledger import made_by_run, read_ledger, written_by_others

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


def declared_values(script: Script) -> dict[str, str]:
    """What `script` declares in `upgrade_values`: for a column its downgrade drops, the SQL
    condition on a row that holds when the column has the value the upgrade gives every row.

    :raises ValueError: an entry names an object the revision does not drop.
    """
    declared = dict(getattr(script.module, "upgrade_values", None) or {})
    for entry in declared:
        if entry not in declared_drops(script) or not entry.startswith("column "):
            raise ValueError(
                f"revision {script.revision}: upgrade_values entry {entry!r} is not a column "
                "its downgrade_drops lists"
            )
    return declared


def count_rows(
    connection: Connection,
    objects: Iterable[str],
    *,
    others_only: bool = False,
    own_values: Mapping[str, str] | None = None,
) -> tuple[DataLoss, ...]:
    """Each of `objects` ("table T", "column T.C") that exists and holds rows, with the count.

    :param others_only: count only the rows that are not the recorded run's own (see
        `rayces.migrations.run_ledger`); the ledger must exist. In a column, a row holding its
        constant default, or meeting the object's condition in `own_values`, is the run's own.

    Ends the read's transaction.
    """
    from sqlalchemy import text

    found: list[DataLoss] = []
    for entry in dict.fromkeys(objects):
        table, column = _parse(entry)
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
        if others_only:
            values = [condition for condition in [(own_values or {}).get(entry)] if condition]
            if column:
                default = _constant_default(connection, table, column)
                values += [f'"{column}" = ({default})'] if default else []
            query = written_by_others(table, column, values)
        else:
            where = f' WHERE "{column}" IS NOT NULL' if column else ""
            query = f'SELECT count(*) FROM "{table}"{where}'
        rows = connection.execute(text(query)).scalar_one()
        if rows:
            found.append(DataLoss(object=entry, rows=int(rows)))
    connection.commit()
    return tuple(found)


#: A default that is a literal (with casts): the same value for every row, unlike `now()` or
#: `gen_random_uuid()`.
_LITERAL = re.compile(r"""(?:'(?:[^']|'')*'|-?\d+(?:\.\d+)?|true|false)(?:::[a-z ]+(?:\[\])?)*""")


def _constant_default(connection: Connection, table: str, column: str) -> str | None:
    """The column's default, if it is a literal; `None` otherwise (or with no default)."""
    from sqlalchemy import text

    default = connection.execute(
        text(
            "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d "
            "JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
            "WHERE d.adrelid = to_regclass(:table) AND a.attname = :column"
        ),
        {"table": f'"{table}"', "column": column},
    ).scalar()
    return default if default and _LITERAL.fullmatch(default) else None


def _parse(entry: str) -> tuple[str, str | None]:
    match = _DECLARATION.fullmatch(entry)
    if match is None:
        raise ValueError(f"cannot count rows of {entry!r}")
    if match.group(1):
        return match.group(2), None
    return match.group(4), match.group(5)


def refuse_data_loss(
    connection: Connection,
    scripts_to_revert: Sequence[Script],
    *,
    target: str | None,
    chain: Sequence[str],
) -> tuple[DroppedData, ...]:
    """Raise `DataLossRefusedError` if reverting `scripts_to_revert` would drop rows that are
    not a recorded run's own.

    :param scripts_to_revert: the revisions the downgrade would revert.
    :param target: where the downgrade goes, for the message.
    :param chain: the revision ids, oldest first.
    :returns: what the rollback will drop although it holds rows, because they are all the
        recorded run's own (see `rayces.migrations.run_ledger`).
    """
    ledger = read_ledger(connection)
    by_run = [
        entry
        for script in scripts_to_revert
        if made_by_run(chain, ledger, script.revision)
        for entry in declared_drops(script)
    ]
    older = [
        entry
        for script in scripts_to_revert
        if not made_by_run(chain, ledger, script.revision)
        for entry in declared_drops(script)
    ]
    own_values = {
        entry: condition
        for script in scripts_to_revert
        if made_by_run(chain, ledger, script.revision)
        for entry, condition in declared_values(script).items()
    }
    losses = count_rows(connection, older)
    others = (
        count_rows(connection, by_run, others_only=True, own_values=own_values) if by_run else ()
    )
    if losses or others:
        origin = ledger.from_revision if ledger else None
        listed = ", ".join(
            [f"{loss.object} ({loss.rows} rows)" for loss in losses]
            + [
                f"{loss.object} ({loss.rows} rows not written by the upgrade run that started "
                f"at {origin or 'base'})"
                for loss in others
            ]
        )
        raise DataLossRefusedError(
            f"rolling back to {target or 'base'} would drop data: {listed}",
            hint="back the data up first, then run again with --allow-data-loss",
            data_loss=(*losses, *others),
        )
    if not by_run:
        return ()
    assert ledger is not None
    because = f"every row was written by the upgrade run from {ledger.from_revision or 'base'}"
    return tuple(
        DroppedData(object=loss.object, rows=loss.rows, reason=because)
        for loss in count_rows(connection, by_run)
    )
