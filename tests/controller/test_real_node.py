"""The real test node: Jobs of the project's image run as containers, and teardown is clean.

These tests prove the `real_node` fixture the operator's end-to-end scenarios run on: the node
joins the control plane, kube-scheduler binds the Pods of its namespaces to it while the
emulator keeps the others, containers run as the image's user on a read-only root, exit codes
reach a Job's podFailurePolicy, logs and exec go through the apiserver, Pods reach the test
PostgreSQL, and stopping the node leaves the machine as it was.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import psycopg
import pytest
from kubernetes import client
from tests.controller import image_pods
from tests.controlplane.binaries import pinned_kubernetes_version
from tests.controlplane.harness import ControlPlane
from tests.controlplane.node import NODE_NAME as EMULATED_NODE_NAME
from tests.controlplane.node import REAL_NODE_LABEL
from tests.controlplane.realnode import NODE_IP, RealNode, TeardownReport, wait_for_pod_end

from rayces.migrations.results import MigrationResult


def test_node_teardown_restores_the_machine(node_teardown_report: TeardownReport) -> None:
    """The node changed the machine while it ran (so the check has teeth) and left nothing."""
    assert node_teardown_report.changed_while_running, "the node changed nothing to restore"
    assert node_teardown_report.left_after_teardown == []


def test_containerd_that_cannot_start_fails_loudly_and_leaves_nothing(
    node_failed_start_report: TeardownReport,
) -> None:
    """No fallback to the emulator: the error names containerd and shows its exit."""
    (message,) = node_failed_start_report.changed_while_running
    assert message.startswith("containerd did not start: containerd exited with code 1")
    assert node_failed_start_report.left_after_teardown == []


def test_node_is_ready_labelled_and_tainted(
    real_node: RealNode, api_client: client.ApiClient
) -> None:
    node = image_pods.plain(client.CoreV1Api(api_client).read_node(real_node.name))
    status = node["status"]
    assert [c["status"] for c in status["conditions"] if c["type"] == "Ready"] == ["True"]
    assert node["metadata"]["labels"][REAL_NODE_LABEL] == "true"
    taints = [(t["key"], t["effect"]) for t in node["spec"]["taints"]]
    assert taints == [(REAL_NODE_LABEL, "NoSchedule")]
    addresses = [a["address"] for a in status["addresses"] if a["type"] == "InternalIP"]
    assert addresses == [NODE_IP]
    assert status["nodeInfo"]["kubeletVersion"] == pinned_kubernetes_version()
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")


def test_only_claimed_namespaces_use_the_real_node(
    real_node: RealNode, node_namespace: str, namespace: str, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    spec = image_pods.pod_spec(real_node.image, ["true"])
    for target in (node_namespace, namespace):
        core.create_namespaced_pod(target, image_pods.pod("placed", spec))
    on_real = image_pods.plain(wait_for_pod_end(core, node_namespace, "placed"))
    on_emulated = image_pods.plain(wait_for_pod_end(core, namespace, "placed"))
    assert (on_real["spec"]["nodeName"], on_emulated["spec"]["nodeName"]) == (
        real_node.name,
        EMULATED_NODE_NAME,
    )


@pytest.mark.parametrize(
    ("command", "succeeds"),
    [
        pytest.param(["raycesctl", "--help"], True, id="help-completes"),
        pytest.param(["raycesctl", "migrate"], False, id="usage-error-fails-the-job-at-once"),
    ],
)
def test_job_of_the_image_meets_its_pod_failure_policy(
    real_node: RealNode,
    node_namespace: str,
    api_client: client.ApiClient,
    command: list[str],
    succeeds: bool,
) -> None:
    """A usage error (exit 2) matches a FailJob rule, as the operator's Jobs will declare."""
    batch, core = client.BatchV1Api(api_client), client.CoreV1Api(api_client)
    name = f"job-{uuid.uuid4().hex[:6]}"
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [2]}}]}
    manifest = image_pods.job(
        name, image_pods.pod_spec(real_node.image, command), podFailurePolicy=policy
    )
    batch.create_namespaced_job(node_namespace, manifest)
    finished = image_pods.wait_for_job(batch, node_namespace, name)
    conditions = {
        c["type"]: c
        for c in image_pods.plain(finished)["status"]["conditions"]
        if c["status"] == "True"
    }
    (pod,) = image_pods.job_pods(core, node_namespace, name)
    state = image_pods.terminated(pod)
    if succeeds:
        assert "Complete" in conditions
        assert state["exitCode"] == 0
    else:
        assert conditions["Failed"]["reason"] == "PodFailurePolicy"
        assert state["exitCode"] == 2
        # No message file was written, so FallbackToLogsOnError shows the one-line error.
        assert "no database given" in state["message"]


def test_logs_and_exec_go_through_the_apiserver(
    real_node: RealNode,
    node_namespace: str,
    control_plane: ControlPlane,
    api_client: client.ApiClient,
) -> None:
    core = client.CoreV1Api(api_client)
    spec = image_pods.pod_spec(real_node.image, ["sh", "-c", "echo started; exec sleep 300"])
    spec["terminationGracePeriodSeconds"] = 1
    core.create_namespaced_pod(node_namespace, image_pods.pod("sleeper", spec))
    kubectl = ["kubectl", "--kubeconfig", str(control_plane.kubeconfig), "-n", node_namespace]
    subprocess.run(
        [*kubectl, "wait", "--for=condition=Ready", "pod/sleeper", "--timeout=120s"],
        check=True,
        capture_output=True,
        timeout=150,
    )
    logs = subprocess.run(
        [*kubectl, "logs", "sleeper"], check=True, capture_output=True, text=True, timeout=60
    )
    executed = subprocess.run(
        [*kubectl, "exec", "sleeper", "--", "sh", "-c", "id -u; touch /probe || echo read-only"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert logs.stdout == "started\n"
    assert executed.stdout.splitlines() == ["10001", "read-only"]


def test_pod_migrates_the_test_database(
    real_node: RealNode,
    node_namespace: str,
    api_client: client.ApiClient,
    pod_database_url: str,
    database_url: str,
) -> None:
    """A Pod on the real node reaches the suite's PostgreSQL and reports through its message."""
    core = client.CoreV1Api(api_client)
    command = [
        "raycesctl",
        "migrate",
        "--output",
        "json",
        "--termination-message-path",
        image_pods.TERMINATION_MESSAGE_PATH,
    ]
    spec = image_pods.pod_spec(real_node.image, command, {"DATABASE_URL": pod_database_url})
    core.create_namespaced_pod(node_namespace, image_pods.pod("migrate", spec))
    ended = wait_for_pod_end(core, node_namespace, "migrate", timeout=300)
    state = image_pods.terminated(ended)
    result = MigrationResult.from_termination_message(state.get("message", ""))
    assert (state["exitCode"], result.succeeded) == (0, True), state
    with psycopg.connect(database_url) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone() or (
            "",
        )
    assert revision == result.to_revision
    assert json.loads(state["message"])["steps"], "migrating an empty database ran no step"
