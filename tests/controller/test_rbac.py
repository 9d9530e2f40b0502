"""The Role in deploy/ is least privilege: every rule is needed.

For each rule, an operator runs as a ServiceAccount bound to the Role without that rule, in a
namespace of its own, and serves a dry run (which uses every rule: watch and read the resource,
write its status, create, watch and label a Job, read its pod, look for the Secret, store the
SQL in a ConfigMap, post Events), with an Organization waiting for it (its finalizer and
status). Each one is refused (403) on what the missing rule grants, while the same scenario
with the whole Role reaches Ready. The rest of the suite runs its operator with the whole Role
and fails on any 403.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.controller.operator_support import (
    DEPLOY_DIR,
    TEST_SETTINGS,
    Cluster,
    OperatorProcess,
    eventually,
    forbidden_lines,
    install_operator_identity,
    kubectl,
    operator_role,
    service_account_kubeconfig_for,
)
from tests.controlplane.harness import ControlPlane

from rayces.migrations.embedded import temporary_database

ROLE = operator_role()


def refusals(operator: OperatorProcess) -> list[str]:
    return forbidden_lines(operator.log_text())


def rule_id(rule: dict[str, Any]) -> str:
    group = rule["apiGroups"][0] or "core"
    return f"{group}-{'-'.join(rule['resources'])}".replace("/", "-")


def role_without(index: int | None) -> list[dict[str, Any]]:
    rules = copy.deepcopy(ROLE["rules"])
    if index is not None:
        del rules[index]
    return list(rules)


def test_the_role_grants_only_what_is_listed(deployed: ControlPlane) -> None:
    listing = kubectl(
        deployed.kubeconfig,
        "auth",
        "can-i",
        "--list",
        "-n",
        "raycesv3",
        "--as=system:serviceaccount:raycesv3:rayces-operator",
    ).stdout
    for rule in ROLE["rules"]:
        resource, _, subresource = rule["resources"][0].partition("/")
        group = rule["apiGroups"][0]
        name = (f"{resource}.{group}" if group else resource) + (
            f"/{subresource}" if subresource else ""
        )
        line = next((line for line in listing.splitlines() if line.split()[0] == name), "")
        assert line and all(verb in line for verb in rule["verbs"]), (name, listing)
    assert "deployments" not in listing
    cluster_wide = kubectl(
        deployed.kubeconfig,
        "auth",
        "can-i",
        "list",
        "namespaces",
        "--as=system:serviceaccount:raycesv3:rayces-operator",
        check=False,
    )
    assert cluster_wide.stdout.strip() == "no"


def test_every_rule_of_the_role_is_needed(
    deployed: ControlPlane,
    api_client: client.ApiClient,
    postgres_server_url: str,
    tmp_path: Path,
) -> None:
    variants: list[int | None] = [None, *range(len(ROLE["rules"]))]
    operators: dict[int | None, tuple[OperatorProcess, str]] = {}
    with temporary_database(postgres_server_url, prefix="rbac") as url:
        try:
            for variant in variants:
                namespace = f"rbac-{uuid.uuid4().hex[:8]}"
                deployed.create_namespace(namespace)
                install_operator_identity(deployed, namespace, role_without(variant))
                kubeconfig = service_account_kubeconfig_for(
                    deployed, namespace, tmp_path / f"{namespace}.kubeconfig"
                )
                cluster = Cluster(plane=deployed, api=api_client, namespace=namespace)
                cluster.secret("db", url)
                operator = OperatorProcess(
                    kubeconfig=kubeconfig,
                    log_path=tmp_path / f"{namespace}.log",
                    namespace=namespace,
                    environment={**TEST_SETTINGS, "RAYCES_MAX_ATTEMPTS": "1"},
                )
                operator.start(wait=False)
                operators[variant] = (operator, namespace)
            for _operator, namespace in operators.values():
                cluster = Cluster(plane=deployed, api=api_client, namespace=namespace)
                manifest = {
                    "apiVersion": "rayces.io/v1alpha1",
                    "kind": "SchemaMigration",
                    "metadata": {"name": "dry", "namespace": namespace},
                    "spec": {
                        "database": {"urlSecretRef": {"name": "db"}},
                        "targetRevision": "head",
                        "dryRun": True,
                    },
                }
                cluster.apply(manifest)
                # An Organization on it waits for the schema: its finalizer and status are
                # written (the Organization rules).
                cluster.apply(
                    {
                        "apiVersion": "rayces.io/v1alpha1",
                        "kind": "Organization",
                        "metadata": {"name": "tenant", "namespace": namespace},
                        "spec": {
                            "subdomain": "tenant",
                            "displayName": "Tenant",
                            "schemaMigrationRef": {"name": "dry"},
                        },
                    }
                )
            full, full_namespace = operators[None]
            Cluster(plane=deployed, api=api_client, namespace=full_namespace).wait_for(
                "dry", "Ready", "DryRunPlanned", timeout=240
            )
            assert forbidden_lines(full.log_text()) == []
            for variant in variants[1:]:
                assert variant is not None
                operator, _namespace = operators[variant]
                rule = ROLE["rules"][variant]
                refused = eventually(
                    f"a 403 without the rule {rule_id(rule)}",
                    functools.partial(refusals, operator),
                    timeout=240,
                )
                assert any(
                    resource.split("/")[0] in " ".join(refused) for resource in rule["resources"]
                ), refused[:3]
        finally:
            for operator, namespace in operators.values():
                operator.stop()
                with contextlib.suppress(client.ApiException):  # no operator left to release it
                    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
                        "rayces.io",
                        "v1alpha1",
                        namespace,
                        "organizations",
                        "tenant",
                        {"metadata": {"finalizers": []}},
                    )
                client.CoreV1Api(api_client).delete_namespace(namespace)


@pytest.mark.parametrize(
    "index", range(len(ROLE["rules"])), ids=[rule_id(r) for r in ROLE["rules"]]
)
def test_each_rule_says_why_it_exists(index: int) -> None:
    """role.yaml explains every rule in a comment right above it."""
    text = (DEPLOY_DIR / "operator" / "role.yaml").read_text().splitlines()
    starts = [number for number, line in enumerate(text) if line.startswith("  - apiGroups:")]
    assert text[starts[index] - 1].strip().startswith("#")
