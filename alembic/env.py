"""Alembic environment shared by `raycesctl` and the plain `alembic` command.

Where the connection comes from, in order:
1. `config.attributes["connection"]`: an open SQLAlchemy Connection handed in by
   `rayces.migrations` (which already holds the advisory lock and set the timeouts). It must not
   be inside a transaction, or Alembic would run every revision in that one transaction;
2. otherwise the `sqlalchemy.url` option, then the `DATABASE_URL` environment variable.

Every revision runs in its own transaction (`transaction_per_migration`), so a failing revision
rolls back alone and the database stays at the last revision that completed.

The live models are imported only when autogenerate asks for them (`alembic revision
--autogenerate` or `config.attributes["target_metadata"]`): running migrations never pays for them.
"""

from __future__ import annotations

import os
from typing import Any

from alembic import context
from sqlalchemy import Connection, MetaData, create_engine, pool

config = context.config


def _database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit(
            "No database given: set DATABASE_URL (postgresql://user:password@host:5432/db) "
            "or pass -x/sqlalchemy.url"
        )
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _target_metadata() -> MetaData | None:
    metadata: MetaData | None = config.attributes.get("target_metadata")
    if metadata is not None:
        return metadata
    if getattr(config.cmd_opts, "autogenerate", False):
        from rayces.schema import Base

        return Base.metadata
    return None


def _configure_options() -> dict[str, Any]:
    return {
        "target_metadata": _target_metadata(),
        "transaction_per_migration": True,
        "compare_type": True,
        "compare_server_default": True,
        # rayces.migrations times each revision through this callback (called once a revision
        # has run, inside its transaction); the plain `alembic` command sets none.
        "on_version_apply": config.attributes.get("on_version_apply"),
    }


def run_migrations_offline() -> None:
    """Render SQL without a database (`alembic upgrade --sql`, `raycesctl plan`)."""
    url = config.attributes.get("offline_url") or "postgresql+psycopg://"
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_configure_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    context.configure(connection=connection, **_configure_options())
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = create_engine(_database_url(), poolclass=pool.NullPool)
    with engine.connect() as new_connection:
        _run_on(new_connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
