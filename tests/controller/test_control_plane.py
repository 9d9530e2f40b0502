"""Checks of the test control plane itself, before any operator test leans on it.

Each check is something a mock of the client could not show: the apiserver refusing a
non-structural CRD schema and a custom resource that breaks its schema (with the server's
own message), the status subresource and optimistic concurrency, finalizers holding a
deletion, the real Job controller turning container exit codes into Complete or Failed,
the garbage collector deleting a Job's Pods, and RBAC answering 403 outside a Role.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from kubernetes import client
from tests.controlplane.binaries import pinned_kubernetes_version
from tests.controlplane.harness import (
    CRDS_DIR,
    ControlPlane,
    crd_established,
    load_crds,
    running_control_plane,
    wait_for_crd,
    wait_until,
)
from tests.controlplane.node import NODE_NAME
from tests.controlplane.objects import as_model

GROUP = "harness.rayces.io"
JOB_TIMEOUT_SECONDS = 90.0


def widget_crd(schema: dict[str, Any]) -> dict[str, Any]:
    """A namespaced test CRD `widgets.harness.rayces.io` with the given spec schema."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": schema,
                                "status": {
                                    "type": "object",
                                    "properties": {"phase": {"type": "string"}},
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


WIDGET_SPEC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["replicas"],
    "properties": {
        "replicas": {"type": "integer", "minimum": 1},
        "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
    },
    "x-kubernetes-validations": [
        {"rule": "self.replicas <= 10", "message": "replicas must be at most 10"}
    ],
}


def api_error(call: Callable[[], object]) -> client.ApiException:
    """The ApiException `call` raises; fails the test if it succeeds."""
    with pytest.raises(client.ApiException) as raised:
        call()
    return raised.value


def error_message(error: client.ApiException) -> str:
    """The apiserver's own message from an error response (a Status object)."""
    return str(json.loads(error.body or "{}").get("message", ""))


# -- the server -------------------------------------------------------------------------------


def test_apiserver_reports_a_stamped_release(api_client: client.ApiClient) -> None:
    """build.sh stamps the pinned release; KUBEBUILDER_ASSETS may hold another one."""
    version = client.VersionApi(api_client).get_code().git_version
    if os.environ.get("KUBEBUILDER_ASSETS"):
        assert re.fullmatch(r"v1\.\d+\.\d+", version), version
    else:
        assert version == pinned_kubernetes_version()


def test_the_raycesv3_namespace_and_the_emulated_node_exist(
    control_plane: ControlPlane, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    assert core.read_namespace("raycesv3").status.phase == "Active"  # type: ignore[union-attr]
    node = core.read_node(NODE_NAME)
    ready = [c for c in node.status.conditions or [] if c.type == "Ready"]  # type: ignore[union-attr]
    assert [c.status for c in ready] == ["True"]


def test_every_crd_in_crds_dir_is_established(api_client: client.ApiClient) -> None:
    api = client.ApiextensionsV1Api(api_client)
    names = [definition["metadata"]["name"] for definition in load_crds(CRDS_DIR)]
    assert all(crd_established(api, name) for name in names), names


# -- CRD and custom resource validation -------------------------------------------------------


@pytest.mark.parametrize(
    ("spec_schema", "expected"),
    [
        pytest.param(
            {"type": "object", "properties": {"replicas": {"minimum": 1}}},
            "must not be empty for specified object fields",
            id="property-without-type",
        ),
        pytest.param(
            {"type": "object", "properties": {"replicas": {"type": "integr"}}},
            'Unsupported value: "integr"',
            id="unknown-type",
        ),
        pytest.param(
            {"type": "object", "x-kubernetes-preserve-unknown-fields": False},
            "must be true or undefined",
            id="preserve-unknown-fields-false",
        ),
    ],
)
def test_crd_with_invalid_structural_schema_is_refused(
    api_client: client.ApiClient, spec_schema: dict[str, Any], expected: str
) -> None:
    api = client.ApiextensionsV1Api(api_client)
    definition = as_model(client.V1CustomResourceDefinition, widget_crd(spec_schema))
    error = api_error(lambda: api.create_custom_resource_definition(definition))
    assert error.status == 422
    assert expected in error_message(error)


@dataclass(frozen=True)
class Widgets:
    """Widget custom resources in one namespace, as plain dicts."""

    api: client.CustomObjectsApi
    namespace: str

    def _where(self) -> tuple[str, str, str, str]:
        return GROUP, "v1", self.namespace, "widgets"

    def create(self, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": name, **metadata},
            "spec": spec,
        }
        return cast(dict[str, Any], self.api.create_namespaced_custom_object(*self._where(), body))

    def get(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.api.get_namespaced_custom_object(*self._where(), name))

    def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        replaced = self.api.replace_namespaced_custom_object(*self._where(), name, body)
        return cast(dict[str, Any], replaced)

    def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        patched = self.api.patch_namespaced_custom_object(*self._where(), name, patch)
        return cast(dict[str, Any], patched)

    def patch_status(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        patched = self.api.patch_namespaced_custom_object_status(*self._where(), name, patch)
        return cast(dict[str, Any], patched)

    def delete(self, name: str) -> None:
        self.api.delete_namespaced_custom_object(*self._where(), name)


@pytest.fixture(scope="module")
def widget_crd_installed(control_plane: ControlPlane) -> Iterator[None]:
    """The Widget test CRD, installed for this module and removed after it."""
    with control_plane.api_client() as api_client:
        extensions = client.ApiextensionsV1Api(api_client)
        definition = widget_crd(WIDGET_SPEC_SCHEMA)
        extensions.create_custom_resource_definition(
            as_model(client.V1CustomResourceDefinition, definition)
        )
        wait_for_crd(extensions, definition["metadata"]["name"])
        yield
        extensions.delete_custom_resource_definition(definition["metadata"]["name"])


@pytest.fixture
def widgets(widget_crd_installed: None, api_client: client.ApiClient, namespace: str) -> Widgets:
    return Widgets(client.CustomObjectsApi(api_client), namespace)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"replicas": 0},
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or "
            "equal to 1",
            id="below-minimum",
        ),
        pytest.param(
            {"replicas": "three"},
            "spec.replicas in body must be of type integer",
            id="wrong-type",
        ),
        pytest.param(
            {"replicas": 1, "mode": "reckless"},
            'spec.mode: Unsupported value: "reckless"',
            id="not-in-enum",
        ),
        pytest.param({}, "spec.replicas: Required value", id="required-missing"),
        pytest.param({"replicas": 11}, "replicas must be at most 10", id="cel-rule"),
    ],
)
def test_custom_resource_violating_its_schema_is_refused(
    widgets: Widgets, spec: dict[str, Any], expected: str
) -> None:
    error = api_error(lambda: widgets.create("bad", spec))
    assert error.status == 422
    assert expected in error_message(error)


def test_valid_custom_resource_gets_schema_defaults(widgets: Widgets) -> None:
    created = widgets.create("good", {"replicas": 2})
    assert created["spec"] == {"replicas": 2, "mode": "safe"}


def test_status_is_written_only_through_the_status_subresource(widgets: Widgets) -> None:
    created = widgets.create("w", {"replicas": 1})
    updated = widgets.replace(created | {"status": {"phase": "Ready"}})
    assert "status" not in updated
    patched = widgets.patch_status("w", {"status": {"phase": "Ready"}})
    assert patched["status"] == {"phase": "Ready"}
    assert patched["metadata"]["generation"] == created["metadata"]["generation"]


def test_update_with_a_stale_resource_version_conflicts(widgets: Widgets) -> None:
    stale = widgets.create("w", {"replicas": 1})
    widgets.replace(stale | {"spec": {"replicas": 2}})
    error = api_error(lambda: widgets.replace(stale | {"spec": {"replicas": 3}}))
    assert error.status == 409


def test_finalizer_holds_deletion_until_removed(widgets: Widgets) -> None:
    widgets.create("w", {"replicas": 1}, finalizers=[f"{GROUP}/cleanup"])
    widgets.delete("w")
    assert widgets.get("w")["metadata"]["deletionTimestamp"]
    widgets.patch("w", {"metadata": {"finalizers": None}})
    error = api_error(lambda: widgets.get("w"))
    assert error.status == 404


# -- Jobs: the real Job controller, the emulated node -----------------------------------------


def job_manifest(
    name: str, script: str, *, backoff_limit: int = 0, extra_spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": "rayces/operator:test",
        "command": ["sh", "-c", script],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        }
        | (extra_spec or {}),
    }


def run_job(
    api_client: client.ApiClient, namespace: str, manifest: dict[str, Any]
) -> tuple[client.V1Job, list[client.V1Pod]]:
    """Create the Job, wait until the Job controller calls it Complete or Failed."""
    batch = client.BatchV1Api(api_client)
    name = manifest["metadata"]["name"]
    batch.create_namespaced_job(namespace, as_model(client.V1Job, manifest))

    def finished() -> bool:
        job = batch.read_namespaced_job(name, namespace)
        conditions = job.status.conditions if job.status else None
        return any(
            c.type in ("Complete", "Failed") and c.status == "True" for c in conditions or []
        )

    wait_until(f"Job {namespace}/{name} to finish", finished, timeout=JOB_TIMEOUT_SECONDS)
    pods = client.CoreV1Api(api_client).list_namespaced_pod(
        namespace, label_selector=f"batch.kubernetes.io/job-name={name}"
    )
    return batch.read_namespaced_job(name, namespace), pods.items


def job_condition(job: client.V1Job) -> tuple[str, str | None]:
    """(type, reason) of the Job's terminal condition."""
    conditions = job.status.conditions if job.status else None
    final = [c for c in conditions or [] if c.type in ("Complete", "Failed") and c.status == "True"]
    assert len(final) == 1, conditions
    return final[0].type, final[0].reason


def terminations(pods: list[client.V1Pod]) -> list[tuple[int, str, str | None]]:
    """(exit code, reason, termination message) of each Pod's container, oldest first."""
    ended = []
    for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp):  # type: ignore[union-attr,arg-type,return-value]
        state = pod.status.container_statuses[0].state  # type: ignore[union-attr,index]
        terminated = state.terminated  # type: ignore[union-attr]
        assert terminated is not None, pod.status
        ended.append((terminated.exit_code, terminated.reason or "", terminated.message))
    return ended


@pytest.mark.usefixtures("controller_manager")
@pytest.mark.parametrize(
    ("script", "backoff_limit", "expected"),
    [
        pytest.param(
            "echo migrated > /dev/termination-log; exit 0",
            0,
            (("Complete", "CompletionsReached"), [(0, "Completed", "migrated\n")]),
            id="exit-0-completes",
        ),
        pytest.param(
            "echo boom > /dev/termination-log; exit 1",
            1,
            (("Failed", "BackoffLimitExceeded"), [(1, "Error", "boom\n"), (1, "Error", "boom\n")]),
            id="exit-1-fails-after-backoff-limit",
        ),
    ],
)
def test_job_outcome_follows_the_container_exit_code(
    api_client: client.ApiClient,
    namespace: str,
    script: str,
    backoff_limit: int,
    expected: tuple[tuple[str, str], list[tuple[int, str, str]]],
) -> None:
    condition, pod_ends = expected
    manifest = job_manifest("job", script, backoff_limit=backoff_limit)
    job, pods = run_job(api_client, namespace, manifest)
    assert job_condition(job) == condition
    assert terminations(pods) == pod_ends
    assert all(pod.spec.node_name == NODE_NAME for pod in pods)  # type: ignore[union-attr]


@pytest.mark.usefixtures("controller_manager")
def test_pod_failure_policy_sees_the_exit_code(
    api_client: client.ApiClient, namespace: str
) -> None:
    policy = {
        "podFailurePolicy": {
            "rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]
        }
    }
    manifest = job_manifest("job", "exit 42", backoff_limit=5, extra_spec=policy)
    job, pods = run_job(api_client, namespace, manifest)
    assert job_condition(job) == ("Failed", "PodFailurePolicy")
    assert [code for code, _, _ in terminations(pods)] == [42]


@pytest.mark.usefixtures("controller_manager")
def test_container_environment_resolves_secrets_config_maps_and_fields(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_secret(
        namespace,
        as_model(
            client.V1Secret,
            {"metadata": {"name": "db"}, "stringData": {"url": "postgresql://db/rayces"}},
        ),
    )
    core.create_namespaced_config_map(
        namespace, as_model(client.V1ConfigMap, {"metadata": {"name": "cfg"}, "data": {"rev": "7"}})
    )
    env = [
        {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
        {"name": "REVISION", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "rev"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "TARGET", "value": "rev-$(REVISION)"},
    ]
    manifest = job_manifest(
        "env", 'printf "%s %s %s" "$DATABASE_URL" "$TARGET" "$POD" > /dev/termination-log'
    )
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] = env
    job, pods = run_job(api_client, namespace, manifest)
    assert job_condition(job)[0] == "Complete"
    [(_, _, message)] = terminations(pods)
    pod_name = pods[0].metadata.name  # type: ignore[union-attr]
    assert message == f"postgresql://db/rayces rev-7 {pod_name}"


@pytest.mark.usefixtures("controller_manager")
def test_deleting_a_job_stops_and_collects_its_pods(
    control_plane: ControlPlane, api_client: client.ApiClient, namespace: str
) -> None:
    batch, core = client.BatchV1Api(api_client), client.CoreV1Api(api_client)
    batch.create_namespaced_job(
        namespace, as_model(client.V1Job, job_manifest("sleeper", "exec sleep 300"))
    )
    selector = "batch.kubernetes.io/job-name=sleeper"

    def pods() -> list[client.V1Pod]:
        return core.list_namespaced_pod(namespace, label_selector=selector).items

    wait_until(
        "the sleeper Pod to run",
        lambda: [p.status.phase for p in pods()] == ["Running"],  # type: ignore[union-attr]
    )
    batch.delete_namespaced_job(
        "sleeper", namespace, body=client.V1DeleteOptions(propagation_policy="Background")
    )
    wait_until("the garbage collector to delete the Pod", lambda: pods() == [])


# -- RBAC --------------------------------------------------------------------------------------


@pytest.fixture
def narrow_user(
    control_plane: ControlPlane, api_client: client.ApiClient, namespace: str
) -> Iterator[client.ApiClient]:
    """A user who may only get and list ConfigMaps in `namespace`."""
    rbac = client.RbacAuthorizationV1Api(api_client)
    user = f"reader-{uuid.uuid4().hex[:6]}"
    rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}
    rbac.create_namespaced_role(
        namespace,
        as_model(client.V1Role, {"metadata": {"name": "reader"}, "rules": [rule]}),
    )
    binding = {
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    rbac.create_namespaced_role_binding(namespace, as_model(client.V1RoleBinding, binding))
    with control_plane.api_client(control_plane.user(user)) as user_client:
        yield user_client


@pytest.mark.parametrize(
    ("action", "allowed"),
    [
        pytest.param("list-configmaps-here", True, id="inside-role"),
        pytest.param("list-secrets-here", False, id="other-resource"),
        pytest.param("create-configmap-here", False, id="other-verb"),
        pytest.param("list-configmaps-in-raycesv3", False, id="other-namespace"),
    ],
)
def test_user_bound_to_a_narrow_role_is_forbidden_outside_it(
    narrow_user: client.ApiClient, namespace: str, action: str, allowed: bool
) -> None:
    core = client.CoreV1Api(narrow_user)
    config_map = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
    actions: dict[str, Callable[[], object]] = {
        "list-configmaps-here": lambda: core.list_namespaced_config_map(namespace),
        "list-secrets-here": lambda: core.list_namespaced_secret(namespace),
        "create-configmap-here": lambda: core.create_namespaced_config_map(namespace, config_map),
        "list-configmaps-in-raycesv3": lambda: core.list_namespaced_config_map("raycesv3"),
    }
    if allowed:
        actions[action]()
    else:
        error = api_error(actions[action])
        assert error.status == 403
        assert "forbidden" in error_message(error)


# -- teardown ----------------------------------------------------------------------------------


def start_sleeping_pod(plane: ControlPlane) -> int:
    """A Pod whose process sleeps on the emulated node; returns the process id."""
    manifest = {
        "metadata": {"name": "sleeper"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "i", "command": ["sleep", "300"]}],
        },
    }
    with plane.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        core.create_namespaced_pod(plane.namespace, as_model(client.V1Pod, manifest))

        def container_id() -> str:
            pod = core.read_namespaced_pod("sleeper", plane.namespace)
            statuses = pod.status.container_statuses if pod.status else None
            return (statuses[0].container_id or "") if statuses else ""

        wait_until("the sleeper to run", lambda: bool(container_id()))
        return int(container_id().removeprefix("emulated://"))


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.usefixtures("controller_manager")
def test_a_failing_test_still_tears_the_control_plane_down(control_plane: ControlPlane) -> None:
    """A second, short-lived control plane: an exception inside it must leave nothing."""
    with (
        pytest.raises(RuntimeError, match="test failure"),
        running_control_plane(CRDS_DIR, binaries=control_plane.binaries) as second,
    ):
        processes, workdir = second.processes, second.workdir
        sleeper = start_sleeping_pod(second)
        assert workdir.is_dir() and process_exists(sleeper)
        raise RuntimeError("test failure")
    assert not workdir.exists()
    assert [p.name for p in processes if p.running()] == []
    assert len(processes) == 3
    assert not process_exists(sleeper)
