"""deploy/ as kustomize renders it: the Deployment's safety settings and the image contract
(user 10001, raycesctl as an explicit command, read-only root with /tmp writable)."""

from __future__ import annotations

import subprocess
import urllib.request
from typing import Any

import pytest
import yaml
from tests.controller.operator_support import DEPLOY_DIR, OperatorProcess, kubectl_binary


def rendered() -> list[dict[str, Any]]:
    output = subprocess.run(
        [kubectl_binary(), "kustomize", str(DEPLOY_DIR)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [document for document in yaml.safe_load_all(output) if document]


def one(kind: str) -> dict[str, Any]:
    (found,) = [document for document in rendered() if document["kind"] == kind]
    return found


def test_deploy_has_every_part_in_the_raycesv3_namespace() -> None:
    kinds = sorted(document["kind"] for document in rendered())
    assert kinds == [
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "Deployment",
        "Namespace",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ]
    assert all(
        document["metadata"].get("namespace") in (None, "raycesv3") for document in rendered()
    )
    assert "ClusterRole" not in kinds


def test_the_deployment_runs_one_restricted_replica() -> None:
    deployment = one("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "rayces-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["command"][:2] == ["raycesctl", "operator"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["limits"]["memory"]
    assert container["resources"]["requests"]["cpu"]
    job_image = next(e["value"] for e in container["env"] if e["name"] == "RAYCES_JOB_IMAGE")
    assert job_image == container["image"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/readyz", b"ok\n", id="readiness"),
        pytest.param(
            "/metrics", b"# TYPE rayces_migration_duration_seconds histogram", id="metrics"
        ),
    ],
)
def test_the_running_operator_answers_its_probes(
    running_operator: OperatorProcess, path: str, expected: bytes
) -> None:
    url = f"http://127.0.0.1:{running_operator.metrics_port}{path}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.status == 200
        body = answer.read()
    assert expected in body or (path == "/metrics" and b"rayces_reconciles_total" in body)


def test_the_liveness_endpoint_is_kopfs(running_operator: OperatorProcess) -> None:
    url = f"http://127.0.0.1:{running_operator.health_port}/healthz"
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.status == 200
