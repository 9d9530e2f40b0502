"""The emulated node's decisions, checked without a server.

How the node emulator turns a container spec into argv and environment, which Pods it
refuses, how it reports exits: if these drift from kubelet's rules, the control-plane tests
would pass against a node no cluster has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from kubernetes import client
from tests.controlplane import pod_status
from tests.controlplane.container_spec import (
    ContainerConfigError,
    ObjectStore,
    container_argv,
    container_environment,
    decode_secret_data,
    expand_references,
    termination_message,
)
from tests.controlplane.node import (
    exit_status,
    node_selector_mismatch,
    should_restart,
    unsupported_reason,
)
from tests.controlplane.objects import as_model

SECRETS = {("ns", "db"): {"password": "s3cret"}}
CONFIG_MAPS = {("ns", "settings"): {"mode": "safe", "level": "3"}}


def lookup(objects: dict[tuple[str, str], dict[str, str]]) -> Any:
    def find(namespace: str, name: str) -> Mapping[str, str] | None:
        return objects.get((namespace, name))

    return find


STORE = ObjectStore(secret=lookup(SECRETS), config_map=lookup(CONFIG_MAPS))


def pod(container: dict[str, Any], **spec: Any) -> client.V1Pod:
    manifest = {
        "metadata": {"name": "job-abc", "namespace": "ns", "uid": "u-1", "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "main", "image": "img"} | container]} | spec,
    }
    return as_model(client.V1Pod, manifest)


def first_container(p: client.V1Pod) -> client.V1Container:
    assert p.spec is not None
    return p.spec.containers[0]


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        pytest.param("rev-$(REV)", {"REV": "7"}, "rev-7", id="defined"),
        pytest.param("rev-$(NOPE)", {}, "rev-$(NOPE)", id="undefined-stays"),
        pytest.param("$$(REV)", {"REV": "7"}, "$(REV)", id="escaped"),
        pytest.param("cost $$5", {}, "cost $5", id="double-dollar"),
        pytest.param("$REV", {"REV": "7"}, "$REV", id="shell-syntax-untouched"),
    ],
)
def test_reference_expansion_follows_kubernetes(
    text: str, variables: dict[str, str], expected: str
) -> None:
    assert expand_references(text, variables) == expected


@pytest.mark.parametrize(
    ("env", "env_from", "expected"),
    [
        pytest.param([{"name": "A", "value": "1"}], [], {"A": "1"}, id="literal"),
        pytest.param(
            [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
            [],
            {"P": "s3cret"},
            id="secret-key",
        ),
        pytest.param(
            [{"name": "M", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}],
            [],
            {"M": "safe"},
            id="config-map-key",
        ),
        pytest.param(
            [
                {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            ],
            [],
            {"N": "job-abc", "L": "x"},
            id="field-refs",
        ),
        pytest.param(
            [{"name": "mode", "value": "fast-$(CFG_level)"}],
            [{"prefix": "CFG_", "configMapRef": {"name": "settings"}}],
            {"CFG_mode": "safe", "CFG_level": "3", "mode": "fast-3"},
            id="env-from-then-env",
        ),
        pytest.param(
            [
                {
                    "name": "O",
                    "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}},
                }
            ],
            [],
            {},
            id="optional-missing-skipped",
        ),
    ],
)
def test_container_environment(
    env: list[dict[str, Any]], env_from: list[dict[str, Any]], expected: dict[str, str]
) -> None:
    p = pod({"env": env, "envFrom": env_from})
    assert container_environment(p, first_container(p), STORE) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param(
            [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}],
            'secret "gone" not found',
            id="missing-secret",
        ),
        pytest.param(
            [{"name": "P", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "x"}}}],
            "couldn't find key x in ConfigMap ns/settings",
            id="missing-key",
        ),
        pytest.param(
            [{"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}],
            "only literal values",
            id="resource-field-not-emulated",
        ),
    ],
)
def test_unresolvable_environment_is_a_config_error(
    env: list[dict[str, Any]], message: str
) -> None:
    p = pod({"env": env})
    with pytest.raises(ContainerConfigError, match=message):
        container_environment(p, first_container(p), STORE)


def test_argv_expands_references_and_maps_the_termination_message_path() -> None:
    p = pod(
        {
            "command": ["sh", "-c"],
            "args": ["echo $(GREETING) > /dev/termination-log", "--out=/dev/termination-log"],
        }
    )
    argv = container_argv(first_container(p), {"GREETING": "hi"}, "/tmp/pod/msg")
    assert argv == ["sh", "-c", "echo hi > /tmp/pod/msg", "--out=/tmp/pod/msg"]


def test_container_without_command_is_refused() -> None:
    p = pod({})
    with pytest.raises(ContainerConfigError, match="has no command"):
        container_argv(first_container(p), {}, "/tmp/msg")


@pytest.mark.parametrize(
    ("file", "log", "code", "policy", "expected"),
    [
        pytest.param(b"done", b"noise", 0, None, "done", id="file"),
        pytest.param(b"", b"a\nb\n", 1, "FallbackToLogsOnError", "a\nb\n", id="log-fallback"),
        pytest.param(b"", b"a\nb\n", 1, "File", "", id="no-fallback-by-default"),
        pytest.param(b"", b"a\n", 0, "FallbackToLogsOnError", "", id="no-fallback-on-success"),
        pytest.param(b"x" * 5000, b"", 0, None, "x" * 4096, id="truncated-to-4096-bytes"),
    ],
)
def test_termination_message(
    file: bytes, log: bytes, code: int, policy: str | None, expected: str
) -> None:
    assert termination_message(file, log, code, policy) == expected


def test_secret_data_is_decoded() -> None:
    assert decode_secret_data({"k": "czNjcmV0"}) == {"k": "s3cret"}


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [
        pytest.param("Never", 1, False, id="never"),
        pytest.param("OnFailure", 1, True, id="on-failure-failed"),
        pytest.param("OnFailure", 0, False, id="on-failure-succeeded"),
        pytest.param("Always", 0, True, id="always"),
    ],
)
def test_restart_policy(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


@pytest.mark.parametrize(
    ("return_code", "expected"),
    [
        pytest.param(0, (0, None), id="success"),
        pytest.param(3, (3, None), id="failure"),
        pytest.param(-15, (143, 15), id="sigterm"),
        pytest.param(-9, (137, 9), id="sigkill"),
    ],
)
def test_exit_status_as_a_runtime_reports_it(
    return_code: int, expected: tuple[int, int | None]
) -> None:
    assert exit_status(return_code) == expected


@pytest.mark.parametrize(
    ("spec", "refused"),
    [
        pytest.param({}, None, id="one-container"),
        pytest.param(
            {"initContainers": [{"name": "init", "image": "i"}]}, "init containers", id="init"
        ),
        pytest.param(
            {"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]},
            "several",
            id="sidecar",
        ),
    ],
)
def test_pods_the_node_cannot_run_are_refused(spec: dict[str, Any], refused: str | None) -> None:
    reason = unsupported_reason(pod({}, **spec))
    assert (reason is None) if refused is None else (refused in (reason or ""))


def test_node_selector() -> None:
    assert node_selector_mismatch({"kubernetes.io/os": "linux"}) is None
    assert node_selector_mismatch({"disk": "ssd"}) is not None


def test_terminated_patch_reports_exit_code_reason_and_message() -> None:
    termination = pod_status.Termination(1, "boom", "t0", "t1", 42)
    status = pod_status.terminated_patch("main", "img", termination)["status"]
    assert status["phase"] == "Failed"
    [container] = status["containerStatuses"]
    assert container["state"]["terminated"] == {
        "exitCode": 1,
        "reason": "Error",
        "message": "boom",
        "startedAt": "t0",
        "finishedAt": "t1",
        "containerID": "emulated://42",
    }
