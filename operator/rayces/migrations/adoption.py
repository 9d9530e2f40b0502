"""Adopting a database the Rails application made, and keeping Rails' `schema_migrations` in step.

The revision ids of this project are the Rails migration versions. A database Rails created has
no `alembic_version`, but Rails' own record, `schema_migrations`. When its versions are exactly a
prefix of the revision chain, the live schema is compared with what that revision produces: a
scratch database on the same server is migrated to it, both are dumped by `pg_dump` and
normalized as `raycesctl schema dump` does (`rayces.migrations.schema_dump`), and the dumps are
compared object by object (tables, columns with their types, nullability and defaults, indexes,
constraints, sequences, functions, triggers, policies). Only a match is recorded in
`alembic_version`; anything else is refused with each difference named, before anything changes.

One difference is Rails' own spelling of the baseline, not a difference: Rails names a foreign
key `fk_rails_<hash>`, where the baseline revision names it (`fk_likes_user`). A Rails-named
foreign key with exactly the definition of a missing one is accepted, and renamed to the
revision's name when the database is adopted, because later revisions replace it by that name.

From then on every revision applied inserts its version into `schema_migrations` and every one
reverted deletes it, in the revision's own transaction (`keep_rails_record_in_step`, installed by
alembic/env.py), so `rails db:migrate:status` agrees with `raycesctl status`.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rayces.migrations.errors import AdoptionRefusedError, PermissionDeniedError

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext, MigrationInfo
    from alembic.script import ScriptDirectory
    from sqlalchemy import Connection

log = logging.getLogger(__name__)

#: Rails' record of the migrations it ran, and its own bookkeeping table: neither is schema.
RAILS_VERSION_TABLE = "schema_migrations"
RAILS_METADATA_TABLE = "ar_internal_metadata"

#: How Rails 7.1 names a foreign key it was given no name for.
_RAILS_FOREIGN_KEY_NAME = re.compile(r"fk_rails_[0-9a-f]{10}")

#: The most differences a refusal lists; the message says how many more there are.
_LISTED_DIFFERENCES = 40


@dataclass(frozen=True)
class RailsRecord:
    """What Rails' `schema_migrations` says, read against the revision chain.

    :param versions: every version it holds, in order.
    :param revision: the newest revision of the chain it holds (`None`: none of them).
    :param rails_only_versions: versions newer than the whole chain: migrations only the Rails
        application has. They are reported, never silently ignored, and do not stop a migrate.
    :param problems: what makes the record unusable for adoption: a version unknown to the
        chain that is not newer than all of it, or a revision missing before a later one.
    """

    versions: tuple[str, ...]
    revision: str | None
    rails_only_versions: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def check_rails_versions(versions: Sequence[str], chain: Sequence[str]) -> RailsRecord:
    """Read `versions` (Rails' `schema_migrations`) against `chain` (revision ids, oldest first).

    The chain's revisions among them must be exactly its first N, with no gap.
    """
    position = {revision: index for index, revision in enumerate(chain)}
    ordered = tuple(sorted(versions, key=_version_order))
    known = sorted((v for v in ordered if v in position), key=position.__getitem__)
    newest = _version_order(chain[-1]) if chain else (0, 0, "")
    unknown = [v for v in ordered if v not in position]
    rails_only = tuple(v for v in unknown if _version_order(v) > newest)
    problems = [
        f"version {v}: not a revision of this chain (and older than its head {chain[-1]})"
        for v in unknown
        if v not in rails_only and chain
    ]
    for index, version in enumerate(known):
        if version != chain[index]:
            problems.append(
                f"version {chain[index]}: missing from schema_migrations, "
                f"but the later {version} is recorded"
            )
            break
    if ordered and not known and chain:
        problems.append(f"version {chain[0]}: missing (the revision chain starts with it)")
    return RailsRecord(
        versions=ordered,
        revision=known[-1] if known else None,
        rails_only_versions=rails_only,
        problems=tuple(problems),
    )


def _version_order(version: str) -> tuple[int, int, str]:
    """Rails versions are timestamps: compare them as numbers; anything else sorts first."""
    return (1, int(version), version) if version.isdigit() else (0, 0, version)


def rails_versions(connection: Connection) -> tuple[str, ...] | None:
    """The versions in `schema_migrations` (the one `search_path` finds), `None` if none exists.

    Leaves the read's transaction open: the caller commits or goes on in it.
    """
    from sqlalchemy import text

    if not _has_rails_record(connection):
        return None
    rows = connection.execute(text(f"SELECT version FROM {RAILS_VERSION_TABLE}"))
    return tuple(str(row[0]) for row in rows)


def _has_rails_record(connection: Connection) -> bool:
    from sqlalchemy import text

    found = connection.scalar(text("SELECT to_regclass(:name)"), {"name": RAILS_VERSION_TABLE})
    return found is not None


def read_rails_record(connection: Connection, chain: Sequence[str]) -> RailsRecord | None:
    """Rails' record read against `chain`; `None` where there is no `schema_migrations`.

    Ends the read's transaction, so the connection can be handed to Alembic afterwards.
    """
    versions = rails_versions(connection)
    connection.commit()
    return None if versions is None else check_rails_versions(versions, chain)


# --- The structural comparison ---------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column as `pg_dump` declares it."""

    type: str
    not_null: bool
    default: str | None


@dataclass
class SchemaShape:
    """A normalized dump taken apart into the objects a comparison names."""

    tables: dict[str, dict[str, Column]] = field(default_factory=dict)
    #: (table, constraint name) -> its definition
    constraints: dict[tuple[str, str], str] = field(default_factory=dict)
    #: index name -> its CREATE INDEX statement
    indexes: dict[str, str] = field(default_factory=dict)
    #: any other statement (sequence, function, trigger, policy, ...) by its first line
    others: dict[str, str] = field(default_factory=dict)


_CREATE_TABLE = re.compile(r"CREATE (?:UNLOGGED )?TABLE (?P<table>\S+) \($")
_SET_DEFAULT = re.compile(
    r"ALTER TABLE (?:ONLY )?(?P<table>\S+) ALTER COLUMN (?P<column>\S+) SET DEFAULT (?P<d>.*);$"
)
_ADD_CONSTRAINT = re.compile(
    r"ALTER TABLE (?:ONLY )?(?P<table>\S+)\s+ADD CONSTRAINT (?P<name>\S+) (?P<d>.*);$", re.S
)
_CREATE_INDEX = re.compile(r"CREATE (?:UNIQUE )?INDEX (?P<name>\S+) ON ")


def schema_shape(dump: str) -> SchemaShape:
    """The objects of a dump normalized by `schema_dump.normalize_dump`."""
    from rayces.migrations.schema_dump import split_statements

    shape = SchemaShape()
    for statement in split_statements(dump):
        first, _, rest = statement.partition("\n")
        if match := _CREATE_TABLE.match(first):
            columns = shape.tables.setdefault(_short(match["table"]), {})
            for line in rest.splitlines()[:-1]:  # the last line is `);` or `) ...;`
                _add_table_element(shape, _short(match["table"]), columns, line)
        elif match := _SET_DEFAULT.match(statement):
            table, name = _short(match["table"]), _unquote(match["column"])
            column = shape.tables.setdefault(table, {}).get(name)
            if column is not None:
                shape.tables[table][name] = Column(column.type, column.not_null, match["d"])
        elif match := _ADD_CONSTRAINT.match(statement):
            definition = " ".join(match["d"].split())
            shape.constraints[(_short(match["table"]), _unquote(match["name"]))] = definition
        elif match := _CREATE_INDEX.match(statement):
            shape.indexes[_unquote(match["name"])] = " ".join(statement.split())
        elif not statement.startswith("INSERT INTO"):
            shape.others[first.rstrip(";")] = statement
    return shape


def _add_table_element(
    shape: SchemaShape, table: str, columns: dict[str, Column], line: str
) -> None:
    text = line.strip().rstrip(",")
    if text.startswith("CONSTRAINT "):
        _, name, definition = text.split(" ", 2)
        shape.constraints[(table, _unquote(name))] = definition
        return
    name, rest = _split_name(text)
    not_null = rest.endswith(" NOT NULL")
    if not_null:
        rest = rest[: -len(" NOT NULL")]
    column_type, _, default = rest.partition(" DEFAULT ")
    columns[name] = Column(column_type, not_null, default or None)


def _split_name(text: str) -> tuple[str, str]:
    if text.startswith('"'):
        end = text.index('"', 1)
        while text.startswith('""', end):
            end = text.index('"', end + 2)
        return text[1:end].replace('""', '"'), text[end + 1 :].strip()
    name, _, rest = text.partition(" ")
    return name, rest


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _short(name: str) -> str:
    """A table's name as a person writes it: without the `public.` schema."""
    return name.removeprefix("public.")


@dataclass(frozen=True)
class SchemaComparison:
    """Each difference between a live schema and the expected one, and the Rails-named foreign
    keys that match an expected one: (table, Rails' name, the revision's name)."""

    differences: tuple[str, ...]
    renames: tuple[tuple[str, str, str], ...] = ()


def compare_schemas(live: SchemaShape, expected: SchemaShape) -> SchemaComparison:
    """What differs between `live` and `expected`, as short lines naming each object."""
    differences: list[str] = []
    for table in sorted(expected.tables.keys() - live.tables.keys()):
        differences.append(f"table {table}: missing")
    for table in sorted(live.tables.keys() - expected.tables.keys()):
        differences.append(f"table {table}: unexpected")
    for table in sorted(expected.tables.keys() & live.tables.keys()):
        differences += _column_differences(table, live.tables[table], expected.tables[table])
    renames = _rails_foreign_keys(live.constraints, expected.constraints)
    renamed = {(table, rails) for table, rails, _ in renames}
    matched = {(table, ours) for table, _, ours in renames}
    live_constraints = {k: v for k, v in live.constraints.items() if k not in renamed}
    for key in sorted(expected.constraints.keys() | live_constraints.keys()):
        table, name = key
        if key in matched:
            continue
        differences += _object_difference(
            f"constraint {name} on {table}",
            live_constraints.get(key),
            expected.constraints.get(key),
        )
    for name in sorted(expected.indexes.keys() | live.indexes.keys()):
        differences += _object_difference(
            f"index {name}", live.indexes.get(name), expected.indexes.get(name)
        )
    for statement in sorted(expected.others.keys() | live.others.keys()):
        differences += _object_difference(
            statement, live.others.get(statement), expected.others.get(statement)
        )
    return SchemaComparison(tuple(differences), tuple(renames))


def _column_differences(
    table: str, live: Mapping[str, Column], expected: Mapping[str, Column]
) -> list[str]:
    found: list[str] = []
    for name in sorted(expected.keys() - live.keys()):
        found.append(f"{table}.{name}: missing")
    for name in sorted(live.keys() - expected.keys()):
        found.append(f"{table}.{name}: unexpected")
    for name in sorted(expected.keys() & live.keys()):
        have, want = live[name], expected[name]
        if have.type != want.type:
            found.append(
                f"{table}.{name}: type {_readable_type(have.type)}, "
                f"expected {_readable_type(want.type)}"
            )
        if have.not_null != want.not_null:
            found.append(
                f"{table}.{name}: {_nullability(have.not_null)}, "
                f"expected {_nullability(want.not_null)}"
            )
        if have.default != want.default:
            found.append(
                f"{table}.{name}: default {have.default or 'none'}, "
                f"expected {want.default or 'none'}"
            )
    return found


def _nullability(not_null: bool) -> str:
    return "NOT NULL" if not_null else "nullable"


def _readable_type(column_type: str) -> str:
    """`character varying(255)` as `varchar(255)`, `timestamp(6) without time zone` as
    `timestamp(6)`, `... with time zone` as `timestamptz(6)`."""
    readable = column_type.replace("character varying", "varchar")
    readable = re.sub(r"^timestamp(\(\d+\))? with time zone", r"timestamptz\1", readable)
    return re.sub(r"^timestamp(\(\d+\))? without time zone", r"timestamp\1", readable)


def _object_difference(what: str, live: str | None, expected: str | None) -> list[str]:
    if live == expected:
        return []
    if live is None:
        return [f"{what}: missing"]
    if expected is None:
        return [f"{what}: unexpected"]
    return [f"{what}: is `{_one_line(live)}`, expected `{_one_line(expected)}`"]


def _one_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _rails_foreign_keys(
    live: Mapping[tuple[str, str], str], expected: Mapping[tuple[str, str], str]
) -> list[tuple[str, str, str]]:
    """Rails-named foreign keys in `live` that are, definition for definition, an expected one
    `live` lacks under the expected name: (table, Rails' name, expected name)."""
    spare = {
        key: definition
        for key, definition in live.items()
        if key not in expected and _RAILS_FOREIGN_KEY_NAME.fullmatch(key[1])
    }
    renames: list[tuple[str, str, str]] = []
    for (table, name), definition in sorted(expected.items()):
        if (table, name) in live or not definition.startswith("FOREIGN KEY"):
            continue
        for key, candidate in sorted(spare.items()):
            if key[0] == table and candidate == definition:
                renames.append((table, key[1], name))
                del spare[key]
                break
    return renames


# --- Dumps of the live database and of the revision -----------------------------------------


def live_schema_dump(url: str) -> str:
    """The normalized schema of the database at `url`, without Rails' and Alembic's tables."""
    return _dump(url, exclude_tables=(RAILS_VERSION_TABLE, RAILS_METADATA_TABLE, "alembic_version"))


def expected_schema_dump(
    url: str,
    revision: str,
    *,
    x_arguments: Mapping[str, str] | None = None,
    script_location: Path | None = None,
) -> str:
    """The normalized schema `revision` produces: a scratch database on the server of `url` is
    migrated to it, dumped, and dropped.

    :raises PermissionDeniedError: the role may not create a database (CREATEDB).
    """
    from alembic import command

    from rayces.migrations.database import connect, create_database_engine
    from rayces.migrations.scripts import build_config

    with _scratch_database(url) as scratch, _quiet_alembic():
        config = build_config(location=script_location, x_arguments=x_arguments)
        engine = create_database_engine(scratch)
        try:
            with connect(engine) as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                connection.commit()
        finally:
            engine.dispose()
        return _dump(scratch, exclude_tables=("alembic_version",))


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic's "Running upgrade" lines for the scratch database are not the run's own."""
    logger = logging.getLogger("alembic.runtime.migration")
    was = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was


def _dump(url: str, *, exclude_tables: Sequence[str]) -> str:
    from rayces.migrations.database import connection_parameters
    from rayces.migrations.schema_dump import normalize_dump, passfile, run_pg_dump

    parameters = connection_parameters(url)
    with passfile(parameters.get("password")) as path:
        without_password = parameters.with_values({"password": None, "passfile": path})
        return normalize_dump(
            run_pg_dump(without_password.conninfo(), exclude_tables=exclude_tables)
        )


@contextmanager
def _scratch_database(url: str) -> Iterator[str]:
    """A new, empty database on the server of `url`, dropped afterwards (even if in use)."""
    import psycopg
    from psycopg import sql

    from rayces.migrations.database import connection_parameters

    parameters = connection_parameters(url)
    name = f"rayces_adoption_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(parameters.conninfo(), autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.errors.InsufficientPrivilege as error:
        raise PermissionDeniedError(
            f"cannot compare the schema with Rails' record: {str(error).strip()}",
            hint="adoption builds the expected schema in a scratch database: grant the "
            "migrating role CREATEDB, or compare by hand and record the revision with "
            "`raycesctl stamp REV`",
        ) from None
    try:
        yield parameters.with_values({"dbname": name}).conninfo()
    finally:
        with psycopg.connect(parameters.conninfo(), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# --- Adoption ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Adoption:
    """A database adopted from Rails' record: the revision recorded, the foreign keys renamed
    from Rails' names, and the versions only Rails knows."""

    revision: str
    renamed: tuple[tuple[str, str, str], ...] = ()
    rails_only_versions: tuple[str, ...] = ()


def adopt_rails_record(
    connection: Connection,
    url: str,
    scripts: ScriptDirectory,
    *,
    x_arguments: Mapping[str, str] | None = None,
    script_location: Path | None = None,
) -> Adoption | None:
    """Record the revision Rails' `schema_migrations` claims, once the schema matches it.

    Call it with the migration lock held, when `alembic_version` records nothing. Returns
    `None` when there is nothing to adopt (no `schema_migrations`, or no version in it).

    :param connection: the migration connection, outside a transaction.
    :param url: the database's connection string (for `pg_dump` and the scratch database).
    :param scripts: the revision scripts.
    :param x_arguments: `-x` values for the revisions the scratch database runs.
    :param script_location: directory with env.py and versions/; the packaged scripts by default.
    :raises AdoptionRefusedError: unknown versions, a gap, or a schema that differs; each is
        listed, and nothing was changed.
    :raises PermissionDeniedError: the role may not create the scratch database.
    """
    record = read_rails_record(connection, _chain_ids(scripts))
    if record is None or not record.versions:
        return None
    if record.problems or record.revision is None:
        raise _refusal(
            "its versions are not a prefix of the revision chain", record, record.problems
        )
    expected = expected_schema_dump(
        url, record.revision, x_arguments=x_arguments, script_location=script_location
    )
    comparison = compare_schemas(schema_shape(live_schema_dump(url)), schema_shape(expected))
    if comparison.differences:
        subject = f"the schema differs from revision {record.revision}"
        raise _refusal(subject, record, comparison.differences)
    _record_adoption(connection, scripts, record.revision, comparison.renames)
    return Adoption(record.revision, comparison.renames, record.rails_only_versions)


def _refusal(subject: str, record: RailsRecord, differences: Sequence[str]) -> AdoptionRefusedError:
    listed = list(differences[:_LISTED_DIFFERENCES])
    if len(differences) > len(listed):
        listed.append(f"... and {len(differences) - len(listed)} more")
    claimed = (
        ", ".join(record.versions)
        if len(record.versions) <= 3
        else (f"{record.versions[0]} ... {record.versions[-1]} ({len(record.versions)} versions)")
    )
    return AdoptionRefusedError(
        f"cannot adopt the database Rails made (schema_migrations: {claimed}): "
        f"{subject}: {'; '.join(listed)}",
        hint="nothing was changed; bring the schema and schema_migrations in line with a "
        "revision and run again, or, if you know the revision the schema really is at, "
        "record it with `raycesctl stamp REV`",
        differences=tuple(differences),
    )


def _record_adoption(
    connection: Connection,
    scripts: ScriptDirectory,
    revision: str,
    renames: Sequence[tuple[str, str, str]],
) -> None:
    """Rename Rails' foreign keys and record `revision` in `alembic_version`, in one
    transaction."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import text

    def quoted(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    for table, rails_name, name in renames:
        log.info("renaming Rails' foreign key %s on %s to %s", rails_name, table, name)
        connection.execute(
            text(
                f"ALTER TABLE {quoted(table)} RENAME CONSTRAINT {quoted(rails_name)} "
                f"TO {quoted(name)}"
            )
        )
    MigrationContext.configure(connection).stamp(scripts, revision)
    connection.commit()


# --- Keeping Rails' record in step ------------------------------------------------------------


def keep_rails_record_in_step(
    *, ctx: MigrationContext, step: MigrationInfo, heads: set[str], run_args: dict[str, Any]
) -> None:
    """Alembic's `on_version_apply` callback: mirror each revision in `schema_migrations`.

    It runs inside the revision's transaction, right after Alembic updated `alembic_version`, so
    both records change together or not at all. A stamp sets Rails' record to the stamped
    revision's prefix of the chain. Versions only Rails knows are left alone. Offline (`plan`)
    and on a database without `schema_migrations` it does nothing.
    """
    connection = ctx.connection
    if ctx.as_sql or connection is None or not _has_rails_record(connection):
        return
    if step.is_stamp:
        script = ctx.script
        if script is not None:
            sync_rails_record(connection, _chain_ids(script), next(iter(heads), None))
        return
    revision = step.up_revision_id
    if revision is None:
        return
    if step.is_upgrade:
        _insert_versions(connection, [revision])
    else:
        _delete_versions(connection, [revision])


def sync_rails_record(connection: Connection, chain: Sequence[str], revision: str | None) -> None:
    """Make `schema_migrations` hold exactly the chain's revisions up to `revision` (`None`:
    none), keeping the versions the chain does not have."""
    count = chain.index(revision) + 1 if revision in chain else 0
    _insert_versions(connection, chain[:count])
    _delete_versions(connection, chain[count:])


def _insert_versions(connection: Connection, versions: Sequence[str]) -> None:
    from sqlalchemy import text

    for version in versions:
        connection.execute(
            text(
                f"INSERT INTO {RAILS_VERSION_TABLE} (version) VALUES (:version) "
                "ON CONFLICT DO NOTHING"
            ),
            {"version": version},
        )


def _delete_versions(connection: Connection, versions: Sequence[str]) -> None:
    from sqlalchemy import bindparam, text

    if versions:
        connection.execute(
            text(f"DELETE FROM {RAILS_VERSION_TABLE} WHERE version IN :versions").bindparams(
                bindparam("versions", expanding=True)
            ),
            {"versions": list(versions)},
        )


def _chain_ids(scripts: ScriptDirectory) -> list[str]:
    return [script.revision for script in reversed(list(scripts.walk_revisions("base", "heads")))]


__all__ = [
    "RAILS_METADATA_TABLE",
    "RAILS_VERSION_TABLE",
    "Adoption",
    "RailsRecord",
    "SchemaComparison",
    "adopt_rails_record",
    "check_rails_versions",
    "compare_schemas",
    "expected_schema_dump",
    "keep_rails_record_in_step",
    "live_schema_dump",
    "read_rails_record",
    "schema_shape",
    "sync_rails_record",
]
