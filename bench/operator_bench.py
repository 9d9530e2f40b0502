"""Operator benchmark: `python -m bench --operator` (part of `make bench`).

On the test control plane (real kube-apiserver, etcd and kube-controller-manager, the emulated
node) and one embedded PostgreSQL server:

1. wall time from `kubectl apply` of a SchemaMigration to Ready at head on an empty database,
   as a ratio to `raycesctl migrate` run directly, and where the difference goes: the operator
   creating the Job, the Pod starting (emulated: a local process), raycesctl itself, and the
   operator noticing the result (from the API's timestamps, which have one-second resolution);
2. the operator's CPU seconds and peak RSS while it brings N SchemaMigrations (default 20) on
   N databases to Ready.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from rayces.migrations.embedded import temporary_database, temporary_embedded_server


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _direct(server_url: str, repeat: int) -> float:
    raycesctl = str(Path(sys.executable).with_name("raycesctl"))
    timings = []
    for _ in range(repeat):
        with temporary_database(server_url, prefix="direct") as url:
            started = time.perf_counter()
            subprocess.run(
                [raycesctl, "migrate", "--database-url", url, "-q"],
                check=True,
                timeout=300,
                stdout=subprocess.DEVNULL,
            )
            timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def run_operator_benchmark(*, count: int = 20, repeat: int = 3) -> int:
    """Print the figures; return 0."""
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
        operator = OperatorProcess(kubeconfig=plane.kubeconfig, log_path=workdir / "op.log")
        operator.start()
        stack.callback(operator.stop)
        api = stack.enter_context(plane.api_client())
        cluster = Cluster(plane=plane, api=api)

        direct = _direct(server_url, repeat)
        through_operator: list[float] = []
        parts: list[dict[str, float]] = []
        for index in range(repeat):
            with temporary_database(server_url, prefix="viaop") as url:
                name = f"bench-single-{index}"
                cluster.secret(name, url)
                started = time.perf_counter()
                cluster.apply(schema_migration(name, name))
                status = cluster.wait_for(name, "Ready", timeout=300)
                through_operator.append(time.perf_counter() - started)
                parts.append(_breakdown(cluster, name, status))
                cluster.delete(name)
        median = statistics.median(through_operator)
        print(
            f"apply → Ready at head (median of {repeat}): {median:.2f}s; raycesctl migrate "
            f"directly: {direct:.2f}s; ratio {median / direct:.1f}x"
        )
        for key in parts[0]:
            print(f"  {key}: {statistics.median(part[key] for part in parts):.1f}s")

        assert operator.process is not None
        pid = operator.process.process.pid
        cpu_before = _cpu_seconds(pid)
        with ExitStack() as databases:
            names = []
            for index in range(count):
                url = databases.enter_context(temporary_database(server_url, prefix=f"many{index}"))
                name = f"bench-many-{index}"
                cluster.secret(name, url)
                names.append(name)
            started = time.perf_counter()
            for name in names:
                cluster.apply(schema_migration(name, name))
            for name in names:
                cluster.wait_for(name, "Ready", timeout=900)
                operator.sample_memory()
            elapsed = time.perf_counter() - started
            for name in names:
                cluster.delete(name)
        cpu = _cpu_seconds(pid) - cpu_before
        print(
            f"{count} SchemaMigrations on {count} databases: Ready after {elapsed:.1f}s; "
            f"operator CPU {cpu:.1f}s ({cpu / count:.2f}s each), peak RSS "
            f"{operator.sample_memory() / 1024:.0f} MiB"
        )
    return 0


def _breakdown(cluster: Any, name: str, status: dict[str, Any]) -> dict[str, float]:
    """Where the time between apply and Ready went, from the API's own timestamps."""
    resource = cluster.get(name)
    job = cluster.jobs_of(name)[0]
    created = _seconds(resource["metadata"]["creationTimestamp"])
    job_created = _seconds(job["metadata"]["creationTimestamp"])
    run = status["lastRun"]
    started, finished = _seconds(run["startedAt"]), _seconds(run["finishedAt"])
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    return {
        "operator creates the Job": job_created - created,
        "Pod starts (emulated node)": started - job_created,
        "raycesctl runs": finished - started,
        "operator records the result": _seconds(ready["lastTransitionTime"]) - finished,
    }
