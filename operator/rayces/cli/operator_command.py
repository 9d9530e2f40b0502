"""`raycesctl operator` and `raycesctl current-revision`: the commands the operator side uses.

- `operator` runs the Kubernetes operator. Its implementation lives in `rayces.controller`,
  which sits above the cli in the layer contract, so this module never imports it: it finds
  `rayces.controller.runner:run` through the `rayces.commands` entry point (pyproject.toml) and
  calls it with plain values.
- `current-revision` reports the database's revision as a JSON result (the same versioned
  contract as `migrate`), also written to the termination message. A dry-run Job runs it: it
  only reads `alembic_version`, so a dry run can never change the database.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

ENTRY_POINT_GROUP = "rayces.commands"
DEFAULT_NAMESPACE = "raycesv3"


def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add `operator` and `current-revision` to raycesctl's sub-commands."""
    operator = commands.add_parser(
        "operator",
        help="run the Kubernetes operator (SchemaMigration → Jobs → status)",
        description="Run the operator against the current kubeconfig, or the in-cluster "
        "configuration inside a Pod, until SIGTERM or SIGINT.",
        epilog="examples:\n  raycesctl operator\n"
        "  raycesctl operator --namespace raycesv3 --namespace staging\n\n"
        "environment (read once at start):\n"
        "  RAYCES_JOB_IMAGE           image of the Jobs (default: the operator's image)\n"
        "  RAYCES_RETRY_BASE_SECONDS  first retry delay after a transient failure (10)\n"
        "  RAYCES_RETRY_CAP_SECONDS   longest retry delay (300)\n"
        "  RAYCES_MAX_ATTEMPTS        transient failures before Stalled (6)\n"
        "  RAYCES_RESYNC_SECONDS      how often a waiting resource is looked at (10)\n"
        "  RAYCES_JOB_TTL_SECONDS     how long finished Jobs are kept (604800)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    operator.add_argument(
        "--namespace",
        "-n",
        dest="namespaces",
        action="append",
        metavar="NAMESPACE",
        help=f"namespace to serve (repeatable; default: {DEFAULT_NAMESPACE})",
    )
    operator.add_argument(
        "--kubeconfig", metavar="PATH", help="kubeconfig file (default: in-cluster, $KUBECONFIG)"
    )
    operator.add_argument("--host", default="0.0.0.0", help="address of the HTTP endpoints")
    operator.add_argument(
        "--metrics-port", type=int, default=8080, help="port of /metrics and /readyz (8080)"
    )
    operator.add_argument(
        "--health-port", type=int, default=8081, help="port of the liveness probe /healthz (8081)"
    )
    operator.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning"),
        help="lowest level logged, as JSON lines on stderr (info)",
    )
    # quiet: raycesctl's plain progress logging stays off; the operator logs JSON.
    operator.set_defaults(handler=_operator, quiet=True)

    current = commands.add_parser(
        "current-revision",
        help="print the database's current revision as a JSON result; changes nothing",
        description="Read the database's current revision (alembic_version) and report it in "
        "the JSON result format of `migrate`. Used by dry-run Jobs.",
    )
    current.add_argument("--database-url", metavar="URL", help="default: $DATABASE_URL")
    current.add_argument(
        "--output",
        "-o",
        choices=("text", "json"),
        default="text",
        help="text (the revision) or the JSON result",
    )
    current.add_argument(
        "--termination-message-path",
        metavar="PATH",
        default=os.environ.get("RAYCES_TERMINATION_MESSAGE_PATH") or None,
        help="also write the JSON result here (default: $RAYCES_TERMINATION_MESSAGE_PATH)",
    )
    current.set_defaults(handler=_current_revision)


def _operator(args: argparse.Namespace) -> int:
    matches = [entry for entry in entry_points(group=ENTRY_POINT_GROUP) if entry.name == "operator"]
    if not matches:
        sys.stderr.write(
            "raycesctl: error: the operator is not installed in this environment "
            "(hint: reinstall the rayces-operator package)\n"
        )
        return 2
    run = matches[0].load()
    return int(
        run(
            namespaces=args.namespaces or [DEFAULT_NAMESPACE],
            kubeconfig=args.kubeconfig,
            host=args.host,
            metrics_port=args.metrics_port,
            health_port=args.health_port,
            log_level=args.log_level,
        )
    )


def _current_revision(args: argparse.Namespace) -> int:
    from rayces.migrations import commands
    from rayces.migrations.errors import MigrationsError, UsageError
    from rayces.migrations.results import ErrorInfo, MigrationResult, termination_message

    url = args.database_url or os.environ.get("DATABASE_URL") or ""
    try:
        if not url:
            raise UsageError("no database given", hint="pass --database-url or set DATABASE_URL")
        report = commands.status(url)
        result = MigrationResult(
            command="current-revision",
            from_revision=report.current_revision,
            to_revision=report.current_revision,
            target_revision=report.head_revision,
        )
        code = 0
    except MigrationsError as error:
        result = MigrationResult(
            command="current-revision",
            from_revision=None,
            to_revision=None,
            target_revision=None,
            error=ErrorInfo(kind=error.kind, message=error.message, hint=error.hint),
        )
        code = int(error.kind.exit_code)
        sys.stderr.write(f"raycesctl: error: {error.message} (hint: {error.hint})\n")
    document = result.to_dict()
    if args.termination_message_path:
        try:
            Path(args.termination_message_path).write_text(
                termination_message(document), encoding="utf-8"
            )
        except OSError as error:
            sys.stderr.write(
                f"raycesctl: warning: cannot write {args.termination_message_path}: "
                f"{error.strerror or error}\n"
            )
    if args.output == "json":
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    elif code == 0:
        sys.stdout.write(f"{result.to_revision or 'base'}\n")
    return code
