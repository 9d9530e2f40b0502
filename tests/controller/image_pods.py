"""Pods and Jobs of the project's image, shaped as the operator's Jobs run it.

The operator's Jobs run as uid/gid 10001 on a read-only root filesystem with an emptyDir at
/tmp, an explicit `command: [raycesctl, ...]` and the termination message at
/dev/termination-log. The node and image tests build their Pods the same way, so what passes
here is what a cluster will run.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client
from pydantic import BaseModel
from tests.controlplane.objects import as_model

TERMINATION_MESSAGE_PATH = "/dev/termination-log"
IMAGE_USER = 10001


def container(image: str, command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """The container of an operator Job: the image's user, read-only root, /tmp writable."""
    return {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": command,
        "env": [{"name": key, "value": value} for key, value in (env or {}).items()],
        "securityContext": {
            "runAsUser": IMAGE_USER,
            "runAsGroup": IMAGE_USER,
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def pod_spec(
    image: str, command: list[str], env: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    """A Pod spec with one such container; `extra` adds Pod spec fields."""
    return {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 10,
        "automountServiceAccountToken": False,
        "containers": [container(image, command, env)],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
        **extra,
    }


def pod(name: str, spec: dict[str, Any]) -> client.V1Pod:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    return as_model(client.V1Pod, manifest)


def job(name: str, spec: dict[str, Any], **job_spec: Any) -> client.V1Job:
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}, **job_spec},
    }
    return as_model(client.V1Job, manifest)


def plain(model: BaseModel) -> dict[str, Any]:
    """An API object as plain data with camelCase keys, as `kubectl get -o json` shows it."""
    data: dict[str, Any] = model.model_dump(by_alias=True, mode="json", exclude_none=True)
    return data


def terminated(pod_object: client.V1Pod) -> dict[str, Any]:
    """The terminated state of the Pod's container (it must have ended), as plain data:
    `exitCode`, `reason`, `message` (absent when empty)."""
    statuses = plain(pod_object).get("status", {}).get("containerStatuses") or []
    assert statuses, f"Pod {pod_object} has no container status"
    state: dict[str, Any] = statuses[0].get("state", {})
    assert "terminated" in state, f"not terminated: {state}"
    ended: dict[str, Any] = state["terminated"]
    return ended


def wait_for_job(
    batch: client.BatchV1Api, namespace: str, name: str, timeout: float = 180
) -> client.V1Job:
    """The Job once it has a Complete or Failed condition."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = batch.read_namespaced_job(name, namespace)
        conditions = current.status.conditions if current.status else None
        if any(c.type in ("Complete", "Failed") and c.status == "True" for c in conditions or []):
            return current
        time.sleep(0.5)
    raise AssertionError(f"Job {namespace}/{name} did not finish within {timeout:.0f}s")


def job_pods(core: client.CoreV1Api, namespace: str, name: str) -> list[client.V1Pod]:
    selector = f"batch.kubernetes.io/job-name={name}"
    items: list[client.V1Pod] = core.list_namespaced_pod(namespace, label_selector=selector).items
    return items
