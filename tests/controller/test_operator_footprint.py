"""How much the operator costs: memory and Kubernetes API calls per reconcile, measured while it
brings several SchemaMigrations to Ready, and reported in the test summary (figures, not asserts
on speed; the benchmark in bench/operator_bench.py measures time)."""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack

import pytest
from tests.controller.operator_support import (
    FOOTPRINT,
    TEST_SETTINGS,
    Cluster,
    OperatorProcess,
    applied,
    database_revision,
    head_revision,
    schema_migration,
)

from rayces.migrations.embedded import temporary_database

RESOURCES = 4


def total(samples: dict[str, float], name: str) -> float:
    return sum(value for key, value in samples.items() if key.split("{")[0] == name)


def test_memory_and_api_calls_per_reconcile(
    operator_cluster: Cluster,
    running_operator: OperatorProcess,
    postgres_server_url: str,
    request: pytest.FixtureRequest,
) -> None:
    before = running_operator.metrics()
    suffix = uuid.uuid4().hex[:6]
    with ExitStack() as stack:
        urls = [
            stack.enter_context(temporary_database(postgres_server_url, prefix=f"foot{index}"))
            for index in range(RESOURCES)
        ]
        names = []
        for index, url in enumerate(urls):
            name = f"footprint-{suffix}-{index}"
            operator_cluster.secret(f"footprint-{suffix}-{index}", url)
            stack.enter_context(
                applied(operator_cluster, schema_migration(name, f"footprint-{suffix}-{index}"))
            )
            names.append(name)
        for name in names:
            operator_cluster.wait_for(name, "Ready")
            running_operator.sample_memory()
        assert all(database_revision(url) == head_revision() for url in urls)
        # Settled: reconciles that change nothing write nothing (no status churn, no hot loop).
        settled = running_operator.metrics()
        versions = {
            name: operator_cluster.get(name)["metadata"]["resourceVersion"] for name in names
        }
        time.sleep(3 * float(TEST_SETTINGS["RAYCES_RESYNC_SECONDS"]))
        for name in names:
            assert operator_cluster.get(name)["metadata"]["resourceVersion"] == versions[name]
    after = settled
    reconciles = total(after, "rayces_reconciles_total") - total(before, "rayces_reconciles_total")
    calls = total(after, "rayces_api_requests_total") - total(before, "rayces_api_requests_total")
    started = total(after, "rayces_jobs_started_total") - total(before, "rayces_jobs_started_total")
    assert started == RESOURCES
    assert reconciles >= RESOURCES
    per_reconcile = calls / reconciles
    assert per_reconcile > 1
    figures = (
        f"operator footprint: {RESOURCES} SchemaMigrations to Ready in {reconciles:.0f} "
        f"reconciles, {calls:.0f} API requests ({per_reconcile:.1f} per reconcile), "
        f"peak RSS {running_operator.peak_rss_kib / 1024:.0f} MiB"
    )
    request.config.stash[FOOTPRINT] = figures
    with running_operator.log_path.open("a") as log:
        log.write(figures + "\n")
