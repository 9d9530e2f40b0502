"""Which database a run works on, and how it connects: URL checks, session settings, connecting.

People and manifests spell PostgreSQL URLs several ways (`postgres://` from Heroku-style
providers, `postgresql://` from libpq, `postgresql+psycopg://` from SQLAlchemy). They are all
normalized here to the libpq form, which psycopg, `pg_dump` and `psql` all accept; SQLAlchemy gets
its connections from psycopg directly, so the driver is always psycopg 3. Anything else (MySQL,
SQLite, a typo) is refused before a connection is tried, with a message that says what is wrong.

Importing this module is cheap (no SQLAlchemy, no psycopg): the CLI validates its arguments with it
before deciding whether heavier work is needed at all.
"""

from __future__ import annotations

import os
import re
import socket
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit, urlunsplit

from rayces.migrations.errors import ConnectionFailedError, DatabaseUrlError, UsageError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

#: Schemes accepted for PostgreSQL, all rewritten to `postgresql://`.
POSTGRESQL_SCHEMES = frozenset(
    {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2", "postgresql+psycopg3"}
)

#: Seconds to wait for a TCP connection before calling the database unreachable.
CONNECT_TIMEOUT_SECONDS = 10

_URL_HINT = "use postgresql://USER:PASSWORD@HOST:5432/DBNAME"

# PostgreSQL's time-unit syntax for settings such as lock_timeout: a number, optionally with one
# of the units the server accepts (a bare number means milliseconds).
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$")


def normalize_database_url(url: str) -> str:
    """Return `url` as a libpq URL (`postgresql://...`), or raise `DatabaseUrlError`.

    :param url: a PostgreSQL URL in any of the spellings in `POSTGRESQL_SCHEMES`, or a libpq
        keyword/value string (`host=... dbname=...`), which is returned unchanged.
    """
    text = url.strip()
    if not text:
        raise DatabaseUrlError("the database URL is empty", hint=_URL_HINT)
    if "://" not in text:
        if "=" in text and ":" not in text.split("=", 1)[0]:
            return text  # libpq keyword/value form; libpq itself validates it on connect
        raise DatabaseUrlError(f"malformed database URL {redact_url(text)!r}", hint=_URL_HINT)
    scheme = text.split("://", 1)[0].lower()
    if scheme not in POSTGRESQL_SCHEMES:
        raise DatabaseUrlError(
            f"unsupported database URL scheme {scheme!r}: Rayces runs on PostgreSQL only",
            hint=_URL_HINT,
        )
    try:
        parts = urlsplit("postgresql" + text[len(scheme) :])
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as error:
        raise DatabaseUrlError(
            f"malformed database URL {redact_url(text)!r}: {error}", hint=_URL_HINT
        ) from None
    return urlunsplit(parts)


def redact_url(url: str) -> str:
    """`url` with its password replaced by `***`, for messages and logs."""
    if "://" not in url:
        return re.sub(r"(password\s*=\s*)(\S+)", r"\1***", url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("://", 1)[0] + "://***"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(SplitResult(parts.scheme, f"{user}@{netloc[-1]}", *parts[2:]))


def validate_duration(value: str) -> str:
    """Check `value` is a PostgreSQL duration setting (`500ms`, `5s`, `2min`, `0`) and return it.

    :param value: the text given for `lock_timeout` or `statement_timeout`; a bare number means
        milliseconds and `0` turns the timeout off, as in PostgreSQL.
    """
    if not _DURATION.match(value):
        raise UsageError(
            f"invalid duration {value!r}",
            hint="use a number with a PostgreSQL unit: us, ms, s, min, h or d (e.g. 5s, 2min)",
        )
    return value.strip().replace(" ", "")


def application_name() -> str:
    """`raycesctl@<host>`: the pod name in Kubernetes, so `pg_stat_activity` shows who runs."""
    host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"raycesctl@{host}"[:63]


def create_database_engine(url: str) -> Engine:
    """A SQLAlchemy engine (no pool) whose connections psycopg 3 opens from the libpq `url`.

    :param url: a URL already passed through `normalize_database_url`.
    """
    import psycopg
    from sqlalchemy import create_engine, pool

    def connect() -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            url, application_name=application_name(), connect_timeout=CONNECT_TIMEOUT_SECONDS
        )

    return create_engine("postgresql+psycopg://", creator=connect, poolclass=pool.NullPool)


def connect(engine: Engine) -> Connection:
    """Open a connection, turning "cannot connect" into `ConnectionFailedError`."""
    from sqlalchemy.exc import DBAPIError

    try:
        return engine.connect()
    except DBAPIError as error:
        raise ConnectionFailedError(
            f"cannot connect to the database: {first_line(error.orig or error)}",
            hint="check --database-url / DATABASE_URL and that the server is running",
        ) from None


def apply_session_settings(
    connection: Connection,
    *,
    lock_timeout: str | None = None,
    statement_timeout: str | None = None,
) -> None:
    """Set the session's `lock_timeout` and `statement_timeout` (session-wide, not per
    transaction, so they hold for every revision's transaction). `None` keeps the server's."""
    from sqlalchemy import text

    for name, value in (("lock_timeout", lock_timeout), ("statement_timeout", statement_timeout)):
        if value is not None:
            connection.execute(
                text("SELECT set_config(:name, :value, false)"),
                {"name": name, "value": validate_duration(value)},
            )


def first_line(error: BaseException | str) -> str:
    """The first non-empty line of an error's text: database errors carry multi-line detail."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__ if isinstance(error, BaseException) else ""
