"""The operator's key scenarios with its Jobs on the real node: containers of the project's image.

An operator runs as the `rayces-operator` ServiceAccount (the Role of deploy/) in a namespace of
its own whose Pods go to the real node, with `RAYCES_JOB_IMAGE` set to the image containerd
holds. Every Job it starts therefore runs `raycesctl` as uid 10001 on a read-only root, reaches
the test PostgreSQL through the node's bridge (the Secret holds `pod_database_url`), writes its
JSON result to the termination message, and gets a real SIGTERM when its Pod is deleted.

The same scenarios with more detail (events, history, printer columns) run against the node
emulator in test_schemamigration_operator.py; these prove the image and the node keep them true.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from tests.controller.operator_support import (
    BASELINE,
    TEST_SETTINGS,
    Cluster,
    OperatorProcess,
    baseline_with_duplicate_emails,
    database_revision,
    eventually,
    forbidden_lines,
    head_revision,
    install_operator_identity,
    migration_lock_held,
    operator_role,
    revisions,
    schema_migration,
    service_account_kubeconfig_for,
    unique,
)
from tests.controlplane.harness import ControlPlane
from tests.controlplane.realnode import RealNode

from rayces.migrations.results import ExitCode, MigrationResult


@pytest.fixture(scope="module")
def node_operator(
    real_node: RealNode, deployed: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """An operator of its own namespace, claimed by the real node, Jobs of the project image."""
    namespace = f"node-ops-{uuid.uuid4().hex[:8]}"
    deployed.create_namespace(namespace)
    # Claimed before the operator creates any Job, so every Pod goes to the real node.
    real_node.claim_namespace(namespace)
    install_operator_identity(deployed, namespace, operator_role()["rules"])
    directory = tmp_path_factory.mktemp("node-operator")
    operator = OperatorProcess(
        kubeconfig=service_account_kubeconfig_for(deployed, namespace, directory / "kubeconfig"),
        log_path=directory / "operator.log",
        namespace=namespace,
        environment={**TEST_SETTINGS, "RAYCES_JOB_IMAGE": real_node.image},
    )
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()
        with deployed.api_client() as api:
            client.CoreV1Api(api).delete_namespace(namespace)
        log_directory = os.environ.get("RAYCES_CONTROLPLANE_LOG_DIR")
        if log_directory:
            destination = Path(log_directory)
            destination.mkdir(parents=True, exist_ok=True)
            (destination / "node-operator.log").write_text(operator.log_text())


@pytest.fixture
def node_cluster(
    node_operator: OperatorProcess, api_client: client.ApiClient, deployed: ControlPlane
) -> Iterator[Cluster]:
    """Admin helpers in the node operator's namespace; a 403 in its log fails the test."""
    log_start = len(node_operator.log_text())
    yield Cluster(plane=deployed, api=api_client, namespace=node_operator.namespace)
    refused = forbidden_lines(node_operator.log_text()[log_start:])
    if refused:
        pytest.fail(f"the operator was refused by RBAC: {refused[0][:500]}", pytrace=False)


def apply_in(cluster: Cluster, name: str, secret: str, **spec: Any) -> None:
    manifest = schema_migration(name, secret, **spec)
    manifest["metadata"]["namespace"] = cluster.namespace
    cluster.apply(manifest)


def pods_of(cluster: Cluster, job: str) -> list[dict[str, Any]]:
    pods = client.CoreV1Api(cluster.api).list_namespaced_pod(
        cluster.namespace, label_selector=f"job-name={job}"
    )
    items: list[dict[str, Any]] = cluster.plain(pods)["items"]
    return items


def assert_ran_on_the_real_node(cluster: Cluster, real_node: RealNode, job: str) -> None:
    """The Job's Pod ran as a container of the project image on the real node."""
    (pod,) = pods_of(cluster, job)
    assert pod["spec"]["nodeName"] == real_node.name
    (container,) = pod["spec"]["containers"]
    assert container["image"] == real_node.image
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    (state,) = pod["status"]["containerStatuses"]
    assert "terminated" in state["state"], state
    assert state["containerID"].startswith("containerd://")


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


def terminated_state(cluster: Cluster, pod: dict[str, Any]) -> dict[str, Any]:
    """Watch `pod` from its current version until its container has terminated; that state."""
    core = client.CoreV1Api(cluster.api)
    stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
        core.list_namespaced_pod,
        cluster.namespace,
        field_selector=f"metadata.name={pod['metadata']['name']}",
        resource_version=pod["metadata"]["resourceVersion"],
        timeout_seconds=180,
    )
    for event in stream:
        statuses = cluster.plain(event["object"])["status"].get("containerStatuses") or []
        for status in statuses:
            ended = (status.get("state") or {}).get("terminated")
            if ended:
                found: dict[str, Any] = ended
                return found
    raise AssertionError(f"pod {pod['metadata']['name']} never reported its container's end")


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
