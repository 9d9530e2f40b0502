"""`raycesctl seed`, `raycesctl tenant archive|purge` and `raycesctl verify`.

These are the commands the operator's `Organization` Jobs run, so their options mirror the
resource's spec (`--org` is `spec.subdomain`, `--name` `displayName`, `--time-zone` `timeZone`,
`--suspended` `suspended`, and `--roles`, `--initial-credits`, `--slot-days` the `seed` block).
Their result is a `TenantResult`, success or failure: dispatch reports failures in that shape
through `tenant_failure`. Exit codes are the shared ones (`raycesctl --help`): 7 when verify
finds violations, 8 when the data does not allow the request (an unknown slug, for instance).

The work itself lives in `rayces.domain`; this module parses, connects, calls, and reports. The
domain's errors become `MigrationsError`s here, at the edge, so dispatch reports them as it
reports every other failure.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from rayces.cli.parser import SharedOptions, Subcommands, add_command
from rayces.migrations.results import ErrorInfo, ExitCode, TenantResult

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from rayces.cli.invocation import Invocation
    from rayces.cli.parser import ArgumentParser

T = TypeVar("T")

_ORG_HELP = "the organization's slug (its subdomain, the Organization's spec.subdomain)"

#: How to take over a row `seed --owner` refused because no Organization resource owns it.
ADOPT_HINT = (
    'annotate the Organization with rayces.io/adopt-existing: "true" (raycesctl: --adopt) to '
    "adopt a row no resource owns, or choose another subdomain"
)

#: What `verify` checks, in the order it reports them.
VERIFY_CHECKS = ("revision", "models", "rls", "ledger", "states", "bookings")


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


def add_parsers(commands: Subcommands, options: SharedOptions) -> None:
    """Add `seed`, `tenant archive|purge` and `verify` to `raycesctl`."""
    parents = [options.database, options.output]

    def add(
        target: Subcommands,
        name: str,
        help_text: str,
        epilog: str,
        handler: Callable[[Invocation], int],
    ) -> ArgumentParser:
        return add_command(
            target,
            name,
            help_text,
            epilog,
            parents,
            handler=handler,
            failure_result=tenant_failure,
        )

    seed = add(
        commands,
        "seed",
        "create an organization or bring its row in line, and seed its default data",
        "Idempotent: a second run with the same options changes nothing.\n\n"
        "examples:\n"
        "  raycesctl seed --org acme --name 'Acme Therapy' --time-zone America/Santiago\n"
        "  raycesctl seed --org demo --profile demo --initial-credits 10 --output json",
        seed_command,
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
    seed.add_argument(
        "--owner",
        metavar="ID",
        help="claim the row for this owner (the operator passes its Organization's uid): an "
        "existing row owned by another id, or by none, is refused (exit 8) with nothing changed",
    )
    seed.add_argument(
        "--adopt",
        action="store_true",
        help="with --owner: take over an existing row that has no owner yet",
    )

    tenant = add_command(
        commands,
        "tenant",
        "archive or purge an organization",
        "examples:\n  raycesctl tenant archive --org acme\n"
        "  raycesctl tenant purge --org acme --yes",
        [],
    )
    tenant_commands = tenant.add_subparsers(dest="tenant_command", metavar="COMMAND", required=True)
    archive = add(
        tenant_commands,
        "archive",
        "mark an organization archived, keeping its rows",
        "example:\n  raycesctl tenant archive --org acme",
        archive_command,
    )
    archive.add_argument("--org", required=True, metavar="SLUG", help=_ORG_HELP)
    archive.set_defaults(result_command="tenant archive")
    purge = add(
        tenant_commands,
        "purge",
        "delete every row of an organization, and the organization, in one transaction",
        "example:\n  raycesctl tenant purge --org acme --yes --output json",
        purge_command,
    )
    purge.add_argument("--org", required=True, metavar="SLUG", help=_ORG_HELP)
    purge.add_argument("--yes", action="store_true", help="really delete (required)")
    purge.add_argument(
        "--force-with-balances",
        action="store_true",
        help="purge even while users hold non-zero credit balances (refused otherwise)",
    )
    purge.set_defaults(result_command="tenant purge")

    verify = add(
        commands,
        "verify",
        "check the database: revision at head, models match, RLS on, ledger, states, bookings",
        "examples:\n  raycesctl verify\n  raycesctl verify --org acme --output json",
        verify_command,
    )
    verify.add_argument("--org", metavar="SLUG", help="check one organization (default: all)")


# ------------------------------------------------------------------ results


def tenant_failure(
    invocation: Invocation, command: str, error: ErrorInfo, seconds: float
) -> TenantResult:
    """A failure of these commands, as dispatch reports it: a `TenantResult` naming the
    organization asked for."""
    return TenantResult(
        command=command,
        organization=getattr(invocation.args, "org", None),
        error=error,
        duration_seconds=seconds,
    )


def _counts(counts: dict[str, int] | None) -> str:
    return ", ".join(f"{table} {count}" for table, count in (counts or {}).items() if count)


def _text_lines(result: TenantResult) -> list[str]:
    org = f"{result.organization} (organization {result.organization_id})"
    if result.command == "seed":
        if not result.changed:
            return [f"{org} is up to date: nothing changed"]
        changes = [
            f"{field} {change['from']!r} -> {change['to']!r}"
            for field, change in (result.changed_fields or {}).items()
        ]
        verb = "created" if result.organization_created else "seeded"
        done = "; ".join(filter(None, [", ".join(changes), _counts(result.rows_created)]))
        return [f"{verb} {org}: {done}"]
    if result.command == "tenant archive":
        return [f"archived {org} (was {result.previous_status})"]
    if result.command == "tenant purge":
        total = sum((result.rows_removed or {}).values())
        return [f"purged {org}: {total} rows removed ({_counts(result.rows_removed)})"]
    scope = result.organization or "every organization"
    return [f"verify: {scope}: no violations ({', '.join(result.checks)})"]


# ------------------------------------------------------------------ the domain's errors


@contextmanager
def _domain_errors(command: str) -> Iterator[None]:
    """The domain's and tenancy's errors as the `MigrationsError`s dispatch reports: bad input
    is a usage error, a rule the data does not allow a failed precondition."""
    from rayces.domain.errors import (
        DomainError,
        InvalidInputError,
        NotFoundError,
        OwnershipConflictError,
    )
    from rayces.domain.state_machines import StateMachineError
    from rayces.migrations.errors import PreconditionFailedError, UsageError
    from rayces.tenancy import TenancyError

    try:
        yield
    except InvalidInputError as error:
        raise UsageError(error.message, hint=f"see `raycesctl {command} --help`") from error
    except NotFoundError as error:  # its message says how to fix it
        raise PreconditionFailedError(error.message) from error
    except OwnershipConflictError as error:
        raise PreconditionFailedError(error.message, hint=ADOPT_HINT) from error
    except (DomainError, StateMachineError, TenancyError) as error:
        raise PreconditionFailedError(
            error.message, hint="nothing was changed; fix what the message names and run again"
        ) from error


def _engine(database: str) -> Engine:
    """An engine on `database` whose first connection already succeeded, so that a connection
    failure is reported before any work starts."""
    from rayces.migrations.database import connect, create_database_engine

    engine = create_database_engine(database)
    connect(engine).close()
    return engine


def _on_organization(
    invocation: Invocation, command: str, work: Callable[[Connection, str], T]
) -> T:
    """`work(connection, slug)` for the organization `--org` names, in one transaction; the
    slug is checked before connecting."""
    from rayces.domain.tenants import check_subdomain

    org = invocation.args.org
    with _domain_errors(command):
        check_subdomain(org)
        engine = _engine(invocation.database())
        try:
            with engine.begin() as connection:
                return work(connection, org)
        finally:
            engine.dispose()


def _succeeded(invocation: Invocation, result: TenantResult, started: float) -> int:
    """Report `result`, timed from `started`: JSON and termination message, or a line."""
    output = invocation.output
    result = replace(result, duration_seconds=time.monotonic() - started)
    output.result(result.to_dict())
    if not output.json:
        for line in _text_lines(result):
            output.line(line)
    return ExitCode.OK


# ------------------------------------------------------------------ commands


def seed_command(invocation: Invocation) -> int:
    from sqlalchemy.orm import sessionmaker

    from rayces.domain.seeds import SeedOptions, seed_organization
    from rayces.tenancy import scope_sessions

    started = time.monotonic()
    args = invocation.args
    with _domain_errors("seed"):
        options = SeedOptions(
            subdomain=args.org,
            name=args.name,
            time_zone=args.time_zone,
            suspended=args.suspended,
            roles=tuple(args.roles),
            initial_credits=args.initial_credits,
            slot_days=args.slot_days,
            profile=args.profile,
            owner=args.owner,
            adopt=args.adopt,
        ).validated()
        engine = _engine(invocation.database())
        try:
            factory = scope_sessions(sessionmaker(engine))
            with factory() as session:
                report = seed_organization(session, options)
                session.commit()
        finally:
            engine.dispose()
    document = report.to_dict()
    result = TenantResult(
        command="seed",
        organization=args.org,
        organization_id=report.organization_id,
        changed=report.changed,
        organization_created=report.organization_created,
        changed_fields=document["changed_fields"],
        rows_created=document["rows_created"],
    )
    return _succeeded(invocation, result, started)


def archive_command(invocation: Invocation) -> int:
    from rayces.domain.tenants import archive_organization

    started = time.monotonic()
    organization_id, previous = _on_organization(invocation, "tenant archive", archive_organization)
    result = TenantResult(
        command="tenant archive",
        organization=invocation.args.org,
        organization_id=organization_id,
        changed=previous != "archived",
        previous_status=previous,
    )
    return _succeeded(invocation, result, started)


def purge_command(invocation: Invocation) -> int:
    from rayces.domain.tenants import check_subdomain, purge_organization
    from rayces.migrations.errors import UsageError

    started = time.monotonic()
    org = invocation.args.org
    if not invocation.args.yes:
        with _domain_errors("tenant purge"):
            check_subdomain(org)  # a bad slug is named first
        raise UsageError(
            f"purge deletes every row of {org!r} and cannot be undone; nothing was done",
            hint="add --yes to purge",
        )
    force = bool(invocation.args.force_with_balances)
    organization_id, removed = _on_organization(
        invocation,
        "tenant purge",
        lambda connection, slug: purge_organization(connection, slug, force_with_balances=force),
    )
    result = TenantResult(
        command="tenant purge",
        organization=org,
        organization_id=organization_id,
        changed=True,
        rows_removed=removed,
    )
    return _succeeded(invocation, result, started)


def verify_command(invocation: Invocation) -> int:
    """Every check; violations are listed (stdout, text) and fail the command (exit 7) with
    the result that names each of them."""
    from rayces.migrations.errors import VerificationFailedError

    started = time.monotonic()
    org = invocation.args.org
    with _domain_errors("verify"):
        organization_id, violations = _verification(invocation.database(), org)
    result = TenantResult(
        command="verify",
        organization=org,
        organization_id=organization_id,
        checks=VERIFY_CHECKS,
        violations=tuple(violation.to_dict() for violation in violations),
    )
    if not violations:
        return _succeeded(invocation, result, started)
    count = len(violations)
    failure = VerificationFailedError(
        f"{count} violation{'s' if count != 1 else ''}, first: {violations[0]}",
        hint="each violation names the check, table and row",
    )
    failure.result = replace(
        result, error=failure.error_info(), duration_seconds=time.monotonic() - started
    )
    if not invocation.output.json:
        for violation in violations:
            invocation.output.line(str(violation))
    raise failure


def _verification(database: str, org: str | None) -> tuple[int | None, list[Any]]:
    """The organization's id (if one was named) and every violation found."""
    from rayces.domain.tenants import check_subdomain, find_organization_id
    from rayces.domain.verification import Violation, data_violations
    from rayces.migrations import commands

    if org is not None:
        check_subdomain(org)
    report = commands.status(database)
    if report.current_revision != report.head_revision:
        return None, [
            Violation(
                "revision",
                "alembic_version",
                None,
                f"the database is at {report.current_revision or 'base'}, the scripts' head is "
                f"{report.head_revision}; run `raycesctl migrate`",
            )
        ]
    organization_id: int | None = None
    engine = _engine(database)
    try:
        with engine.connect() as connection:
            if org:
                organization_id = find_organization_id(connection, org)
            violations = _model_differences(connection)
            violations += data_violations(connection, organization_id)
            connection.rollback()
    finally:
        engine.dispose()
    return organization_id, violations


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
