"""A lock-retried statement waits at most briefly each time, so it outlasts a blocker that a
plain statement under the same `lock_timeout` fails on (and nobody queues behind it for long)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.exc import OperationalError
from tests.db.alembic_helpers import connect

from rayces.migrations.online_operations import (
    add_foreign_key_then_validate,
    add_unique_constraint_using_index,
    set_not_null_without_long_lock,
)

BLOCKED_SECONDS = 1.0


def _with_lock_held(database_url: str, table: str, run: Callable[[], None]) -> None:
    """Run `run` while another session holds ACCESS SHARE on `table` for a second."""
    holding = threading.Event()

    def hold() -> None:
        with psycopg.connect(database_url) as blocker:
            blocker.execute(f"LOCK TABLE {table} IN ACCESS SHARE MODE")
            holding.set()
            threading.Event().wait(BLOCKED_SECONDS)

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait()
    try:
        run()
    finally:
        thread.join()


OPERATIONS = {
    "set-not-null": lambda retries: set_not_null_without_long_lock(
        "items", "owner_id", lock_retries=retries
    ),
    "foreign-key": lambda retries: add_foreign_key_then_validate(
        "fk_items_owner", "items", ["owner_id"], "owners", ["id"], lock_retries=retries
    ),
    "unique-using-index": lambda retries: add_unique_constraint_using_index(
        "uq_items_owner_id_id", "items", ["owner_id", "id"], lock_retries=retries
    ),
}


@pytest.mark.parametrize("operation", [pytest.param(name, id=name) for name in OPERATIONS])
@pytest.mark.parametrize(
    "lock_retries", [pytest.param(True, id="retried"), pytest.param(False, id="plain")]
)
def test_lock_retries_outlast_a_blocker_longer_than_lock_timeout(
    database_url: str, operation: str, lock_retries: bool
) -> None:
    with psycopg.connect(database_url, autocommit=True) as setup:
        setup.execute(
            "CREATE TABLE owners (id bigint PRIMARY KEY);"
            "INSERT INTO owners VALUES (1);"
            "CREATE TABLE items (id bigint PRIMARY KEY, owner_id bigint);"
            "INSERT INTO items SELECT g, 1 FROM generate_series(1, 100) g;"
        )
    with connect(database_url) as connection:
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        autocommit.exec_driver_sql("SET lock_timeout = '200ms'")
        operations = Operations(MigrationContext.configure(autocommit))

        def run() -> None:
            with Operations.context(operations.migration_context):
                OPERATIONS[operation](lock_retries)

        if lock_retries:
            _with_lock_held(database_url, "items", run)
            assert autocommit.exec_driver_sql("SHOW lock_timeout").scalar() == "200ms"
        else:
            with pytest.raises(OperationalError, match="lock timeout"):
                _with_lock_held(database_url, "items", run)
