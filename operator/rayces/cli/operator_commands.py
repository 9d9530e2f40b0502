"""`raycesctl operator` and `raycesctl current-revision`: the commands the operator side uses.

- `operator` runs the Kubernetes operator. Its implementation lives in `rayces.controller`,
  which sits above the cli in the layer contract, so this module never imports it: it finds
  `rayces.controller.runner:run` through the `rayces.commands` entry point (pyproject.toml) and
  calls it with plain values.
- `current-revision` reports the database's revision as a JSON result (the same versioned
  contract as `migrate`), also written to the termination message. A dry-run Job runs it: it
  only reads `alembic_version` (and, where nothing is recorded there, Rails' `schema_migrations`:
  the revision it claims, and the versions only Rails knows), so a dry run can never change the
  database.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from rayces.cli.output import revision_label
from rayces.cli.parser import SharedOptions, Subcommands, add_command
from rayces.migrations.errors import UsageError
from rayces.migrations.results import ExitCode

if TYPE_CHECKING:
    from rayces.cli.invocation import Invocation

ENTRY_POINT_GROUP = "rayces.commands"
DEFAULT_NAMESPACE = "raycesv3"


def add_parsers(commands: Subcommands, options: SharedOptions) -> None:
    operator = add_command(
        commands,
        "operator",
        "run the Kubernetes operator (SchemaMigration -> Jobs -> status) until SIGTERM",
        "Runs against the current kubeconfig, or the in-cluster configuration inside a Pod.\n\n"
        "examples:\n  raycesctl operator\n"
        "  raycesctl operator --namespace raycesv3 --namespace staging\n\n"
        "environment (read once at start):\n"
        "  RAYCES_JOB_IMAGE           image of the Jobs (default: the operator's image)\n"
        "  RAYCES_RETRY_BASE_SECONDS  first retry delay after a transient failure (10)\n"
        "  RAYCES_RETRY_CAP_SECONDS   longest retry delay (300)\n"
        "  RAYCES_MAX_ATTEMPTS        transient failures before Stalled (6)\n"
        "  RAYCES_RESYNC_SECONDS      how often a waiting resource is looked at (10)\n"
        "  RAYCES_JOB_TTL_SECONDS     how long finished Jobs are kept (604800)",
        [],
        handler=operator_command,
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
    operator.set_defaults(quiet=True)

    add_command(
        commands,
        "current-revision",
        "print the database's current revision as a JSON result; changes nothing",
        "Reads alembic_version and reports it in the JSON result format of `migrate`.\n"
        "A database Rails made, not yet adopted, is at the revision its schema_migrations\n"
        "claims (migrate compares the schema before recording it). Dry-run Jobs run it.\n\n"
        "example:\n  raycesctl current-revision --output json",
        [options.database, options.output],
        handler=current_revision_command,
    )


def operator_command(invocation: Invocation) -> int:
    matches = [entry for entry in entry_points(group=ENTRY_POINT_GROUP) if entry.name == "operator"]
    if not matches:
        raise UsageError(
            "the operator is not installed in this environment",
            hint="reinstall the rayces-operator package",
        )
    run = matches[0].load()
    args = invocation.args
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


def current_revision_command(invocation: Invocation) -> int:
    from rayces.migrations import commands
    from rayces.migrations.results import MigrationResult

    url = invocation.given_database_url
    if not url:
        raise UsageError("no database given", hint="pass --database-url or set DATABASE_URL")
    report = commands.status(invocation.connection_string(url))
    # A database Rails made is where Rails' record says until `migrate` adopts it (or refuses).
    current = report.current_revision or report.rails_revision
    result = MigrationResult(
        command="current-revision",
        from_revision=current,
        to_revision=current,
        target_revision=report.head_revision,
        rails_only_versions=report.rails_only_versions,
    )
    output = invocation.output
    output.result(result.to_dict())
    if not output.json:
        output.line(revision_label(result.to_revision))
    return ExitCode.OK
