"""The plan's common read queries, as the application runs them, with the index each should use.

One place for the SQL so that the benchmark (latency with row-level security against the
migrating role without it) and the test that reads their plans (`EXPLAIN`) look at the same
statements. Each filters by `organization_id` explicitly, as the scoped ORM does; under RLS the
policy adds the same condition again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommonQuery:
    name: str
    sql: str  # psycopg placeholders: %(organization_id)s and the query's own
    #: the indexes the plan made for this query; its plan must use one of them
    indexes: tuple[str, ...]


AVAILABLE_SLOTS_FOR_A_WEEK = CommonQuery(
    "available slots of a professional for a week",
    "SELECT id, date, start_time, end_time FROM time_slots "
    "WHERE organization_id = %(organization_id)s AND professional_id = %(professional_id)s "
    "AND date BETWEEN %(first_day)s AND %(first_day)s + 6 AND available "
    "ORDER BY date, start_time",
    # Both lead with (professional_id, date); the unique one also gives the order by start.
    ("idx_available_slots", "idx_unique_time_slot"),
)

TRANSACTIONS_OF_A_USER_BY_DATE = CommonQuery(
    "transactions of a user by date",
    "SELECT id, amount, transaction_type, status, created_at FROM credit_transactions "
    "WHERE organization_id = %(organization_id)s AND user_id = %(user_id)s "
    "AND created_at >= %(since)s ORDER BY created_at DESC LIMIT 50",
    ("idx_credit_trans_org_user_date",),
)

BALANCES_OF_AN_ORGANIZATION = CommonQuery(
    "balances of an organization",
    "SELECT user_id, balance FROM credit_balances "
    "WHERE organization_id = %(organization_id)s ORDER BY balance LIMIT 100",
    ("idx_org_balance_lookup",),
)

COMMON_QUERIES = (
    AVAILABLE_SLOTS_FOR_A_WEEK,
    TRANSACTIONS_OF_A_USER_BY_DATE,
    BALANCES_OF_AN_ORGANIZATION,
)
