"""Database URL normalization and duration settings: what is accepted, and how it is refused."""

from __future__ import annotations

import pytest

from rayces.migrations.database import normalize_database_url, redact_url, validate_duration
from rayces.migrations.errors import DatabaseUrlError, UsageError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("postgresql://u:p@h:5432/db", "postgresql://u:p@h:5432/db", id="libpq"),
        pytest.param("postgres://u:p@h/db", "postgresql://u:p@h/db", id="postgres"),
        pytest.param("postgresql+psycopg://u@h/db", "postgresql://u@h/db", id="sqlalchemy"),
        pytest.param("postgresql+psycopg2://u@h/db", "postgresql://u@h/db", id="psycopg2"),
        pytest.param("POSTGRES://u@h/db", "postgresql://u@h/db", id="upper-case-scheme"),
        pytest.param(
            "postgresql://postgres:@/rayces?host=/tmp/pg",
            "postgresql://postgres:@/rayces?host=/tmp/pg",
            id="socket",
        ),
        pytest.param("  postgresql://h/db\n", "postgresql://h/db", id="whitespace"),
        pytest.param("host=/tmp/pg dbname=rayces", "host=/tmp/pg dbname=rayces", id="keywords"),
    ],
)
def test_normalizes(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("mysql://u@h/db", "unsupported database URL scheme 'mysql'", id="mysql"),
        pytest.param("sqlite:///x.db", "unsupported database URL scheme 'sqlite'", id="sqlite"),
        pytest.param("", "empty", id="empty"),
        pytest.param("not a url", "malformed", id="words"),
        pytest.param("postgresql://h:port/db", "malformed", id="port-not-a-number"),
        pytest.param("postgresql://h:99999/db", "malformed", id="port-out-of-range"),
    ],
)
def test_refuses(url: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError) as raised:
        normalize_database_url(url)
    assert message in raised.value.message
    assert "postgresql://" in raised.value.hint


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("postgresql://u:secret@h/db", "postgresql://u:***@h/db", id="password"),
        pytest.param("postgresql://u@h/db", "postgresql://u@h/db", id="no-password"),
        pytest.param("host=h password=secret", "host=h password=***", id="keywords"),
    ],
)
def test_redacts(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize("value", ["0", "500", "500ms", "5s", "1.5s", "2min", "1h", "1d", "10 s"])
def test_accepts_durations(value: str) -> None:
    assert validate_duration(value) == value.replace(" ", "")


@pytest.mark.parametrize("value", ["", "s", "-1s", "5 seconds", "1m", "5s; DROP TABLE x"])
def test_refuses_durations(value: str) -> None:
    with pytest.raises(UsageError):
        validate_duration(value)
