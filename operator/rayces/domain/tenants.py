"""A tenant's lifecycle in the database: find it by slug, archive it, purge it.

These run as the migrating role (row-level security does not restrict the table owner), since
they work on a tenant from outside it, as the operator's Jobs do for an `Organization`'s
`deletionPolicy` (Archive, Delete).
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

from rayces.domain.errors import DomainError, InvalidInputError, NotFoundError
from rayces.schema.states import OrganizationStatus

_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

#: Tenant-owned tables, children before parents: the order a purge deletes in.
PURGE_ORDER = (
    "time_slots",
    "credit_transactions",
    "credit_balances",
    "user_roles",
    "roles",
    "availability_rules",
    "appointments",
    "students",
    "professionals",
    "likes",
    "posts",
    "users",
)


class BalancesHeldError(DomainError):
    """A purge refused because the tenant's users hold credits."""


def check_subdomain(subdomain: str) -> str:
    """`subdomain` if it is a DNS label (the organization's slug), else `InvalidInputError`."""
    if not _SUBDOMAIN.match(subdomain):
        raise InvalidInputError(
            f"{subdomain!r} is not a valid organization slug: use lower-case letters, digits "
            "and inner hyphens, at most 63 characters"
        )
    return subdomain


def find_organization_id(connection: Connection, subdomain: str) -> int:
    """The id of the organization with `subdomain`; `NotFoundError` naming it otherwise."""
    organization_id = connection.execute(
        text("SELECT id FROM organizations WHERE subdomain = :subdomain"),
        {"subdomain": check_subdomain(subdomain)},
    ).scalar()
    if organization_id is None:
        raise NotFoundError(
            f"no organization has the slug {subdomain!r}; check --org "
            "(`raycesctl seed --org SLUG` creates one)"
        )
    return int(organization_id)


def archive_organization(connection: Connection, subdomain: str) -> tuple[int, str]:
    """Mark the organization archived, keeping its rows; returns (id, previous status)."""
    organization_id = find_organization_id(connection, subdomain)
    previous = connection.execute(
        text(
            "UPDATE organizations o SET status = :archived, updated_at = now() "
            "FROM (SELECT id, status FROM organizations WHERE id = :id FOR UPDATE) before "
            "WHERE o.id = before.id RETURNING before.status"
        ),
        {"id": organization_id, "archived": OrganizationStatus.ARCHIVED.value},
    ).scalar_one()
    return organization_id, str(previous)


def purge_organization(
    connection: Connection, subdomain: str, *, force_with_balances: bool = False
) -> tuple[int, dict[str, int]]:
    """Delete every row of the tenant, then the organization, in the caller's transaction.

    :param force_with_balances: purge even while users hold non-zero credit balances (credits
        people paid for); refused otherwise, before anything is deleted.
    :returns: the organization's id and the rows removed per table (`organizations` included).
    """
    organization_id = find_organization_id(connection, subdomain)
    # Lock the tenant first so a concurrent seed cannot add rows behind the purge.
    connection.execute(
        text("SELECT id FROM organizations WHERE id = :id FOR UPDATE"), {"id": organization_id}
    )
    if not force_with_balances:
        holders, total = connection.execute(
            text(
                "SELECT count(*), coalesce(sum(balance), 0) FROM credit_balances "
                "WHERE organization_id = :id AND balance <> 0"
            ),
            {"id": organization_id},
        ).one()
        if holders:
            raise BalancesHeldError(
                f"organization {subdomain!r} holds non-zero credit balances ({holders} users, "
                f"{total} credits in all); nothing was purged. Settle them, or purge anyway "
                "with --force-with-balances (an Organization: spec.forceDeleteWithBalances: true)"
            )
    removed: dict[str, int] = {}
    for table in PURGE_ORDER:
        result = connection.execute(
            text(f"DELETE FROM {table} WHERE organization_id = :id"), {"id": organization_id}
        )
        removed[table] = int(result.rowcount)
    result = connection.execute(
        text("DELETE FROM organizations WHERE id = :id"), {"id": organization_id}
    )
    removed["organizations"] = int(result.rowcount)
    return organization_id, removed
