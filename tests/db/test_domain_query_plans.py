"""The plan's common queries use the indexes the plan made for them, under row-level security.

A policy's condition could keep the planner from an index (a non-leakproof operator, a function
it cannot evaluate early); these plans are read as `rayces_app` with a tenant declared, on a
few tenants' worth of analysed data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from bench.domain_bench import plan_indexes, populate

from rayces.domain.queries import COMMON_QUERIES, CommonQuery
from rayces.migrations import commands

FIRST_DAY = dt.date(2030, 1, 1)


@pytest.fixture(scope="module")
def populated(postgres_server_url: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    from rayces.migrations.embedded import temporary_database

    with temporary_database(postgres_server_url, prefix="test_plans") as url:
        commands.upgrade(url, "head")
        tenants = populate(url, 8, 2_000, first_day=FIRST_DAY)
        yield url, tenants


@pytest.mark.parametrize("query", [pytest.param(q, id=q.indexes[0]) for q in COMMON_QUERIES])
def test_the_query_uses_its_index_under_rls(
    populated: tuple[str, list[dict[str, Any]]], query: CommonQuery
) -> None:
    url, tenants = populated
    tenant = tenants[3]
    parameters = {
        **tenant,
        "first_day": FIRST_DAY + dt.timedelta(days=10),
        "since": dt.datetime(2030, 1, 5, tzinfo=dt.UTC),
    }
    with psycopg.connect(url) as connection:
        connection.execute("SET ROLE rayces_app")
        connection.execute(
            "SELECT set_config('app.current_organization_id', %s, true)",
            (str(tenant["organization_id"]),),
        )
        used = plan_indexes(connection, query.sql, parameters)
        rows = connection.execute(query.sql, parameters).fetchall()
    assert set(used) & set(query.indexes), f"{query.name} used {used or 'no index'}"
    assert rows, f"{query.name} found nothing: the test data does not exercise it"
