"""The plan's validation gates on the data: what `raycesctl verify` checks inside the database.

Each check returns the violations it finds, naming the table, the row and what is wrong:

- row-level security is enabled, with its policy, on every tenant-owned table;
- the ledger invariant holds for every balance (balance and lifetime totals = its completed
  transactions);
- every row's state agrees with its timestamps (the state machines' rules, as SQL);
- no professional is booked twice at once, and no slot holds another professional's appointment.

The checks read across tenants, so they run as the migrating role (or any role RLS does not
restrict); one organization can be selected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from rayces.domain.state_machines import MACHINES
from rayces.schema import Base
from rayces.schema.base import TENANT_COLUMN


@dataclass(frozen=True)
class Violation:
    """One thing wrong: which check, table and row, and what."""

    check: str
    table: str
    row_id: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "table": self.table,
            "id": self.row_id,
            "message": self.message,
        }

    def __str__(self) -> str:
        row = f" {self.row_id}" if self.row_id is not None else ""
        return f"{self.check}: {self.table}{row}: {self.message}"


def tenant_tables() -> tuple[str, ...]:
    """Every table with an `organization_id`, as the models describe them."""
    return tuple(
        table.name for table in Base.metadata.sorted_tables if TENANT_COLUMN in table.columns
    )


def row_level_security_violations(connection: Connection) -> list[Violation]:
    rows = connection.execute(
        text(
            "SELECT c.relname, c.relrowsecurity, "
            "EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid) "
            "FROM pg_class c "
            "WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(:tables)"
        ),
        {"tables": list(tenant_tables())},
    ).all()
    found = {name: (enabled, has_policy) for name, enabled, has_policy in rows}
    violations = []
    for table in tenant_tables():
        enabled, has_policy = found.get(table, (False, False))
        if not enabled:
            violations.append(Violation("rls", table, None, "row-level security is disabled"))
        elif not has_policy:
            violations.append(Violation("rls", table, None, "no row-level security policy"))
    return violations


_LEDGER = """\
SELECT b.id, b.balance, b.lifetime_purchased, b.lifetime_used,
       coalesce(sum(t.amount) FILTER (WHERE t.status = 'completed'), 0),
       coalesce(sum(t.amount) FILTER (WHERE t.status = 'completed' AND t.amount > 0), 0),
       coalesce(-sum(t.amount) FILTER (WHERE t.status = 'completed' AND t.amount < 0), 0)
FROM credit_balances b
LEFT JOIN credit_transactions t
       ON t.organization_id = b.organization_id AND t.credit_balance_id = b.id
WHERE CAST(:organization_id AS bigint) IS NULL OR b.organization_id = :organization_id
GROUP BY b.id
HAVING b.balance <> coalesce(sum(t.amount) FILTER (WHERE t.status = 'completed'), 0)
    OR b.lifetime_purchased
       <> coalesce(sum(t.amount) FILTER (WHERE t.status = 'completed' AND t.amount > 0), 0)
    OR b.lifetime_used
       <> coalesce(-sum(t.amount) FILTER (WHERE t.status = 'completed' AND t.amount < 0), 0)
ORDER BY b.id"""


def ledger_violations(connection: Connection, organization_id: int | None) -> list[Violation]:
    violations = []
    for row in connection.execute(text(_LEDGER), {"organization_id": organization_id}):
        balance_id, balance, purchased, used, total, total_in, total_out = row
        violations.append(
            Violation(
                "ledger",
                "credit_balances",
                balance_id,
                f"balance {balance}, lifetime_purchased {purchased}, lifetime_used {used}; "
                f"its completed transactions add up to {total}, {total_in} and {total_out}",
            )
        )
    return violations


def state_violations(connection: Connection, organization_id: int | None) -> list[Violation]:
    violations = []
    for machine in MACHINES:
        for predicate, problem in machine.consistency_predicates():
            rows = connection.execute(
                text(
                    f"SELECT id FROM {machine.table} WHERE ({predicate}) AND "
                    "(CAST(:organization_id AS bigint) IS NULL "
                    "OR organization_id = :organization_id) ORDER BY id"
                ),
                {"organization_id": organization_id},
            ).scalars()
            violations += [Violation("state", machine.table, row_id, problem) for row_id in rows]
    return violations


_OVERLAPPING_APPOINTMENTS = """\
SELECT a.id, b.id, a.professional_id
FROM appointments a
JOIN appointments b
  ON b.organization_id = a.organization_id AND b.professional_id = a.professional_id
 AND b.id > a.id AND b.starts_at < a.ends_at AND a.starts_at < b.ends_at
WHERE a.state <> 'cancelled' AND b.state <> 'cancelled'
  AND (CAST(:organization_id AS bigint) IS NULL OR a.organization_id = :organization_id)
ORDER BY a.id, b.id"""

_FOREIGN_SLOT_BOOKINGS = """\
SELECT s.id, s.appointment_id
FROM time_slots s
JOIN appointments a ON a.organization_id = s.organization_id AND a.id = s.appointment_id
WHERE a.professional_id <> s.professional_id
  AND (CAST(:organization_id AS bigint) IS NULL OR s.organization_id = :organization_id)
ORDER BY s.id"""


def booking_violations(connection: Connection, organization_id: int | None) -> list[Violation]:
    parameters = {"organization_id": organization_id}
    violations = [
        Violation(
            "booking",
            "appointments",
            first,
            f"overlaps appointment {second} of professional {professional}",
        )
        for first, second, professional in connection.execute(
            text(_OVERLAPPING_APPOINTMENTS), parameters
        )
    ]
    violations += [
        Violation(
            "booking",
            "time_slots",
            slot,
            f"holds appointment {appointment} of another professional",
        )
        for slot, appointment in connection.execute(text(_FOREIGN_SLOT_BOOKINGS), parameters)
    ]
    return violations


def data_violations(connection: Connection, organization_id: int | None = None) -> list[Violation]:
    """Every data check above, for one organization or (None) all of them."""
    return [
        *row_level_security_violations(connection),
        *ledger_violations(connection, organization_id),
        *state_violations(connection, organization_id),
        *booking_violations(connection, organization_id),
    ]
