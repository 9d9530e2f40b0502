"""`raycesctl seed`, `raycesctl tenant archive|purge` and `raycesctl verify`.

These are the commands the operator's `Organization` Jobs run, so their options mirror the
resource's spec (`--org` is `spec.subdomain`, `--name` `displayName`, `--time-zone` `timeZone`,
`--suspended` `suspended`, and `--roles`, `--initial-credits`, `--slot-days` the `seed` block),
and their JSON result (`TenantResult`, written to stdout and `--termination-message-path`) and
exit codes are the documented contract: 0 done (or nothing to do), 2 bad input, 3 no database,
6 permission denied, 7 verification found violations, 8 the data does not allow it (an unknown
slug, for instance).

The work itself lives in `rayces.domain`; this module parses, connects, calls, and reports.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from rayces.migrations.results import ErrorKind, TenantResult

PROG = "raycesctl"

EXIT_CODES_HELP = """\
exit codes:
  0    success (also: nothing to change)
  1    unexpected failure
  2    usage error: bad option, slug, time zone or amount; purge without --yes
  3    cannot connect to the database
  6    the database role may not do this
  7    verify found violations (each is listed: check, table, id, what is wrong)
  8    precondition failed: no organization has that slug, or the data does not allow it"""

_ORG_HELP = "the organization's slug (its subdomain, the Organization's spec.subdomain)"

DatabaseResolver = Callable[[argparse.Namespace], str]


@dataclass
class _CommandError(Exception):
    """A failure already classified: its kind, one-line message and hint."""

    kind: ErrorKind
    message: str
    hint: str = ""


# ------------------------------------------------------------------ parser


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _roles(text: str) -> tuple[str, ...]:
    roles = tuple(role.strip() for role in text.split(","))
    if not text.strip() or any(not role for role in roles):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of role names")
    return roles


def _result_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--termination-message-path",
        metavar="PATH",
        default=os.environ.get("RAYCES_TERMINATION_MESSAGE_PATH") or None,
        help="also write the JSON result here, cut to Kubernetes' 4096 bytes "
        "(default: $RAYCES_TERMINATION_MESSAGE_PATH; unset: not written)",
    )


def add_parsers(
    commands: Any,
    *,
    parents: list[argparse.ArgumentParser],
    resolve_database: DatabaseResolver,
) -> None:
    """Add `seed`, `tenant` and `verify` to `raycesctl`'s subcommands.

    :param commands: the subparsers action of the main parser.
    :param parents: the shared option parsers (database, output).
    :param resolve_database: turns the parsed options into a libpq URL (the embedded
        PostgreSQL when none is given).
    """

    def add(target: Any, name: str, help_text: str, epilog: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = target.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=epilog + "\n\n" + EXIT_CODES_HELP,
            parents=parents,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _result_options(parser)
        parser.set_defaults(resolve_database=resolve_database)
        return parser

    seed = add(
        commands,
        "seed",
        "create an organization or bring its row in line, and seed its default data",
        "Idempotent: a second run with the same options changes nothing.\n\n"
        "examples:\n"
        "  raycesctl seed --org acme --name 'Acme Therapy' --time-zone America/Santiago\n"
        "  raycesctl seed --org demo --profile demo --initial-credits 10 --output json",
    )
    seed.add_argument("--org", required=True, metavar="SLUG", help=_ORG_HELP)
    seed.add_argument("--name", metavar="NAME", help="display name (default: the slug)")
    seed.add_argument(
        "--time-zone", default="UTC", metavar="ZONE", help="IANA time zone (default: UTC)"
    )
    seed.add_argument(
        "--suspended",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="mark the organization suspended (--no-suspended: active; default)",
    )
    seed.add_argument(
        "--roles",
        type=_roles,
        default=("admin", "staff", "professional", "client"),
        metavar="A,B,...",
        help="role names to create (default: admin,staff,professional,client)",
    )
    seed.add_argument(
        "--initial-credits",
        type=_whole_number,
        default=0,
        metavar="N",
        help="credits granted to each seeded user (demo profile; default: 0)",
    )
    seed.add_argument(
        "--slot-days",
        type=_whole_number,
        default=14,
        metavar="N",
        help="days of time slots generated ahead (demo profile; default: 14)",
    )
    seed.add_argument(
        "--profile",
        choices=("minimal", "demo"),
        default="minimal",
        help="minimal: the roles; demo: also professionals, students, appointments, credits",
    )
    seed.set_defaults(handler=_seed)

    tenant = commands.add_parser(
        "tenant",
        help="archive or purge an organization",
        description="Archive or purge an organization.",
    )
    tenant_commands = tenant.add_subparsers(dest="tenant_command", metavar="COMMAND", required=True)
    archive = add(
        tenant_commands,
        "archive",
        "mark an organization archived, keeping its rows",
        "example:\n  raycesctl tenant archive --org acme",
    )
    archive.add_argument("--org", required=True, metavar="SLUG", help=_ORG_HELP)
    archive.set_defaults(handler=_archive)
    purge = add(
        tenant_commands,
        "purge",
        "delete every row of an organization, and the organization, in one transaction",
        "example:\n  raycesctl tenant purge --org acme --yes --output json",
    )
    purge.add_argument("--org", required=True, metavar="SLUG", help=_ORG_HELP)
    purge.add_argument("--yes", action="store_true", help="really delete (required)")
    purge.add_argument(
        "--force-with-balances",
        action="store_true",
        help="purge even while users hold non-zero credit balances (refused otherwise)",
    )
    purge.set_defaults(handler=_purge)

    verify = add(
        commands,
        "verify",
        "check the database: revision at head, models match, RLS on, ledger, states, bookings",
        "examples:\n  raycesctl verify\n  raycesctl verify --org acme --output json",
    )
    verify.add_argument("--org", metavar="SLUG", help="check one organization (default: all)")
    verify.set_defaults(handler=_verify)


# ------------------------------------------------------------------ running


def _command_name(args: argparse.Namespace) -> str:
    sub = getattr(args, "tenant_command", None)
    return f"tenant {sub}" if sub else str(args.command)


def _engine(args: argparse.Namespace) -> Engine:
    from rayces.migrations.database import (
        connect,
        create_database_engine,
        normalize_database_url,
    )

    engine = create_database_engine(normalize_database_url(args.resolve_database(args)))
    connect(engine).close()  # a connection failure is reported before any work starts
    return engine


def _run(args: argparse.Namespace, work: Callable[[argparse.Namespace], TenantResult]) -> int:
    """Run `work`, turning every expected failure into a result, one line and an exit code."""
    from rayces.migrations.errors import MigrationsError
    from rayces.migrations.results import ErrorInfo, ErrorKind, TenantResult

    started = time.monotonic()
    try:
        result = work(args)
    except _CommandError as error:
        result = TenantResult(
            command=_command_name(args),
            organization=getattr(args, "org", None),
            error=ErrorInfo(kind=error.kind, message=error.message, hint=error.hint),
        )
    except MigrationsError as error:
        result = TenantResult(
            command=_command_name(args),
            organization=getattr(args, "org", None),
            error=ErrorInfo(kind=error.kind, message=error.message, hint=error.hint),
        )
    except Exception as error:
        classified = _classify(error)
        if classified is None:
            raise
        result = TenantResult(
            command=_command_name(args),
            organization=getattr(args, "org", None),
            error=ErrorInfo(kind=classified.kind, message=classified.message, hint=classified.hint),
        )
    result = _with_duration(result, time.monotonic() - started)
    _report(args, result)
    if result.error is None:
        return 0
    return int(ErrorKind(result.error.kind).exit_code)


def _with_duration(result: TenantResult, seconds: float) -> TenantResult:
    from dataclasses import replace

    return replace(result, duration_seconds=seconds)


def _classify(error: Exception) -> _CommandError | None:
    """The kind of a domain, tenancy or database error; None for a bug (re-raised)."""
    from sqlalchemy.exc import DBAPIError

    from rayces.domain.errors import DomainError, InvalidInputError, NotFoundError
    from rayces.domain.state_machines import StateMachineError
    from rayces.migrations.database import first_line
    from rayces.migrations.results import ErrorKind
    from rayces.tenancy import TenancyError

    if isinstance(error, InvalidInputError):
        return _CommandError(ErrorKind.USAGE, error.message, "see `raycesctl seed --help`")
    if isinstance(error, NotFoundError):
        return _CommandError(ErrorKind.PRECONDITION_FAILED, error.message)
    if isinstance(error, DomainError | StateMachineError | TenancyError):
        return _CommandError(ErrorKind.PRECONDITION_FAILED, error.message)
    if isinstance(error, DBAPIError):
        sqlstate = getattr(error.orig, "sqlstate", None) or ""
        message = first_line(error.orig or error)
        if sqlstate == "42501":
            return _CommandError(
                ErrorKind.PERMISSION_DENIED,
                f"the database role may not do this: {message}",
                "run it as the migrating role (the tables' owner)",
            )
        if sqlstate.startswith("08") or error.connection_invalidated:
            return _CommandError(ErrorKind.CONNECTION, f"lost the database connection: {message}")
        return _CommandError(ErrorKind.INTERNAL, f"the database refused: {message}")
    return None


def _report(args: argparse.Namespace, result: TenantResult) -> None:
    import json

    path = getattr(args, "termination_message_path", None)
    if path:
        try:
            Path(path).write_text(result.termination_message(), encoding="utf-8")
        except OSError as error:
            sys.stderr.write(f"{PROG}: warning: cannot write {path}: {error}\n")
    if result.error is not None:
        hint = f" (hint: {result.error.hint})" if result.error.hint else ""
        sys.stderr.write(f"{PROG}: error: {result.error.message}{hint}\n")
    if args.output == "json":
        sys.stdout.write(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return
    for line in _text_lines(result):
        sys.stdout.write(line + "\n")


def _counts(counts: dict[str, int] | None) -> str:
    return ", ".join(f"{table} {count}" for table, count in (counts or {}).items() if count)


def _text_lines(result: TenantResult) -> list[str]:
    lines = [
        f"{violation['check']}: {violation['table']}"
        + (f" {violation['id']}" if violation.get("id") is not None else "")
        + f": {violation['message']}"
        for violation in result.violations
    ]
    if result.error is not None:
        return lines
    org = f"{result.organization} (organization {result.organization_id})"
    if result.command == "seed":
        if not result.changed:
            lines.append(f"{org} is up to date: nothing changed")
        else:
            changes = [
                f"{field} {change['from']!r} -> {change['to']!r}"
                for field, change in (result.changed_fields or {}).items()
            ]
            verb = "created" if result.organization_created else "seeded"
            lines.append(
                f"{verb} {org}: "
                + "; ".join(filter(None, [", ".join(changes), _counts(result.rows_created)]))
            )
    elif result.command == "tenant archive":
        lines.append(f"archived {org} (was {result.previous_status})")
    elif result.command == "tenant purge":
        total = sum((result.rows_removed or {}).values())
        lines.append(f"purged {org}: {total} rows removed ({_counts(result.rows_removed)})")
    elif result.command == "verify":
        scope = result.organization or "every organization"
        lines.append(f"verify: {scope}: no violations ({', '.join(result.checks)})")
    return lines


# ------------------------------------------------------------------ commands


def _seed(args: argparse.Namespace) -> int:
    return _run(args, _seed_work)


def _seed_work(args: argparse.Namespace) -> TenantResult:
    from sqlalchemy.orm import sessionmaker

    from rayces.domain.seeds import SeedOptions, seed_organization
    from rayces.migrations.results import TenantResult
    from rayces.tenancy import scope_sessions

    options = SeedOptions(
        subdomain=args.org,
        name=args.name,
        time_zone=args.time_zone,
        suspended=args.suspended,
        roles=tuple(args.roles),
        initial_credits=args.initial_credits,
        slot_days=args.slot_days,
        profile=args.profile,
    ).validated()
    engine = _engine(args)
    try:
        factory = scope_sessions(sessionmaker(engine))
        with factory() as session:
            report = seed_organization(session, options)
            session.commit()
    finally:
        engine.dispose()
    document = report.to_dict()
    return TenantResult(
        command="seed",
        organization=args.org,
        organization_id=report.organization_id,
        changed=report.changed,
        organization_created=report.organization_created,
        changed_fields=document["changed_fields"],
        rows_created=document["rows_created"],
    )


def _in_transaction(args: argparse.Namespace, work: Callable[[Connection], Any]) -> Any:
    engine = _engine(args)
    try:
        with engine.begin() as connection:
            return work(connection)
    finally:
        engine.dispose()


def _archive(args: argparse.Namespace) -> int:
    def work(args: argparse.Namespace) -> TenantResult:
        from rayces.domain.tenants import archive_organization, check_subdomain
        from rayces.migrations.results import TenantResult

        check_subdomain(args.org)
        organization_id, previous = _in_transaction(
            args, lambda connection: archive_organization(connection, args.org)
        )
        return TenantResult(
            command="tenant archive",
            organization=args.org,
            organization_id=organization_id,
            changed=previous != "archived",
            previous_status=previous,
        )

    return _run(args, work)


def _purge(args: argparse.Namespace) -> int:
    def work(args: argparse.Namespace) -> TenantResult:
        from rayces.domain.tenants import check_subdomain, purge_organization
        from rayces.migrations.results import ErrorKind, TenantResult

        check_subdomain(args.org)
        if not args.yes:
            raise _CommandError(
                ErrorKind.USAGE,
                f"purge deletes every row of {args.org!r} and cannot be undone; nothing was done",
                "add --yes to purge",
            )
        organization_id, removed = _in_transaction(
            args,
            lambda connection: purge_organization(
                connection, args.org, force_with_balances=args.force_with_balances
            ),
        )
        return TenantResult(
            command="tenant purge",
            organization=args.org,
            organization_id=organization_id,
            changed=True,
            rows_removed=removed,
        )

    return _run(args, work)


VERIFY_CHECKS = ("revision", "models", "rls", "ledger", "states", "bookings")


def _verify(args: argparse.Namespace) -> int:
    return _run(args, _verify_work)


def _verify_work(args: argparse.Namespace) -> TenantResult:
    from rayces.domain.tenants import find_organization_id
    from rayces.domain.verification import Violation, data_violations
    from rayces.migrations import commands
    from rayces.migrations.results import ErrorInfo, ErrorKind, TenantResult

    url = args.resolve_database(args)
    report = commands.status(url)
    violations: list[Violation] = []
    organization_id: int | None = None
    if report.current_revision != report.head_revision:
        violations.append(
            Violation(
                "revision",
                "alembic_version",
                None,
                f"the database is at {report.current_revision or 'base'}, the scripts' head is "
                f"{report.head_revision}; run `raycesctl migrate`",
            )
        )
    else:
        engine = _engine(args)
        try:
            with engine.connect() as connection:
                if args.org:
                    organization_id = find_organization_id(connection, args.org)
                violations += _model_differences(connection)
                violations += data_violations(connection, organization_id)
                connection.rollback()
        finally:
            engine.dispose()
    error = None
    if violations:
        count = len(violations)
        error = ErrorInfo(
            kind=ErrorKind.VERIFICATION_FAILED,
            message=f"{count} violation{'s' if count != 1 else ''}, first: {violations[0]}",
            hint="each violation names the check, table and row",
        )
    return TenantResult(
        command="verify",
        organization=args.org,
        organization_id=organization_id,
        checks=VERIFY_CHECKS,
        violations=tuple(violation.to_dict() for violation in violations),
        error=error,
    )


def _model_differences(connection: Connection) -> list[Any]:
    """What Alembic's comparison finds between the models and the database."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from rayces.domain.verification import Violation
    from rayces.schema import Base

    def include(
        obj: object, name: str | None, type_: str, reflected: bool, compare: object
    ) -> bool:
        return not (type_ == "table" and name == "alembic_version")

    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": include}
    )
    differences = compare_metadata(context, Base.metadata)
    return [
        Violation("models", _difference_table(diff), None, str(diff)[:300]) for diff in differences
    ]


def _difference_table(difference: Any) -> str:
    """The table an Alembic difference is about (`schema` when it cannot tell)."""
    if isinstance(difference, list):  # a group of column modifications
        difference = difference[0]
    if difference[0].startswith("modify_"):
        return str(difference[2])
    subject = difference[1]
    table = subject if hasattr(subject, "columns") and hasattr(subject, "schema") else None
    table = table if table is not None else getattr(subject, "table", None)
    return str(getattr(table, "name", None) or "schema")
