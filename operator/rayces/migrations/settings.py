"""Everything a run takes from its environment, read once at start-up into one frozen value.

`raycesctl` (and the plain `alembic` command, through env.py) call `Settings.from_environment()`
once; everything below them gets the values it needs as arguments: the database URL, where the
embedded PostgreSQL lives, where the termination message goes, the default organization's name
and subdomain (which reach the revisions as `-x` arguments, never through `os.environ`). So what
a run does is decided by what it was handed, which tests and the operator's Jobs can state
exactly.

Standard library only: read before anything heavy is imported.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: The environment variables read, each with what it sets; `raycesctl --help` lists them.
ENVIRONMENT_VARIABLES: Mapping[str, str] = {
    "DATABASE_URL": "database to work on (like --database-url)",
    "RAYCES_DATA_DIR": "embedded PostgreSQL data directory (like --data-dir)",
    "RAYCES_TERMINATION_MESSAGE_PATH": "default of --termination-message-path",
    "RAYCES_DEFAULT_ORGANIZATION_NAME": "default of --default-organization-name",
    "RAYCES_DEFAULT_ORGANIZATION_SUBDOMAIN": "default of --default-organization-subdomain",
    "RAYCES_DEBUG": "=1: show the traceback of unexpected errors (passwords still hidden)",
}


@dataclass(frozen=True)
class Settings:
    """What the environment says about a run; each field `None` (or False) when unset.

    :param database_url: `DATABASE_URL`.
    :param data_dir: `RAYCES_DATA_DIR`: the embedded PostgreSQL's data directory.
    :param xdg_data_home: `XDG_DATA_HOME`, where the embedded data directory goes by default.
    :param home: the user's home directory (`HOME`).
    :param running_as_root: whether the process runs as root (its default data directory is
        under /var/lib then).
    :param termination_message_path: `RAYCES_TERMINATION_MESSAGE_PATH`.
    :param default_organization_name: `RAYCES_DEFAULT_ORGANIZATION_NAME`.
    :param default_organization_subdomain: `RAYCES_DEFAULT_ORGANIZATION_SUBDOMAIN`.
    :param debug: `RAYCES_DEBUG` set to anything but "" or "0".
    :param hostname: `HOSTNAME` (the pod's name in Kubernetes), else the machine's name.
    """

    database_url: str | None = None
    data_dir: Path | None = None
    xdg_data_home: Path | None = None
    home: Path | None = None
    running_as_root: bool = False
    termination_message_path: str | None = None
    default_organization_name: str | None = None
    default_organization_subdomain: str | None = None
    debug: bool = False
    hostname: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from `environ` (the process environment by default)."""
        env = os.environ if environ is None else environ

        def value(name: str) -> str | None:
            return env.get(name) or None

        def path(name: str) -> Path | None:
            text = value(name)
            return Path(text).expanduser() if text else None

        return cls(
            database_url=value("DATABASE_URL"),
            data_dir=path("RAYCES_DATA_DIR"),
            xdg_data_home=path("XDG_DATA_HOME"),
            home=path("HOME"),
            running_as_root=os.geteuid() == 0,
            termination_message_path=value("RAYCES_TERMINATION_MESSAGE_PATH"),
            # None when unset: an empty value given on purpose is checked (and refused) later.
            default_organization_name=env.get("RAYCES_DEFAULT_ORGANIZATION_NAME"),
            default_organization_subdomain=env.get("RAYCES_DEFAULT_ORGANIZATION_SUBDOMAIN"),
            debug=(value("RAYCES_DEBUG") or "0") != "0",
            hostname=value("HOSTNAME") or socket.gethostname(),
        )

    def revision_arguments(self) -> dict[str, str]:
        """The `-x` values the environment gives the revisions."""
        values = {
            "default_organization_name": self.default_organization_name,
            "default_organization_subdomain": self.default_organization_subdomain,
        }
        return {key: value for key, value in values.items() if value is not None}
