"""A database migrated to the head revision, shared by the tests of one module.

Migrating takes longer than most tests that read the result, so the tests that only inspect the
migrated schema (or write inside a transaction they roll back) share one database per module.
The revisions run through the repository's `alembic.ini` and `alembic/env.py`, exactly as the
plain `alembic upgrade head` command runs them, with the connection handed in through
`config.attributes["connection"]`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, pool

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def upgrade_to_head(engine: Engine) -> None:
    """Run every revision in `alembic/versions/` on the engine's database."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(REPOSITORY_ROOT / "alembic.ini"))
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()


@pytest.fixture(scope="module")
def migrated_engine(postgres_server_url: str) -> Iterator[Engine]:
    """An engine on a new database at the head revision, dropped after the module's tests."""
    name = f"test_head_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(postgres_server_url)
    info["dbname"] = name
    database_url = psycopg.conninfo.make_conninfo("", **info)
    # `creator` takes the libpq URL as is, socket directory and all.
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(database_url),
        poolclass=pool.NullPool,
    )
    try:
        upgrade_to_head(engine)
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
