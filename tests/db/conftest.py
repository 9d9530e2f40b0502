"""A database migrated to the head revision, shared by the tests of one module.

Migrating takes longer than most tests that read the result, so the tests that only inspect the
migrated schema (or write inside a transaction they roll back) share one database per module.
The revisions run through the repository's `alembic.ini` and `alembic/env.py`, exactly as the
plain `alembic upgrade head` command runs them, with the connection handed in through
`config.attributes["connection"]`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, pool

from rayces.migrations.embedded import temporary_database

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
    with temporary_database(postgres_server_url, prefix="test_head") as database_url:
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
