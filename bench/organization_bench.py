"""Organization benchmark: `python -m bench --organizations N` (part of `make bench`).

On the test control plane (real kube-apiserver, etcd and kube-controller-manager, the emulated
node running each seed Job's pod as a local process) and one embedded PostgreSQL server:

1. N `raycesctl seed` commands run directly, 4 at a time, on one database (the floor);
2. N Organizations (default 200) applied at once on another database whose SchemaMigration is
   Ready: the time until all are Ready, the operator's CPU seconds per Organization, its peak
   RSS, the API requests it sent per Organization (its /metrics), and the ratio to the floor.

The operator runs with its default of 4 seed Jobs at once per database, so both sides seed 4 at
a time; the difference is what the operator, the Job controller and the node add.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.operator_bench import _cpu_seconds
from rayces.migrations.embedded import temporary_database, temporary_embedded_server

PARALLEL = 4


def _direct(url: str, count: int) -> float:
    raycesctl = str(Path(sys.executable).with_name("raycesctl"))

    def seed(index: int) -> None:
        subprocess.run(
            [raycesctl, "seed", "--org", f"direct-{index}", "--name", f"Direct {index}",
             "--database-url", url, "--output", "json"],
            check=True, timeout=300, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    started = time.perf_counter()
    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(seed, range(count)))
    return time.perf_counter() - started


def _api_requests(metrics: dict[str, float]) -> dict[str, float]:
    """API requests by `verb resource`, and reconciles by kind, from the operator's /metrics."""
    counts: dict[str, float] = {}
    for name, value in metrics.items():
        if name.startswith(("rayces_api_requests_total{", "rayces_reconciles_total{")):
            labels = dict(
                part.split("=", 1) for part in name[name.index("{") + 1 : -1].split(",") if part
            )
            key = " ".join(label.strip('"') for label in labels.values())
            prefix = "reconcile " if name.startswith("rayces_reconciles") else ""
            counts[prefix + key] = value
    return counts


def _ready(custom: Any, namespace: str) -> int:
    listing = custom.list_namespaced_custom_object(
        "rayces.io", "v1alpha1", namespace, "organizations"
    )
    return sum(
        any(
            item.get("type") == "Ready" and item.get("status") == "True"
            for item in (organization.get("status") or {}).get("conditions") or ()
        )
        for organization in listing["items"]
    )


def _where_it_goes(spent: dict[str, float], count: int, log: str) -> None:
    """Requests by verb and resource, and reconciles by the reason they ended with."""
    for key, value in sorted(spent.items(), key=lambda item: -item[1]):
        if value:
            print(f"    {key}: {value / count:.1f} per Organization")
    reasons: dict[str, int] = {}
    for line in log.splitlines():
        if '"kind": "Organization"' in line:
            reason = str(json.loads(line).get("reason"))
            reasons[reason] = reasons.get(reason, 0) + 1
    print("  reconciles by the reason they ended with: " + ", ".join(
        f"{reason} {number}" for reason, number in sorted(reasons.items(), key=lambda i: -i[1])
    ))  # fmt: skip


def _organizations(count: int, migration: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "rayces.io/v1alpha1",
                "kind": "Organization",
                "metadata": {"name": f"bench-org-{index}", "namespace": namespace},
                "spec": {
                    "subdomain": f"bench-org-{index}",
                    "displayName": f"Bench {index}",
                    "schemaMigrationRef": {"name": migration},
                },
            }
            for index in range(count)
        ],
    }


def run_organization_benchmark(*, count: int = 200) -> int:
    """Print the figures; return 0."""
    from kubernetes import client
    from tests.controller.operator_support import (
        DEPLOY_DIR,
        NAMESPACE,
        Cluster,
        OperatorProcess,
        kubectl,
        schema_migration,
    )
    from tests.controlplane.binaries import locate_binaries
    from tests.controlplane.harness import CRDS_DIR, running_control_plane

    with ExitStack() as stack:
        server_url = stack.enter_context(temporary_embedded_server())
        plane = stack.enter_context(running_control_plane(CRDS_DIR, binaries=locate_binaries()))
        kubectl(plane.kubeconfig, "apply", "-k", str(DEPLOY_DIR))
        kubectl(
            plane.kubeconfig, "-n", NAMESPACE, "scale", "deployment/rayces-operator", "--replicas=0"
        )
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        operator = OperatorProcess(
            kubeconfig=plane.kubeconfig,
            log_path=workdir / "op.log",
            environment={"RAYCES_JOB_IMAGE": "rayces-operator:bench"},
        )
        operator.start()
        stack.callback(operator.stop)
        api = stack.enter_context(plane.api_client())
        cluster = Cluster(plane=plane, api=api)

        direct_url = stack.enter_context(temporary_database(server_url, prefix="seeddirect"))
        subprocess.run(
            [str(Path(sys.executable).with_name("raycesctl")), "migrate", "--database-url",
             direct_url, "-q"],
            check=True, timeout=300,
        )  # fmt: skip
        direct = _direct(direct_url, count)

        url = stack.enter_context(temporary_database(server_url, prefix="seedoperator"))
        cluster.secret("bench-db", url)
        cluster.apply(schema_migration("bench", "bench-db"))
        cluster.wait_for("bench", "Ready", timeout=300)
        assert operator.process is not None
        pid = operator.process.process.pid
        cpu_before = _cpu_seconds(pid)
        requests_before = _api_requests(operator.metrics())
        manifest = json.dumps(_organizations(count, "bench", NAMESPACE))
        started = time.perf_counter()
        kubectl(plane.kubeconfig, "apply", "-f", "-", stdin=manifest)
        custom = client.CustomObjectsApi(api)
        while _ready(custom, NAMESPACE) < count:
            operator.sample_memory()
            time.sleep(1)
        elapsed = time.perf_counter() - started
        operator.sample_memory()
        cpu = _cpu_seconds(pid) - cpu_before
        after = _api_requests(operator.metrics())
        spent = {key: value - requests_before.get(key, 0.0) for key, value in after.items()}
        requests = sum(value for key, value in spent.items() if not key.startswith("reconcile"))
        print(
            f"{count} Organizations at once → all Ready in {elapsed:.1f}s; {count} `raycesctl "
            f"seed` directly, {PARALLEL} at a time: {direct:.1f}s; ratio {elapsed / direct:.2f}x"
        )
        print(
            f"  operator CPU {cpu:.1f}s ({cpu / count * 1000:.0f} ms per Organization), peak RSS "
            f"{operator.sample_memory() / 1024:.0f} MiB, {requests / count:.1f} API requests per "
            "Organization"
        )
        _where_it_goes(spent, count, operator.log_text())
        if os.environ.get("RAYCES_BENCH_KEEP_LOG"):
            Path(os.environ["RAYCES_BENCH_KEEP_LOG"]).write_text(operator.log_text())
        kubectl(
            plane.kubeconfig, "-n", NAMESPACE, "delete", "organization", "--all", "--wait=false"
        )
    return 0
