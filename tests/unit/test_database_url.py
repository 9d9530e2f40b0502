"""Database URLs: what is accepted and what libpq parameters it means, what is refused, how
passwords are hidden, and which durations are valid settings."""

from __future__ import annotations

import pytest

from rayces.migrations.connection_url import parse_database_url, redact_url, scrub, secrets_in
from rayces.migrations.database import (
    CONNECT_TIMEOUT_SECONDS,
    connection_parameters,
    normalize_database_url,
    validate_duration,
)
from rayces.migrations.errors import DatabaseUrlError, UsageError

SENTINEL = "S3ntinel-pw"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "postgresql://u:p@h:5432/db",
            {"user": "u", "password": "p", "host": "h", "port": "5432", "dbname": "db"},
            id="libpq",
        ),
        pytest.param("postgres://u@h/db", {"user": "u", "host": "h", "dbname": "db"}, id="heroku"),
        pytest.param("postgresql+psycopg://u@h/db", {"user": "u", "host": "h", "dbname": "db"}),
        pytest.param("POSTGRES://u@h/db", {"user": "u", "host": "h", "dbname": "db"}, id="upper"),
        pytest.param(
            "postgresql://postgres:@/rayces?host=/tmp/pg",
            {"user": "postgres", "password": "", "dbname": "rayces", "host": "/tmp/pg"},
            id="socket",
        ),
        pytest.param(
            "postgresql://u:p#a/s?s@w@h/db",
            {"user": "u", "password": "p#a/s?s@w", "host": "h", "dbname": "db"},
            id="unencoded-special-characters-in-password",
        ),
        pytest.param(
            "postgresql://u:p%40ss@h/db",
            {"user": "u", "password": "p@ss", "host": "h", "dbname": "db"},
            id="percent-encoded-password",
        ),
        pytest.param(
            "postgresql://u@h1:5432,h2:5433/db",
            {"user": "u", "host": "h1,h2", "port": "5432,5433", "dbname": "db"},
            id="several-hosts",
        ),
        pytest.param(
            "postgresql://u@[::1]:5432/db",
            {"user": "u", "host": "::1", "port": "5432", "dbname": "db"},
            id="ipv6",
        ),
        pytest.param(
            "  postgresql://u@h/db?connect_timeout=3\n",
            {"user": "u", "host": "h", "dbname": "db", "connect_timeout": "3"},
            id="whitespace-and-query",
        ),
        pytest.param(
            "host=/tmp/pg user=u dbname=rayces password='a b\\'c'",
            {"host": "/tmp/pg", "user": "u", "dbname": "rayces", "password": "a b'c"},
            id="keywords",
        ),
    ],
)
def test_parses(url: str, expected: dict[str, str]) -> None:
    parameters = parse_database_url(url)
    assert parameters.as_dict() == expected
    # the connection string says the same, and parses back to the same parameters
    assert parse_database_url(normalize_database_url(url)).as_dict() == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("mysql://u@h/db", "unsupported database URL scheme 'mysql'", id="mysql"),
        pytest.param("sqlite:///x.db", "unsupported database URL scheme 'sqlite'", id="sqlite"),
        pytest.param("", "empty", id="empty"),
        pytest.param("not a url", "malformed", id="words"),
        pytest.param("u:p@h/db", "no scheme", id="no-scheme"),
        pytest.param("postgresql://u@h:port/db", "port", id="port-not-a-number"),
        pytest.param("postgresql://u@h:99999/db", "port", id="port-out-of-range"),
        pytest.param("postgresql://:@:/", "names no user", id="all-defaults"),
        pytest.param("postgresql://h/db", "names no user", id="no-user"),
        pytest.param("postgresql://u@h", "no database name", id="no-database"),
        pytest.param("postgresql://u@h/", "no database name", id="empty-database"),
        pytest.param("postgresql://u@/db", "no host", id="no-host-default-socket"),
        pytest.param("dbname=rayces user=u", "no host", id="keywords-without-host"),
        pytest.param("postgresql://u@h/db?connect_timeout=soon", "connect_timeout", id="timeout"),
    ],
)
def test_refuses(url: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError) as raised:
        parse_database_url(url)
    assert message in raised.value.message
    assert raised.value.hint  # every refusal says what to do


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"postgresql://u:{SENTINEL}@h/db", id="plain"),
        pytest.param(f"postgresql://u:{SENTINEL}#/@x@h/db", id="unencoded-hash-slash-at"),
        pytest.param(f"u:{SENTINEL}@h/db", id="no-scheme"),
        pytest.param(f"postgresql://u@h/db?password={SENTINEL}", id="query-password"),
        pytest.param(f"postgresql://u@h/db?sslmode=require&password={SENTINEL}&x=1", id="query"),
        pytest.param(f"host=h user=u password={SENTINEL} dbname=db", id="keywords"),
        pytest.param(f"host=h user=u password='{SENTINEL} x' dbname=db", id="quoted"),
        pytest.param(f"mysql://u:{SENTINEL}@h/db", id="other-scheme"),
        pytest.param(f"postgresql://u:{SENTINEL}@h:port/db", id="malformed"),
    ],
)
def test_no_password_is_ever_shown(url: str) -> None:
    assert SENTINEL not in redact_url(url)
    assert any(SENTINEL in secret for secret in secrets_in(url))
    for secret in secrets_in(url):
        assert SENTINEL not in scrub(f"failed for {url}: {secret}", secrets_in(url))
    try:
        parameters = parse_database_url(url)
    except DatabaseUrlError as error:
        assert SENTINEL not in error.message
        assert SENTINEL not in error.hint
    else:
        assert SENTINEL not in parameters.describe()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("postgresql://u:secret@h/db", "postgresql://u:***@h/db", id="password"),
        pytest.param("postgresql://u@h/db", "postgresql://u@h/db", id="no-password"),
        pytest.param("host=h password=secret", "host=h password=***", id="keywords"),
        pytest.param("postgresql://u@h/db?password=x&a=b", "postgresql://u@h/db?password=***&a=b"),
    ],
)
def test_redacts(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_describe_shows_the_url_without_secrets() -> None:
    parameters = parse_database_url("postgresql://app:pw@db:5432/rayces?sslmode=require")
    assert parameters.describe() == "postgresql://app:***@db:5432/rayces?sslmode=require"


@pytest.mark.parametrize(
    ("url", "option", "expected"),
    [
        pytest.param("postgresql://u@h/db", None, str(CONNECT_TIMEOUT_SECONDS), id="default"),
        pytest.param("postgresql://u@h/db?connect_timeout=3", None, "3", id="url"),
        pytest.param("postgresql://u@h/db?connect_timeout=3", 5.0, "5", id="option-wins"),
        pytest.param("postgresql://u@h/db", 0.2, "1", id="rounded-up"),
    ],
)
def test_connect_timeout(url: str, option: float | None, expected: str) -> None:
    parameters = connection_parameters(url, connect_timeout=option)
    assert parameters.get("connect_timeout") == expected
    assert "client_connection_check_interval" in (parameters.get("options") or "")
    assert parameters.get("keepalives") == "1"


@pytest.mark.parametrize(
    "value", ["0", "1", "500", "500ms", "1000us", "5s", "1.5s", "2min", "1h", "1d", "24d", "10 s"]
)
def test_accepts_durations(value: str) -> None:
    assert validate_duration(value) == value.replace(" ", "")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("s", id="unit-only"),
        pytest.param("-1s", id="negative"),
        pytest.param("5 seconds", id="word-unit"),
        pytest.param("1m", id="m-is-not-a-unit"),
        pytest.param("5s; DROP TABLE x", id="injection"),
        pytest.param("400us", id="below-1ms-rounds-to-no-timeout"),
        pytest.param("0.5", id="half-a-millisecond"),
        pytest.param("25d", id="beyond-int-milliseconds"),
    ],
)
def test_refuses_durations(value: str) -> None:
    with pytest.raises(UsageError):
        validate_duration(value)
