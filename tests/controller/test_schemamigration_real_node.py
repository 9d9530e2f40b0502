"""The operator's key scenarios with its Jobs on the real node: containers of the project's image.

An operator runs as the `rayces-operator` ServiceAccount (the Role of deploy/) in a namespace of
its own whose Pods go to the real node, with `RAYCES_JOB_IMAGE` set to the image containerd
holds. Every Job it starts therefore runs `raycesctl` as uid 10001 on a read-only root, reaches
the test PostgreSQL through the node's bridge (the Secret holds `pod_database_url`), writes its
JSON result to the termination message, and gets a real SIGTERM when its Pod is deleted.

The operator and its admin helpers are conftest.py's `node_operator` and `node_cluster`. The
same scenarios with more detail (events, history, printer columns) run against the node emulator
in test_schemamigration_operator.py; these prove the image and the node keep them true.
"""

from __future__ import annotations

import random
import time
from typing import Any

import psycopg
from kubernetes import client
from tests.controller.operator_support import (
    BASELINE,
    REPOSITORY,
    Cluster,
    assert_ran_on_the_real_node,
    baseline_with_duplicate_emails,
    database_contents,
    database_revision,
    eventually,
    head_revision,
    migration_lock_held,
    pods_of,
    raycesctl,
    revisions,
    schema_migration,
    shipped_schema_migration,
    terminated_state,
    unique,
)
from tests.controlplane.realnode import RealNode
from tests.db.populated import fill_baseline

from rayces.migrations import commands
from rayces.migrations.embedded import temporary_database
from rayces.migrations.results import ExitCode, MigrationResult


def apply_in(cluster: Cluster, name: str, secret: str, **spec: Any) -> None:
    cluster.apply(schema_migration(name, secret, namespace=cluster.namespace, **spec))


def test_to_head_on_the_real_node(
    node_cluster: Cluster, real_node: RealNode, database_url: str, pod_database_url: str
) -> None:
    name, secret = unique("head"), unique("db")
    node_cluster.secret(secret, pod_database_url)
    apply_in(node_cluster, name, secret)
    try:
        status = node_cluster.wait_for(name, "Ready", timeout=300)
        assert database_revision(database_url) == head_revision()
        assert status["currentRevision"] == head_revision()
        assert status["lastRun"]["outcome"] == "Succeeded"
        assert status["lastRun"]["exitCode"] == 0
        # The steps come from the container's termination message.
        assert len(status["lastRun"]["steps"]) == len(revisions())
        (job,) = node_cluster.job_names(name)
        assert_ran_on_the_real_node(node_cluster, real_node, job)
    finally:
        node_cluster.delete(name)


def test_a_failing_revision_is_rolled_back_on_the_real_node(
    node_cluster: Cluster, real_node: RealNode, database_url: str, pod_database_url: str
) -> None:
    name, secret = unique("failing"), unique("db")
    baseline_with_duplicate_emails(database_url)
    before = database_contents(database_url)
    node_cluster.secret(secret, pod_database_url)
    # The sample as shipped (rollbackOnFailure, no allowDataLoss).
    node_cluster.apply(shipped_schema_migration(name, secret, namespace=node_cluster.namespace))
    try:
        status = node_cluster.wait_for(name, "Stalled", "MigrationFailed", timeout=300)
        assert database_revision(database_url) == BASELINE
        assert database_contents(database_url) == before
        rollback = status["rollback"]
        assert (rollback["attempted"], rollback["outcome"]) == (True, "Succeeded")
        assert (rollback["fromRevision"], rollback["toRevision"]) == ("20250713000004", BASELINE)
        assert {item["object"] for item in rollback["dropped"]} == {
            "table organizations",
            "column users.organization_id",
            "column posts.organization_id",
            "column likes.organization_id",
        }
        failed = [run for run in status["history"] if run["purpose"] == "apply"][-1]
        assert failed["exitCode"] == ExitCode.FAILED
        assert failed["error"]["kind"] == "migration_failed"
        assert failed["error"]["revision"] == "20250713000005"
        assert "twin@example.test" in failed["error"]["message"]
        assert node_cluster.job_actions(name) == ["migrate", "rollback"]
        for job in node_cluster.job_names(name):
            assert_ran_on_the_real_node(node_cluster, real_node, job)
    finally:
        node_cluster.delete(name)


def test_a_deleted_pod_is_interrupted_by_sigterm_and_retried_on_the_real_node(
    node_cluster: Cluster, real_node: RealNode, database_url: str, pod_database_url: str
) -> None:
    name, secret = unique("interrupted"), unique("db")
    node_cluster.secret(secret, pod_database_url)
    with migration_lock_held(database_url):
        apply_in(node_cluster, name, secret, timeouts={"lockWaitTimeoutSeconds": 600})
        try:
            job = eventually("a Job", lambda: node_cluster.job_names(name), 120)[0]

            def running_pod() -> dict[str, Any] | None:
                for pod in pods_of(node_cluster, job):
                    for status in pod["status"].get("containerStatuses") or []:
                        if "running" in (status.get("state") or {}):
                            return pod
                return None

            pod = eventually("the Job's container running", running_pod, 180)
            node_cluster.wait_for(name, "Reconciling", "JobRunning")
            # The kubelet stops the container with SIGTERM; raycesctl ends the lock wait.
            client.CoreV1Api(node_cluster.api).delete_namespaced_pod(
                pod["metadata"]["name"], node_cluster.namespace
            )
            ended = terminated_state(node_cluster, pod)
        except BaseException:
            node_cluster.delete(name)
            raise
    try:
        assert ended["exitCode"] == ExitCode.TERMINATED, ended
        result = MigrationResult.from_termination_message(ended.get("message", ""))
        assert result.error is not None
        assert result.error.kind.value == "interrupted"
        # Interrupted is retryable: the operator reports it and tries again, now unblocked.
        status = node_cluster.wait_for(name, "Ready", timeout=300)
        assert database_revision(database_url) == head_revision()
        first, last = status["history"][0], status["lastRun"]
        assert first["outcome"] == "Failed"
        assert first["error"]["kind"] == "interrupted"
        assert (last["attempt"], last["outcome"]) == (2, "Succeeded")
        reasons = {event["reason"] for event in node_cluster.events_of(name)}
        assert "RetryScheduled" in reasons
        jobs = node_cluster.job_names(name)
        assert len(jobs) == 2 and jobs[0] == job
        assert_ran_on_the_real_node(node_cluster, real_node, jobs[1])
    finally:
        node_cluster.delete(name)


#: Deletions that must land while the Job's `raycesctl migrate` works, and the most tries.
RANDOM_DELETIONS, MOST_TRIES = 10, 20
#: A populated MyHub baseline large enough that the upgrade takes a few seconds in the container.
POPULATED_USERS = 20_000


def _populated_baseline(url: str) -> None:
    result = raycesctl("migrate", "--to", BASELINE, "--database-url", url, "-q")
    assert result.returncode == 0, result.stderr
    fill_baseline(url, POPULATED_USERS, POPULATED_USERS // 2, POPULATED_USERS * 3)


def _running_pod(cluster: Cluster, job: str) -> dict[str, Any] | None:
    for pod in pods_of(cluster, job):
        for status in pod["status"].get("containerStatuses") or []:
            if "running" in (status.get("state") or {}):
                return pod
    return None


def test_a_pod_deleted_at_random_moments_of_a_populated_upgrade_on_the_real_node(
    node_cluster: Cluster, real_node: RealNode, postgres_server_url: str
) -> None:
    """Ten times, the migration Job's Pod is deleted at a moment drawn uniformly over the time
    its container takes to migrate a populated baseline: each time the container exits 143
    with the interrupted result, the operator schedules a retry, and the resource ends Ready at
    head with exactly two Jobs. A deletion that comes after the container finished is drawn
    again (and counted)."""
    structure = (REPOSITORY / "docs" / "structure.sql").read_text()
    rng = random.Random(2026_12_06)
    with temporary_database(postgres_server_url, prefix="populated") as template_url:
        _populated_baseline(template_url)
        template = str(psycopg.conninfo.conninfo_to_dict(template_url)["dbname"])
        with temporary_database(postgres_server_url, prefix="timing") as timing_url:
            clone_into(timing_url, template)
            started = time.monotonic()
            assert raycesctl("migrate", "--database-url", timing_url, "-q").returncode == 0
            # The container is slower than the host; a draw past its end is drawn again.
            window = 1.5 * (time.monotonic() - started)
        interrupted, finished_first = 0, 0
        for _ in range(MOST_TRIES):
            if interrupted == RANDOM_DELETIONS:
                break
            with temporary_database(postgres_server_url, prefix="random") as url:
                clone_into(url, template)
                if _delete_at_random(node_cluster, real_node, url, rng.uniform(0, window)):
                    assert commands.dump_schema(url) == structure
                    interrupted += 1
                else:
                    finished_first += 1
    print(f"\nreal node: {interrupted} Pods deleted mid-run, {finished_first} after the run")
    assert interrupted == RANDOM_DELETIONS, f"only {interrupted} of {MOST_TRIES} landed mid-run"


def clone_into(url: str, template: str) -> None:
    """Replace `url`'s (empty) database by a copy of `template`."""
    from psycopg import sql

    name = str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
        connection.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )


def _delete_at_random(cluster: Cluster, node: RealNode, url: str, moment: float) -> bool:
    """Migrate `url` through a SchemaMigration, deleting the Job's Pod `moment` seconds after
    its container starts. True if that interrupted the run (and everything else held); False
    if the container had finished first."""
    name, secret = unique("random"), unique("db")
    cluster.secret(secret, node.pod_database_url(url))
    apply_in(cluster, name, secret)
    try:
        job = eventually("a Job", lambda: cluster.job_names(name), 120)[0]
        pod = eventually("the Job's container running", lambda: _running_pod(cluster, job), 180)
        time.sleep(moment)
        client.CoreV1Api(cluster.api).delete_namespaced_pod(
            pod["metadata"]["name"], cluster.namespace
        )
        ended = terminated_state(cluster, pod)
        if ended["exitCode"] == 0:
            cluster.wait_for(name, "Ready", timeout=300)
            return False
        assert ended["exitCode"] == ExitCode.TERMINATED, (moment, ended)
        result = MigrationResult.from_termination_message(ended.get("message", ""))
        assert result.error is not None and result.error.kind.value == "interrupted", result
        status = cluster.wait_for(name, "Ready", timeout=300)
        assert database_revision(url) == head_revision()
        assert status["history"][0]["error"]["kind"] == "interrupted"
        assert status["lastRun"]["outcome"] == "Succeeded"
        assert "RetryScheduled" in {event["reason"] for event in cluster.events_of(name)}
        assert len(cluster.job_names(name)) == 2
        return True
    finally:
        cluster.delete(name)
