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

from typing import Any

from kubernetes import client
from tests.controller.operator_support import (
    BASELINE,
    Cluster,
    assert_ran_on_the_real_node,
    baseline_with_duplicate_emails,
    database_revision,
    eventually,
    head_revision,
    migration_lock_held,
    pods_of,
    revisions,
    schema_migration,
    terminated_state,
    unique,
)
from tests.controlplane.realnode import RealNode

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
    node_cluster.secret(secret, pod_database_url)
    apply_in(node_cluster, name, secret, rollbackOnFailure=True, allowDataLoss=True)
    try:
        status = node_cluster.wait_for(name, "Stalled", "MigrationFailed", timeout=300)
        assert database_revision(database_url) == BASELINE
        rollback = status["rollback"]
        assert (rollback["attempted"], rollback["outcome"]) == (True, "Succeeded")
        assert (rollback["fromRevision"], rollback["toRevision"]) == ("20250713000004", BASELINE)
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
