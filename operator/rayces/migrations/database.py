"""How a run connects: connection parameters, session settings, connecting, and what a
database error means for the caller.

URLs are parsed and checked in `rayces.migrations.connection_url`; this module adds what every
connection of a run needs on top of what the URL says:

- a `connect_timeout` (the URL's, else `--connect-timeout`'s, else 10 s), so a server that
  accepts and never answers does not hang a Job;
- TCP keepalives on both ends and `client_connection_check_interval`, so that when the client
  dies without warning (SIGKILL, a lost node) the server ends its session within seconds, which
  releases the migration lock for the retry;
- an `application_name` naming the pod, so `pg_stat_activity` shows who runs.

SQLAlchemy gets its connections from psycopg directly, so the driver is always psycopg 3.

Importing this module is cheap (no SQLAlchemy, no psycopg): the CLI validates its arguments with it
before deciding whether heavier work is needed at all.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rayces.migrations import faults, signals
from rayces.migrations.connection_url import (
    POSTGRESQL_SCHEMES,
    ConnectionParameters,
    parse_database_url,
    redact_url,
)
from rayces.migrations.errors import (
    ConnectionFailedError,
    MigrationsError,
    PermissionDeniedError,
    UsageError,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "POSTGRESQL_SCHEMES",
    "connection_parameters",
    "normalize_database_url",
    "redact_url",
    "validate_duration",
]

#: Seconds to wait for a connection before calling the database unreachable, unless the URL or
#: `--connect-timeout` says otherwise.
CONNECT_TIMEOUT_SECONDS = 10

#: Seconds a signal handler waits for the server to take a cancel request.
CANCEL_TIMEOUT_SECONDS = 2.0

log = logging.getLogger(__name__)

#: Client-side TCP keepalives: a dead server is noticed within seconds.
CLIENT_KEEPALIVES: Mapping[str, str] = {
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
}

#: Server-side settings for the session: the server checks every second whether the client is
#: still there while a statement runs, and probes an idle connection with keepalives, so a
#: killed client's session (and the migration lock it holds) ends within a few seconds.
SERVER_LIVENESS_OPTIONS = (
    "-c client_connection_check_interval=1000 -c tcp_keepalives_idle=5 "
    "-c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"
)

# PostgreSQL's time-unit syntax for settings such as lock_timeout: a number, optionally with one
# of the units the server accepts (a bare number means milliseconds).
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$")
_MILLISECONDS_PER_UNIT = {
    "us": 0.001,
    "ms": 1.0,
    "s": 1000.0,
    "min": 60_000.0,
    "h": 3_600_000.0,
    "d": 86_400_000.0,
}
#: PostgreSQL keeps timeouts in milliseconds in an int: about 24.8 days at most.
MAX_TIMEOUT_MILLISECONDS = 2**31 - 1

_DURATION_HINT = "use a number with a PostgreSQL unit: us, ms, s, min, h or d (e.g. 5s, 2min)"


def normalize_database_url(url: str) -> str:
    """`url` as a libpq keyword/value connection string, or `DatabaseUrlError`.

    :param url: a PostgreSQL URL in any spelling of `POSTGRESQL_SCHEMES`, or a libpq
        keyword/value string; it must name a user, a database and a host.
    """
    return parse_database_url(url).conninfo()


def connection_parameters(
    url: str,
    *,
    connect_timeout: float | None = None,
    application_name: str | None = None,
) -> ConnectionParameters:
    """The parameters a run connects with: the URL's, plus timeouts, liveness checks and a name.

    :param url: a URL or connection string, as for `normalize_database_url`.
    :param connect_timeout: seconds; overrides the URL's `connect_timeout`. Without either,
        `CONNECT_TIMEOUT_SECONDS`.
    :param application_name: shown in `pg_stat_activity`, unless the URL names one;
        `raycesctl@<host>` by default.
    """
    parameters = parse_database_url(url)
    if connect_timeout is not None:
        parameters = parameters.with_values({"connect_timeout": _whole_seconds(connect_timeout)})
    given = parameters.get("options") or ""
    if SERVER_LIVENESS_OPTIONS not in given:  # applied twice, it stays once
        parameters = parameters.with_values(
            {"options": " ".join(filter(None, [given, SERVER_LIVENESS_OPTIONS]))}
        )
    return parameters.with_defaults(
        {
            "connect_timeout": str(CONNECT_TIMEOUT_SECONDS),
            "application_name": application_name or default_application_name(),
            **CLIENT_KEEPALIVES,
        }
    )


def _whole_seconds(seconds: float) -> str:
    # libpq takes whole seconds (and treats 1 as 2); round up so 0.5 does not mean "forever".
    return str(max(int(-(-seconds // 1)), 1)) if seconds > 0 else "0"


def validate_duration(value: str) -> str:
    """Check `value` is a PostgreSQL duration setting (`500ms`, `5s`, `2min`, `0`) and return it.

    :param value: the text given for `lock_timeout` or `statement_timeout`; a bare number means
        milliseconds and `0` turns the timeout off, as in PostgreSQL. Anything the server would
        round to 0 (below 1 ms, which would silently turn the timeout off) or refuse (above
        about 24.8 days) is a usage error.
    """
    match = _DURATION.match(value)
    if not match:
        raise UsageError(f"invalid duration {value!r}", hint=_DURATION_HINT)
    milliseconds = float(match.group(1)) * _MILLISECONDS_PER_UNIT[match.group(2) or "ms"]
    if 0 < milliseconds < 1:
        raise UsageError(
            f"duration {value.strip()!r} is below 1ms, which PostgreSQL rounds to 0 (no timeout)",
            hint="give 1ms or more, or 0 to turn the timeout off on purpose",
        )
    if milliseconds > MAX_TIMEOUT_MILLISECONDS:
        raise UsageError(
            f"duration {value.strip()!r} is longer than PostgreSQL allows (about 24 days)",
            hint="give at most 24d, or 0 for no timeout",
        )
    return value.strip().replace(" ", "")


def default_application_name(hostname: str | None = None) -> str:
    """`raycesctl@<host>`: the pod name in Kubernetes, so `pg_stat_activity` shows who runs."""
    return f"raycesctl@{hostname or socket.gethostname()}"[:63]


def create_database_engine(url: str) -> Engine:
    """A SQLAlchemy engine (no pool) whose connections psycopg 3 opens with
    `connection_parameters(url)`, and which lets SIGINT and SIGTERM stop a run only where it is
    safe (`rayces.migrations.signals`): while a connection is out, a signal cancels its running
    statement, and the next statement does not start.

    :param url: a URL or connection string; see `connection_parameters`.
    """
    import psycopg
    from sqlalchemy import create_engine, event, pool

    conninfo = connection_parameters(url).conninfo()

    def connect() -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(conninfo)

    engine = create_engine("postgresql+psycopg://", creator=connect, poolclass=pool.NullPool)
    event.listen(engine.pool, "checkout", _watch_for_signals)
    event.listen(engine.pool, "checkin", _stop_watching_for_signals)
    event.listen(engine, "before_cursor_execute", _before_statement)
    event.listen(engine, "commit", _before_commit)
    return engine


def _watch_for_signals(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A connection is out: a signal now cancels its running statement, if any."""
    from psycopg import pq

    def cancel() -> None:
        try:
            if dbapi_connection.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
                dbapi_connection.cancel_safe(timeout=CANCEL_TIMEOUT_SECONDS)
        except Exception:  # closed, or the server is gone: nothing left to cancel
            log.debug("could not cancel the running statement", exc_info=True)

    signals.connection_opened(id(dbapi_connection), lambda: not dbapi_connection.closed, cancel)


def _stop_watching_for_signals(dbapi_connection: Any, record: Any) -> None:
    signals.connection_closed(id(dbapi_connection))


def _before_statement(connection: Any, cursor: Any, statement: str, *_: Any) -> None:
    faults.statement_starting(statement, cursor)
    signals.checkpoint()


def _before_commit(connection: Connection) -> None:
    faults.commit_starting(connection)


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


#: SQLSTATE classes that mean the connection, not the request, failed.
_CONNECTION_SQLSTATE_PREFIXES = ("08", "57P")


def database_error(error: BaseException, *, doing: str) -> MigrationsError | None:
    """The `MigrationsError` a database error stands for, or `None` if it is not one.

    :param error: what SQLAlchemy or psycopg raised.
    :param doing: what was being done, for the message: "reading the current revision".
    """
    original = getattr(error, "orig", None) or error
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate is None and not _is_driver_error(original):
        return None
    message = first_line(original)
    if sqlstate == "42501":
        return PermissionDeniedError(
            f"permission denied while {doing}: {message}", hint=permission_hint(message)
        )
    if sqlstate is None or sqlstate.startswith(_CONNECTION_SQLSTATE_PREFIXES):
        return ConnectionFailedError(
            f"lost the database connection while {doing}: {message}",
            hint="check that the server is running and reachable, then run again",
        )
    return None


def _is_driver_error(error: BaseException) -> bool:
    module = type(error).__module__
    return module.startswith(("psycopg", "sqlalchemy"))


_PERMISSION_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"permission denied for schema (\S+)"),
        "the role needs CREATE and USAGE on schema {0}: GRANT CREATE, USAGE ON SCHEMA {0} TO "
        "<role>, or run as the schema's owner",
    ),
    (
        re.compile(r"permission denied for database (\S+)"),
        "the role needs CREATE on database {0}: GRANT CREATE ON DATABASE {0} TO <role>",
    ),
    (
        re.compile(r"permission denied for (?:table|relation|sequence|view) (\S+)"),
        "the role needs privileges on {0}: GRANT SELECT, INSERT, UPDATE, DELETE ON {0} TO "
        "<role> (or make it the owner, which DDL needs)",
    ),
    (
        re.compile(r"must be owner of (?:\w+ )+?(\S+)$"),
        "the role must own {0}: ALTER ... {0} OWNER TO <role>, or run as its owner",
    ),
    (
        re.compile(r"permission denied to create extension \"?([^\"\s]+)"),
        "creating extension {0} needs a superuser (or a trusted extension): create it once "
        "as a superuser with CREATE EXTENSION {0}",
    ),
)


def permission_hint(message: str) -> str:
    """A hint naming the privilege that a SQLSTATE 42501 message says is missing."""
    for pattern, hint in _PERMISSION_PATTERNS:
        match = pattern.search(message)
        if match:
            return hint.format(match.group(1).strip('"'))
    return (
        "the database role lacks a privilege the migration needs: run as the schema's owner, "
        "or grant what the message names"
    )


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
