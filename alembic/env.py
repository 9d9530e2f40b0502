"""Alembic environment shared by `raycesctl` and the plain `alembic` command.

Where the connection comes from, in order:
1. `config.attributes["connection"]`: an open SQLAlchemy Connection handed in by
   `rayces.migrations` (which already holds the advisory lock and set the timeouts). It must not
   be inside a transaction, or Alembic would run every revision in that one transaction;
2. otherwise (the plain `alembic` command) the `sqlalchemy.url` option, then `DATABASE_URL` from
   `rayces.migrations.settings`, read once. That path takes the same migration advisory lock as
   `raycesctl` (waiting `-x lock_wait_timeout=SECONDS`, 60 by default), so the two never run on
   one database at the same time, and passes the environment's default-organization values to
   the revisions as `-x` arguments, as `raycesctl` does.

Revisions read their inputs only through `context.get_x_argument()`, never the environment.

Every revision runs in its own transaction (`transaction_per_migration`), so a failing revision
rolls back alone and the database stays at the last revision that completed. Where the database
has Rails' `schema_migrations`, the same transaction inserts the revision's version there (or
deletes it, going down), so Rails' record stays in step (`rayces.migrations.adoption`).

The live models are imported only when autogenerate asks for them (`alembic revision
--autogenerate` or `config.attributes["target_metadata"]`): running migrations never pays for them.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, MetaData

from rayces.migrations.adoption import keep_rails_record_in_step
from rayces.migrations.settings import Settings

config = context.config

#: Seconds the plain `alembic` command waits for another run's migration lock by default.
DEFAULT_LOCK_WAIT_SECONDS = 60.0


def _database_url(settings: Settings) -> str:
    url = config.get_main_option("sqlalchemy.url") or settings.database_url
    if not url:
        raise SystemExit(
            "No database given: set DATABASE_URL (postgresql://user:password@host:5432/db) "
            "or sqlalchemy.url"
        )
    return url


def _pass_environment_to_revisions(settings: Settings) -> None:
    """Give the revisions the environment's values as `-x` arguments (`-x` given wins)."""
    given = context.get_x_argument(as_dictionary=True)
    missing = {k: v for k, v in settings.revision_arguments().items() if k not in given}
    if missing and config.cmd_opts is not None:
        x = list(getattr(config.cmd_opts, "x", None) or [])
        config.cmd_opts.x = x + [f"{key}={value}" for key, value in missing.items()]


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
        # Called once a revision has run, inside its transaction: Rails' record first, then the
        # callback rayces.migrations times each revision with (the plain `alembic` command
        # sets none).
        "on_version_apply": [
            keep_rails_record_in_step,
            *filter(None, [config.attributes.get("on_version_apply")]),
        ],
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
        _run_on(connection)  # raycesctl holds the lock already
        return
    from rayces.migrations.database import connect, create_database_engine
    from rayces.migrations.locking import acquire_migration_lock, release_migration_lock
    from rayces.migrations.revision_arguments import validate_revision_arguments

    settings = Settings.from_environment()
    _pass_environment_to_revisions(settings)
    arguments = context.get_x_argument(as_dictionary=True)
    validate_revision_arguments(arguments)
    wait = float(arguments.get("lock_wait_timeout", DEFAULT_LOCK_WAIT_SECONDS))
    engine = create_database_engine(_database_url(settings))
    with connect(engine) as new_connection:
        acquire_migration_lock(new_connection, wait_timeout=wait)
        try:
            _run_on(new_connection)
        finally:
            new_connection.rollback()
            release_migration_lock(new_connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
