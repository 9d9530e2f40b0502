"""Schema changes that keep a large, busy table readable and writable while they run.

The revisions in `alembic/versions/` call these functions instead of repeating the same
lock-avoiding recipes in every file. Each function emits plain SQL through `alembic.op`, so the
same statements run online and appear in offline output (`alembic upgrade --sql`,
`raycesctl plan`), where psql can run them on its own.

Most recipes only help outside a transaction block: an index built `CONCURRENTLY`, a batched
backfill that commits between batches, a constraint validated in a transaction of its own. The
functions that need this say so; call them inside
`with op.get_context().autocommit_block():` (one block around several calls is enough; blocks
cannot be nested).

Every step can be run again after a failure part-way (a retried revision starts from the top):
columns are added `IF NOT EXISTS`, `NOT VALID` constraints are dropped and re-added in one
statement, and an index left INVALID by a failed concurrent build is dropped before the build.

This module is append-only. Old revisions call these functions and must keep emitting the same
SQL forever, so never change what an existing function does: add a new function (or a new
keyword argument whose default keeps the old behaviour) instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import context, op

from rayces.migrations.run_ledger import RECORD_TRANSACTION_PLPGSQL

IDENTIFIER_MAX_LENGTH = 63
"""PostgreSQL truncates longer names silently (NAMEDATALEN - 1); we refuse them instead."""

DEFAULT_BATCH_SIZE = 10_000
"""Rows updated per committed batch: large enough to be quick, small enough to lock briefly."""

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def identifier(name: str) -> str:
    """`name` unchanged if it is a plain lower-case SQL identifier of at most 63 characters.

    Revisions pass table, column, index and constraint names as literals; checking them here
    turns a typo or an over-long name into an error before any SQL runs, and makes quoting
    unnecessary.
    """
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a plain lower-case SQL identifier")
    if len(name) > IDENTIFIER_MAX_LENGTH:
        raise ValueError(
            f"{name!r} is {len(name)} characters long; PostgreSQL keeps only "
            f"{IDENTIFIER_MAX_LENGTH}, so give it a shorter explicit name"
        )
    return name


def _column_list(columns: Sequence[str]) -> str:
    if not columns:
        raise ValueError("at least one column is needed")
    return ", ".join(identifier(column) for column in columns)


def _sql_string(value: str) -> str:
    """A SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1)."""
    return "'" + value.replace("'", "''") + "'"


# --- the default organization --------------------------------------------------------------


@dataclass(frozen=True)
class DefaultOrganization:
    """The tenant that receives the rows that existed before the schema knew about tenants."""

    name: str
    subdomain: str


DEFAULT_ORGANIZATION = DefaultOrganization(name="Default Organization", subdomain="default")


def default_organization_settings() -> DefaultOrganization:
    """Name and subdomain of the default organization, as configured for this run.

    Kept for callers written before `configured_default_organization`, which revisions use: it
    checks the values strictly (`parse_default_organization`) and raises a usage error.

    In order: the Alembic `-x default_organization_name=...` and
    `-x default_organization_subdomain=...` arguments (which `raycesctl` and env.py fill from
    `RAYCES_DEFAULT_ORGANIZATION_NAME` and `RAYCES_DEFAULT_ORGANIZATION_SUBDOMAIN`; revisions
    never read the environment), then "Default Organization" and "default". Raises ValueError
    when the subdomain is not a DNS label or the name is blank, before anything is written.
    """
    arguments = context.get_x_argument(as_dictionary=True)
    name = arguments.get("default_organization_name") or DEFAULT_ORGANIZATION.name
    subdomain = arguments.get("default_organization_subdomain") or DEFAULT_ORGANIZATION.subdomain
    if not name.strip():
        raise ValueError("the default organization's name must not be blank")
    if not _SUBDOMAIN.match(subdomain):
        raise ValueError(
            f"default organization subdomain {subdomain!r} is not a DNS label: use 1 to 63 "
            "lower-case letters, digits and hyphens, not starting or ending with a hyphen "
            "(-x default_organization_subdomain=... or RAYCES_DEFAULT_ORGANIZATION_SUBDOMAIN)"
        )
    return DefaultOrganization(name=name, subdomain=subdomain)


def default_organization_id_sql(organization: DefaultOrganization) -> str:
    """A scalar subquery giving the default organization's id (NULL while it does not exist)."""
    return f"(SELECT id FROM organizations WHERE subdomain = {_sql_string(organization.subdomain)})"


def create_default_organization_if_needed(
    organization: DefaultOrganization, *, for_table: str
) -> None:
    """Insert the default organization when `for_table` has rows without an organization.

    Nothing is inserted into an empty database. An organization that already has the
    subdomain (created by an earlier revision, or by hand) is reused as it is. Runs inside or
    outside a transaction.
    """
    statement = sa.text(
        "INSERT INTO organizations (name, subdomain) "
        "SELECT :name, :subdomain "
        f"WHERE EXISTS (SELECT 1 FROM {identifier(for_table)} WHERE organization_id IS NULL) "
        "ON CONFLICT (subdomain) DO NOTHING"
    ).bindparams(name=organization.name, subdomain=organization.subdomain)
    op.execute(statement)


# --- data -----------------------------------------------------------------------------------


def backfill_in_batches(
    table: str,
    assignments: str,
    *,
    where: str,
    from_items: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    synchronous_commit: bool = True,
) -> None:
    """`UPDATE table SET assignments [FROM from_items] WHERE where`, committing every batch.

    With `synchronous_commit=False` the batches commit without waiting for their WAL to reach
    disk (the session's `synchronous_commit` is restored afterwards), which lets the next batch
    start at once. A server crash can then lose the last batches, never a part of one; they
    are redone by running the backfill again, and the step journal's row, committed
    synchronously after the backfill, is never durable before them.

    Batches are ranges of `table.id` walked through the primary key index, so each batch
    locks at most `batch_size` rows for a moment and the table never sees one long
    transaction. `where` must exclude rows already done (for example `... IS NULL`), which
    makes the backfill safe to run again. Runs as one `DO` block whose loop commits after each
    batch: call it inside an autocommit block (a `DO` block may only `COMMIT` when it is not
    inside a transaction block). Each batch is recorded in the run ledger, when a run is being
    recorded (`rayces.migrations.run_ledger`), so a rollback knows the rows are the run's own.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    table = identifier(table)
    from_clause = f" FROM {from_items}" if from_items else ""
    if synchronous_commit:
        op.execute(
            sa.text(
                f"""DO $backfill$
DECLARE
    batch_start bigint;
BEGIN
    SELECT min(id) INTO batch_start FROM {table};
    WHILE batch_start IS NOT NULL LOOP
        UPDATE {table} SET {assignments}{from_clause}
        WHERE {table}.id >= batch_start AND {table}.id < batch_start + {batch_size}
          AND ({where});
        {RECORD_TRANSACTION_PLPGSQL}
        COMMIT;
        SELECT min(id) INTO batch_start FROM {table} WHERE id >= batch_start + {batch_size};
    END LOOP;
END
$backfill$"""
            )
        )
        return
    op.execute(
        sa.text(
            f"""DO $backfill$
DECLARE
    batch_start bigint;
    previous_synchronous_commit text := current_setting('synchronous_commit');
BEGIN
    PERFORM set_config('synchronous_commit', 'off', false);
    SELECT min(id) INTO batch_start FROM {table};
    WHILE batch_start IS NOT NULL LOOP
        UPDATE {table} SET {assignments}{from_clause}
        WHERE {table}.id >= batch_start AND {table}.id < batch_start + {batch_size}
          AND ({where});
        {RECORD_TRANSACTION_PLPGSQL}
        COMMIT;
        SELECT min(id) INTO batch_start FROM {table} WHERE id >= batch_start + {batch_size};
    END LOOP;
    PERFORM set_config('synchronous_commit', previous_synchronous_commit, false);
END
$backfill$"""
        )
    )


# --- brief strong locks, retried -------------------------------------------------------------

LOCK_RETRY_TIMEOUT = "50ms"
"""How long one attempt of a lock-retried statement waits for its lock (`lock_timeout`)."""

LOCK_RETRY_ATTEMPTS = 300
"""Attempts before a lock-retried statement gives up and fails (about a minute in all)."""


def _execute_ddl(statement: str, *, lock_retries: bool, only_if: str | None = None) -> None:
    """Run `statement`; with `lock_retries`, in attempts that each wait at most 50 ms for locks.

    A statement that needs a strong lock queues, and every read and write of the table queues
    behind it, for as long as something else holds a conflicting lock: a long transaction, or
    autovacuum, which only gives way after `deadlock_timeout` (1 s). Retrying with a short
    `lock_timeout` (and a growing pause between attempts) caps that wait at 50 ms each time.
    `only_if` is a SQL condition checked before each attempt. Works inside or outside a
    transaction (each attempt is a subtransaction); the caller's `lock_timeout` is restored.
    """
    if not lock_retries:
        if only_if is None:
            op.execute(statement)
        else:
            op.execute(
                f"""DO $guarded_ddl$
BEGIN
    IF {only_if} THEN
        EXECUTE {_sql_string(statement)};
    END IF;
END
$guarded_ddl$"""
            )
        return
    op.execute(
        f"""DO $lock_retries$
DECLARE
    attempt integer := 0;
    previous_lock_timeout text := current_setting('lock_timeout');
BEGIN
    LOOP
        BEGIN
            IF NOT ({only_if or "true"}) THEN
                EXIT;
            END IF;
            PERFORM set_config('lock_timeout', {_sql_string(LOCK_RETRY_TIMEOUT)}, true);
            EXECUTE {_sql_string(statement)};
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            attempt := attempt + 1;
            IF attempt >= {LOCK_RETRY_ATTEMPTS} THEN
                RAISE;
            END IF;
            PERFORM pg_sleep(least(0.01 * attempt, 0.5));
        END;
    END LOOP;
    PERFORM set_config('lock_timeout', previous_lock_timeout, true);
END
$lock_retries$"""
    )


def lock_tables_briefly(tables: Sequence[str]) -> None:
    """`LOCK TABLE tables IN ACCESS EXCLUSIVE MODE`, in the order given, retried as one statement.

    For a revision that changes several tables in one transaction (policies, triggers): taking
    every lock up front, instead of statement by statement, means the revision never holds one
    table while it queues for another that a writer holds. List referencing tables before the
    tables they reference (children before parents): an insert holds its own table and then
    needs the tables its foreign keys point to, so locking in that order leaves no cycle for a
    deadlock. Each attempt waits at most 50 ms (`lock_retries`) and a failed attempt releases
    whatever it had taken, so writers wait at most that long for a revision that cannot get all
    of its locks. The locks last until the transaction ends: call it inside a transaction, first,
    and keep what follows short.
    """
    if not tables:
        raise ValueError("at least one table is needed")
    _execute_ddl(
        f"LOCK TABLE {', '.join(identifier(table) for table in tables)} IN ACCESS EXCLUSIVE MODE",
        lock_retries=True,
    )


# --- constraints ----------------------------------------------------------------------------


def add_check_then_validate(
    name: str, table: str, condition: str, *, lock_retries: bool = False
) -> None:
    """Add CHECK `condition` as `NOT VALID`, then validate it in a transaction of its own.

    Adding takes a brief ACCESS EXCLUSIVE lock and checks nothing; validating scans the table
    under SHARE UPDATE EXCLUSIVE, which lets reads and writes go on. Call it inside an
    autocommit block, or the two steps share one transaction and the lock is held throughout.
    """
    name, table = identifier(name), identifier(table)
    _execute_ddl(
        f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}, "
        f"ADD CONSTRAINT {name} CHECK ({condition}) NOT VALID",
        lock_retries=lock_retries,
    )
    op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


def add_check_not_valid(name: str, table: str, condition: str) -> None:
    """Add CHECK `condition` as `NOT VALID` (new rows are checked, old ones not yet).

    Pair with `validate_constraint` in an autocommit block. Runs in a transaction, so it can
    sit next to the `ADD COLUMN` it guards.
    """
    name, table = identifier(name), identifier(table)
    op.execute(
        f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}, "
        f"ADD CONSTRAINT {name} CHECK ({condition}) NOT VALID"
    )


def validate_constraint(name: str, table: str) -> None:
    """`VALIDATE CONSTRAINT`: a scan under SHARE UPDATE EXCLUSIVE; a no-op when already valid."""
    op.execute(f"ALTER TABLE {identifier(table)} VALIDATE CONSTRAINT {identifier(name)}")


def set_not_null_without_long_lock(table: str, column: str, *, lock_retries: bool = False) -> None:
    """`SET NOT NULL` without scanning the table under an ACCESS EXCLUSIVE lock.

    A validated `CHECK (column IS NOT NULL)` lets PostgreSQL (>= 12) skip the scan of
    `SET NOT NULL`; the check is validated under SHARE UPDATE EXCLUSIVE first and dropped
    afterwards. Call it inside an autocommit block.
    """
    table, column = identifier(table), identifier(column)
    check = identifier(f"chk_{table}_{column}_not_null")
    add_check_then_validate(check, table, f"{column} IS NOT NULL", lock_retries=lock_retries)
    _execute_ddl(
        f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL", lock_retries=lock_retries
    )
    _execute_ddl(
        f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}", lock_retries=lock_retries
    )


def add_foreign_key_then_validate(
    name: str,
    table: str,
    columns: Sequence[str],
    referred_table: str,
    referred_columns: Sequence[str],
    *,
    ondelete: str | None = None,
    lock_retries: bool = False,
) -> None:
    """Add a foreign key as `NOT VALID`, then validate it in a transaction of its own.

    A constraint of the same name is dropped in the same statement, so this also replaces an
    older key under the same name (the table is never without one) and can run again after a
    failure. Call it inside an autocommit block.
    """
    name, table = identifier(name), identifier(table)
    on_delete = ""
    if ondelete is not None:
        if ondelete.upper() not in {"CASCADE", "RESTRICT", "SET NULL", "SET DEFAULT"}:
            raise ValueError(f"unknown ON DELETE action {ondelete!r}")
        on_delete = f" ON DELETE {ondelete.upper()}"
    _execute_ddl(
        f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}, "
        f"ADD CONSTRAINT {name} FOREIGN KEY ({_column_list(columns)}) "
        f"REFERENCES {identifier(referred_table)} ({_column_list(referred_columns)})"
        f"{on_delete} NOT VALID",
        lock_retries=lock_retries,
    )
    validate_constraint(name, table)


# --- indexes --------------------------------------------------------------------------------


def drop_index_if_invalid(name: str) -> None:
    """Drop index `name` if a failed `CREATE INDEX CONCURRENTLY` left it INVALID.

    An invalid index has no data to scan, so the (non-concurrent) drop is immediate; a valid
    index is kept.
    """
    name = identifier(name)
    op.execute(
        f"""DO $drop_invalid$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index
               WHERE indexrelid = to_regclass({_sql_string(name)}) AND NOT indisvalid) THEN
        DROP INDEX {name};
    END IF;
END
$drop_invalid$"""
    )


def create_index_concurrently(
    name: str,
    table: str,
    columns: Sequence[str],
    *,
    unique: bool = False,
    where: str | None = None,
) -> None:
    """`CREATE [UNIQUE] INDEX CONCURRENTLY`: reads and writes go on while the index is built.

    An INVALID index of the same name (left by an earlier failed build) is dropped first; a
    valid one is kept (`IF NOT EXISTS`). Call it inside an autocommit block.
    """
    name, table = identifier(name), identifier(table)
    drop_index_if_invalid(name)
    predicate = f" WHERE {where}" if where else ""
    op.execute(
        f"CREATE {'UNIQUE ' if unique else ''}INDEX CONCURRENTLY IF NOT EXISTS {name} "
        f"ON {table} ({_column_list(columns)}){predicate}"
    )


def drop_index_concurrently(name: str) -> None:
    """`DROP INDEX CONCURRENTLY IF EXISTS`. Call it inside an autocommit block."""
    op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {identifier(name)}")


def add_unique_constraint_using_index(
    name: str, table: str, columns: Sequence[str], *, lock_retries: bool = False
) -> None:
    """A UNIQUE constraint whose index is built concurrently, then attached to the constraint.

    Attaching (`ADD CONSTRAINT ... UNIQUE USING INDEX`) needs only a brief lock. Index and
    constraint share `name`. Call it inside an autocommit block.
    """
    name, table = identifier(name), identifier(table)
    create_index_concurrently(name, table, columns, unique=True)
    if lock_retries:
        _execute_ddl(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}",
            lock_retries=True,
            only_if=f"NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = {_sql_string(name)} "
            f"AND conrelid = {_sql_string(table)}::regclass)",
        )
        return
    op.execute(
        f"""DO $attach_unique$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = {_sql_string(name)}
                     AND conrelid = {_sql_string(table)}::regclass) THEN
        ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name};
    END IF;
END
$attach_unique$"""
    )


# --- column types ---------------------------------------------------------------------------


def timestamps_to_timestamptz(table: str, columns: Sequence[str]) -> None:
    """Turn `timestamp` columns holding UTC wall-clock times into `timestamptz(6)`.

    With the session time zone set to UTC the values are already right and PostgreSQL
    (>= 12) changes only the catalog: no table rewrite, no index rebuild. The ACCESS EXCLUSIVE
    lock is held for an instant. Runs inside a transaction (`SET LOCAL` ends with it).
    """
    _retype_timestamps(table, columns, "timestamp(6) with time zone")


def timestamptz_to_timestamps(table: str, columns: Sequence[str]) -> None:
    """The reverse of `timestamps_to_timestamptz`: UTC wall-clock `timestamp(6)`, no rewrite."""
    _retype_timestamps(table, columns, "timestamp(6) without time zone")


def _retype_timestamps(table: str, columns: Sequence[str], new_type: str) -> None:
    table = identifier(table)
    op.execute("SET LOCAL timezone = 'UTC'")
    alterations = ", ".join(
        f"ALTER COLUMN {identifier(column)} TYPE {new_type}" for column in columns
    )
    op.execute(f"ALTER TABLE {table} {alterations}")


# --- the default organization, validated and remembered -------------------------------------

_SUBDOMAIN_EXACT = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NAME_MAX_LENGTH = 255

DEFAULT_ORGANIZATION_NAME_ARGUMENT = "default_organization_name"
DEFAULT_ORGANIZATION_SUBDOMAIN_ARGUMENT = "default_organization_subdomain"


def parse_default_organization(arguments: Mapping[str, str]) -> DefaultOrganization:
    """The default organization named by `arguments` (the `-x` values), checked strictly.

    A key that is absent means the documented default ("Default Organization", "default"); a key
    given with an empty value is an error, never a silent fallback. The subdomain must be a DNS
    label as a whole (`fullmatch`: a trailing newline is refused), the name must have a visible
    character and no line break.

    :raises UsageError: a value is invalid; the message names the argument.
    """
    from rayces.migrations.errors import UsageError

    name = arguments.get(DEFAULT_ORGANIZATION_NAME_ARGUMENT, DEFAULT_ORGANIZATION.name)
    subdomain = arguments.get(
        DEFAULT_ORGANIZATION_SUBDOMAIN_ARGUMENT, DEFAULT_ORGANIZATION.subdomain
    )
    if not name.strip() or any(character in name for character in "\r\n\0"):
        raise UsageError(
            f"default organization name {name!r} is blank or spans lines",
            hint="give a one-line name with --default-organization-name "
            f"(-x {DEFAULT_ORGANIZATION_NAME_ARGUMENT}=...), or leave it out for "
            f"{DEFAULT_ORGANIZATION.name!r}",
        )
    if len(name) > _NAME_MAX_LENGTH:
        raise UsageError(
            f"default organization name is {len(name)} characters long",
            hint=f"give at most {_NAME_MAX_LENGTH} characters",
        )
    if not _SUBDOMAIN_EXACT.fullmatch(subdomain):
        raise UsageError(
            f"default organization subdomain {subdomain!r} is not a DNS label",
            hint="use 1 to 63 lower-case letters, digits and hyphens, not starting or ending "
            "with a hyphen (--default-organization-subdomain, "
            f"-x {DEFAULT_ORGANIZATION_SUBDOMAIN_ARGUMENT}=...)",
        )
    return DefaultOrganization(name=name, subdomain=subdomain)


def configured_default_organization() -> DefaultOrganization:
    """`parse_default_organization` of this run's `-x` arguments. The environment is read once,
    by the caller (`raycesctl`'s settings, or `alembic/env.py` for plain Alembic), and arrives
    here as `-x` values."""
    return parse_default_organization(dict(context.get_x_argument(as_dictionary=True)))


# --- writers that do not know about organizations (expand/contract) -------------------------

COMPATIBILITY_SCHEMA = "rayces_compat"
"""Where the default organization is remembered and the legacy-write switch lives."""

DEFAULT_ORGANIZATION_TABLE = f"{COMPATIBILITY_SCHEMA}.default_organization"
ASSIGN_ORGANIZATION_FUNCTION = f"{COMPATIBILITY_SCHEMA}.assign_default_organization"

DEFAULT_ORGANIZATION_VALUE = (
    f"organization_id = (SELECT organization_id FROM {DEFAULT_ORGANIZATION_TABLE})"
)
"""The value `add_organization_column` gives every row, and the legacy-write trigger every row
written without one: as a condition on a row of the table, for a revision's `upgrade_values`."""


def legacy_write_trigger_name(table: str) -> str:
    return identifier(f"trg_{identifier(table)}_default_organization")


def create_compatibility_schema() -> None:
    """The `rayces_compat` schema: the remembered default organization and the trigger function
    that gives rows inserted without an `organization_id` to it while legacy writes are on.

    Idempotent; runs in a transaction. The function is `SECURITY DEFINER` with a fixed
    `search_path`, so a writer needs no privilege on the schema; it only fills a missing
    `organization_id`, and row-level security still checks the row it fills.
    """
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {COMPATIBILITY_SCHEMA}")
    op.execute(
        f"""CREATE TABLE IF NOT EXISTS {DEFAULT_ORGANIZATION_TABLE} (
    singleton boolean DEFAULT true NOT NULL,
    organization_id bigint NOT NULL,
    accepts_legacy_writes boolean DEFAULT true NOT NULL,
    CONSTRAINT default_organization_pkey PRIMARY KEY (singleton),
    CONSTRAINT chk_default_organization_singleton CHECK (singleton),
    CONSTRAINT fk_default_organization_organization FOREIGN KEY (organization_id)
        REFERENCES organizations (id) ON DELETE CASCADE
)"""
    )
    op.execute(
        f"""CREATE OR REPLACE FUNCTION {ASSIGN_ORGANIZATION_FUNCTION}() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog
    AS $assign$
BEGIN
    IF NEW.organization_id IS NULL THEN
        NEW.organization_id := (SELECT organization_id FROM {DEFAULT_ORGANIZATION_TABLE}
                                WHERE accepts_legacy_writes);
    END IF;
    RETURN NEW;
END
$assign$"""
    )


def drop_compatibility_schema() -> None:
    """Remove what `create_compatibility_schema` made (the triggers must be gone first)."""
    op.execute(f"DROP FUNCTION IF EXISTS {ASSIGN_ORGANIZATION_FUNCTION}()")
    op.execute(f"DROP TABLE IF EXISTS {DEFAULT_ORGANIZATION_TABLE}")
    op.execute(f"DROP SCHEMA IF EXISTS {COMPATIBILITY_SCHEMA}")


def remember_default_organization(organization: DefaultOrganization, *, for_table: str) -> None:
    """Create and remember the default organization when `for_table` has rows and none is
    remembered yet; otherwise keep the remembered one, whatever `organization` says.

    An organization that already has the subdomain is reused. So a later revision, run without
    the options an earlier one was given, still uses the organization the earlier one chose.
    Runs in a transaction, after `create_compatibility_schema`.
    """
    table = identifier(for_table)
    needed = (
        f"NOT EXISTS (SELECT 1 FROM {DEFAULT_ORGANIZATION_TABLE}) "
        f"AND EXISTS (SELECT 1 FROM {table})"
    )
    op.execute(
        sa.text(
            "INSERT INTO organizations (name, subdomain) SELECT :name, :subdomain "
            f"WHERE {needed} ON CONFLICT (subdomain) DO NOTHING"
        ).bindparams(name=organization.name, subdomain=organization.subdomain)
    )
    op.execute(
        sa.text(
            f"INSERT INTO {DEFAULT_ORGANIZATION_TABLE} (organization_id) "
            f"SELECT id FROM organizations WHERE subdomain = :subdomain AND {needed}"
        ).bindparams(subdomain=organization.subdomain)
    )


def add_organization_column(table: str) -> None:
    """Add `table.organization_id` (nullable), with every existing row in the remembered
    default organization, and route legacy writes to it.

    The column is added with the organization's id as a constant default, which PostgreSQL
    (>= 11) stores in the catalog: no row is touched, and existing rows keep reading that id
    after the default is dropped again in the same statement batch. A BEFORE INSERT trigger then
    fills the column of rows written without it (the old application's). With no organization
    remembered (an empty table) the column is plainly added. Skipped when the column exists.
    Runs in a transaction (the ACCESS EXCLUSIVE lock lasts until it commits: keep it short).
    """
    table = identifier(table)
    trigger = legacy_write_trigger_name(table)
    op.execute(
        f"""DO $add_organization$
DECLARE
    default_id bigint := (SELECT organization_id FROM {DEFAULT_ORGANIZATION_TABLE});
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                   WHERE attrelid = {_sql_string(table)}::regclass
                     AND attname = 'organization_id' AND NOT attisdropped) THEN
        EXECUTE format('ALTER TABLE {table} ADD COLUMN organization_id bigint DEFAULT %s',
                       coalesce(default_id::text, 'NULL'));
        ALTER TABLE {table} ALTER COLUMN organization_id DROP DEFAULT;
    END IF;
END
$add_organization$"""
    )
    op.execute(
        f"CREATE OR REPLACE TRIGGER {trigger} BEFORE INSERT ON {table} FOR EACH ROW "
        f"WHEN (NEW.organization_id IS NULL) EXECUTE FUNCTION {ASSIGN_ORGANIZATION_FUNCTION}()"
    )


def drop_organization_column(table: str) -> None:
    """The reverse of `add_organization_column` (and of whatever keys use the column): the
    trigger and the column go, when they exist. Runs in a transaction."""
    table = identifier(table)
    op.execute(f"DROP TRIGGER IF EXISTS {legacy_write_trigger_name(table)} ON {table}")
    op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS organization_id")


def backfill_in_batches_if_needed(
    table: str,
    assignments: str,
    *,
    where: str,
    needed_if: str,
    from_items: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> None:
    """`backfill_in_batches`, run only when the SQL condition `needed_if` holds.

    For a backfill that is usually unnecessary (the column default already gave every row its
    value) but must still be right when it is not: `needed_if` is cheap compared with walking
    the table in batches. Call it inside an autocommit block.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    table = identifier(table)
    from_clause = f" FROM {from_items}" if from_items else ""
    op.execute(
        sa.text(
            f"""DO $backfill$
DECLARE
    batch_start bigint;
    previous_synchronous_commit text := current_setting('synchronous_commit');
BEGIN
    IF NOT ({needed_if}) THEN
        RETURN;
    END IF;
    -- As backfill_in_batches(synchronous_commit=False): a lost batch is redone by a rerun.
    PERFORM set_config('synchronous_commit', 'off', false);
    SELECT min(id) INTO batch_start FROM {table};
    WHILE batch_start IS NOT NULL LOOP
        UPDATE {table} SET {assignments}{from_clause}
        WHERE {table}.id >= batch_start AND {table}.id < batch_start + {batch_size}
          AND ({where});
        {RECORD_TRANSACTION_PLPGSQL}
        COMMIT;
        SELECT min(id) INTO batch_start FROM {table} WHERE id >= batch_start + {batch_size};
    END LOOP;
    PERFORM set_config('synchronous_commit', previous_synchronous_commit, false);
END
$backfill$"""
        )
    )


def drop_unique_constraint_and_index(name: str, table: str) -> None:
    """Drop a UNIQUE constraint made by `add_unique_constraint_using_index`, and its index if a
    run stopped before attaching it. Runs in a transaction."""
    name, table = identifier(name), identifier(table)
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
    op.execute(f"DROP INDEX IF EXISTS {name}")


def vacuum_after_backfill(table: str) -> None:
    """`VACUUM (ANALYZE) table` right after a backfill that updated most of its rows.

    A backfill leaves a dead version of every row it updated, which soon starts autovacuum on
    the table. The next `ALTER TABLE` on it then queues behind autovacuum for
    `deadlock_timeout` (1 s by default) before autovacuum gives way, and every read and write of
    the table queues behind that ALTER meanwhile. Vacuuming at once, unthrottled and under a
    lock that lets reads and writes go on, leaves autovacuum nothing to do. Call it inside an
    autocommit block (VACUUM refuses a transaction block).
    """
    op.execute(f"VACUUM (ANALYZE) {identifier(table)}")
