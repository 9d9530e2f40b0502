"""The SQLAlchemy models describe exactly the schema the Alembic revisions build.

The models (`rayces.schema`) and the revisions (`alembic/versions/`) are written separately from
the same design contract, and the revisions never import the models. Two checks keep them equal:

1. Alembic's autogenerate comparison, with types and server defaults, finds nothing to migrate.
2. Autogenerate does not look at CHECK or EXCLUDE constraints, index methods and predicates, or
   the precision of a type. So the models also create their tables in a scratch schema of the
   migrated database, and PostgreSQL's own rendering of every column, constraint and index
   (`format_type`, `pg_get_constraintdef`, `pg_get_indexdef`) must be the same in both schemas.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, text

from rayces.schema import Base

ALEMBIC_VERSION_TABLE = "alembic_version"
MODEL_SCHEMA = "models_ddl"


def _is_described_by_models(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # Alembic's own bookkeeping table is created by Alembic, not described by the models.
    # Nothing else needs filtering: SQLAlchemy does not report the indexes behind the two
    # exclusion constraints as indexes, and autogenerate does not compare EXCLUDE constraints
    # (the catalog test below does).
    return not (type_ == "table" and name == ALEMBIC_VERSION_TABLE)


def test_autogenerate_finds_no_difference(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_object": _is_described_by_models,
            },
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


_COLUMNS = text(
    """
    SELECT c.relname, a.attname,
           format_type(a.atttypid, a.atttypmod) AS type,
           a.attnotnull AS not_null,
           a.attidentity AS identity,
           pg_get_expr(d.adbin, d.adrelid) AS server_default
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE n.nspname = :schema AND c.relkind = 'r' AND c.relname <> :alembic_version
      AND a.attnum > 0 AND NOT a.attisdropped
    """
)

# NOT NULL constraints (contype 'n', PostgreSQL 18) are left out: PostgreSQL names them itself,
# and nullability is already compared column by column.
_CONSTRAINTS = text(
    """
    SELECT c.relname, con.conname, pg_get_constraintdef(con.oid) AS definition
    FROM pg_constraint con
    JOIN pg_class c ON c.oid = con.conrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = :schema AND c.relname <> :alembic_version AND con.contype <> 'n'
    """
)

_INDEXES = text(
    """
    SELECT t.relname, i.relname, pg_get_indexdef(i.oid) AS definition
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class t ON t.oid = x.indrelid
    JOIN pg_namespace n ON n.oid = t.relnamespace
    WHERE n.nspname = :schema AND t.relname <> :alembic_version
    """
)


def _catalog(connection: Connection, schema: str) -> dict[str, dict[tuple[str, str], Any]]:
    """Columns, constraints and indexes of `schema`, with the schema's name taken out."""

    def unqualified(value: Any) -> Any:
        return value.replace(f"{schema}.", "") if isinstance(value, str) else value

    params = {"schema": schema, "alembic_version": ALEMBIC_VERSION_TABLE}
    catalog: dict[str, dict[tuple[str, str], Any]] = {}
    queries = {"columns": _COLUMNS, "constraints": _CONSTRAINTS, "indexes": _INDEXES}
    for kind, query in queries.items():
        catalog[kind] = {
            (table, name): tuple(unqualified(value) for value in rest)
            for table, name, *rest in connection.execute(query, params)
        }
    return catalog


def test_postgresql_renders_models_and_revisions_alike(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as connection:
        # DDL is transactional in PostgreSQL: the scratch schema goes away with the rollback.
        connection.execute(text(f"CREATE SCHEMA {MODEL_SCHEMA}"))
        Base.metadata.create_all(
            connection.execution_options(schema_translate_map={None: MODEL_SCHEMA}),
            checkfirst=False,
        )
        migrated = _catalog(connection, "public")
        modelled = _catalog(connection, MODEL_SCHEMA)
        connection.rollback()

    assert migrated["columns"], "the migrated database has no tables"
    for kind in ("columns", "constraints", "indexes"):
        only_migrated = {key: migrated[kind][key] for key in migrated[kind].keys() - modelled[kind]}
        only_modelled = {key: modelled[kind][key] for key in modelled[kind].keys() - migrated[kind]}
        assert (kind, only_migrated) == (kind, {}), "in the migrated schema, not in the models"
        assert (kind, only_modelled) == (kind, {}), "in the models, not in the migrated schema"
        different = {
            key: {"migrated": migrated[kind][key], "models": modelled[kind][key]}
            for key in migrated[kind]
            if migrated[kind][key] != modelled[kind][key]
        }
        assert (kind, different) == (kind, {})
