"""The project's CRDs on a real kube-apiserver: what they accept, default, and refuse.

The CRD schemas are the first line of validation for GitOps users: a bad spec must be refused by
`kubectl apply` with a message naming the field, before the operator ever sees it. These tests
apply the sample resources from deploy/samples/ and variations of them to the real apiserver.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPOSITORY_ROOT / "deploy" / "samples"
GROUP, VERSION = "rayces.io", "v1alpha1"
PLURALS = {"SchemaMigration": "schemamigrations", "Organization": "organizations"}


def sample(kind: str) -> dict[str, Any]:
    """The sample resource of `kind` from deploy/samples/, with a unique name."""
    for path in sorted(SAMPLES.glob("*.yaml")):
        document: dict[str, Any] = yaml.safe_load(path.read_text())
        if document["kind"] == kind:
            document["metadata"]["name"] = f"{document['metadata']['name']}-{uuid.uuid4().hex[:6]}"
            return document
    raise AssertionError(f"no {kind} sample in {SAMPLES}")


class Resources:
    """Create, read and patch the project's custom resources in one namespace."""

    def __init__(self, api: client.CustomObjectsApi, namespace: str) -> None:
        self.api, self.namespace = api, namespace

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        body["metadata"]["namespace"] = self.namespace
        created = self.api.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURALS[body["kind"]], body
        )
        return cast(dict[str, Any], created)

    def patch(self, kind: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        patched = self.api.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURALS[kind], name, patch
        )
        return cast(dict[str, Any], patched)

    def patch_status(self, kind: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        patched = self.api.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURALS[kind], name, {"status": status}
        )
        return cast(dict[str, Any], patched)


@pytest.fixture
def resources(api_client: client.ApiClient, namespace: str) -> Resources:
    return Resources(client.CustomObjectsApi(api_client), namespace)


def refusal(call: Any) -> str:
    """The apiserver's message for a refused request; fails the test if it is accepted."""
    with pytest.raises(client.ApiException) as raised:
        call()
    assert raised.value.status == 422, raised.value.body
    return str(json.loads(raised.value.body or "{}").get("message", ""))


def test_samples_are_accepted_with_their_defaults(resources: Resources) -> None:
    migration = resources.create(sample("SchemaMigration"))
    assert migration["spec"]["database"]["urlSecretRef"]["key"] == "DATABASE_URL"
    assert migration["spec"]["timeouts"]["lockWaitTimeoutSeconds"] == 60
    assert migration["spec"]["suspend"] is False

    organization = resources.create(sample("Organization"))
    assert organization["spec"]["suspended"] is False
    assert organization["spec"]["seed"]["initialCredits"] == 0
    assert organization["spec"]["deletionPolicy"] == "Archive"


def without(document: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target = changed
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return changed


def with_value(document: dict[str, Any], value: object, *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target = changed
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("kind", "change", "expected"),
    [
        pytest.param(
            "SchemaMigration",
            lambda d: with_value(d, "head; DROP TABLE users", "spec", "targetRevision"),
            "spec.targetRevision",
            id="migration-revision-not-an-id",
        ),
        pytest.param(
            "SchemaMigration",
            lambda d: without(d, "spec", "database"),
            "spec.database: Required value",
            id="migration-without-database",
        ),
        pytest.param(
            "SchemaMigration",
            lambda d: with_value(d, "5 seconds", "spec", "timeouts", "lockTimeout"),
            "spec.timeouts.lockTimeout",
            id="migration-timeout-not-a-duration",
        ),
        pytest.param(
            "SchemaMigration",
            lambda d: with_value(d, "Acme_Corp", "spec", "defaultOrganization", "subdomain"),
            "spec.defaultOrganization.subdomain",
            id="migration-default-subdomain-not-a-dns-label",
        ),
        pytest.param(
            "SchemaMigration",
            lambda d: with_value(d, 11, "spec", "job", "backoffLimit"),
            "spec.job.backoffLimit",
            id="migration-backoff-limit-too-high",
        ),
        pytest.param(
            "Organization",
            lambda d: with_value(d, "Acme Therapy", "spec", "subdomain"),
            "spec.subdomain",
            id="organization-subdomain-not-a-dns-label",
        ),
        pytest.param(
            "Organization",
            lambda d: with_value(d, "Nuke", "spec", "deletionPolicy"),
            'spec.deletionPolicy: Unsupported value: "Nuke"',
            id="organization-unknown-deletion-policy",
        ),
        pytest.param(
            "Organization",
            lambda d: without(d, "spec", "schemaMigrationRef"),
            "spec.schemaMigrationRef: Required value",
            id="organization-without-schema-migration",
        ),
        pytest.param(
            "Organization",
            lambda d: with_value(d, -5, "spec", "seed", "initialCredits"),
            "spec.seed.initialCredits",
            id="organization-negative-credits",
        ),
    ],
)
def test_invalid_specs_are_refused_naming_the_field(
    resources: Resources, kind: str, change: Any, expected: str
) -> None:
    message = refusal(lambda: resources.create(change(sample(kind))))
    assert expected in message


def test_organization_subdomain_is_immutable(resources: Resources) -> None:
    organization = resources.create(sample("Organization"))
    name = organization["metadata"]["name"]
    message = refusal(
        lambda: resources.patch("Organization", name, {"spec": {"subdomain": "other-name"}})
    )
    assert "subdomain is immutable" in message
    # other fields stay editable
    patched = resources.patch("Organization", name, {"spec": {"displayName": "Acme Renamed"}})
    assert patched["spec"]["displayName"] == "Acme Renamed"
    assert patched["metadata"]["generation"] == organization["metadata"]["generation"] + 1


def test_status_conditions_follow_kubernetes_conventions(resources: Resources) -> None:
    migration = resources.create(sample("SchemaMigration"))
    name = migration["metadata"]["name"]
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "MigrationSucceeded",
        "message": "database is at 20250718000016",
        "lastTransitionTime": "2026-11-26T10:00:00Z",
        "observedGeneration": 1,
    }
    written = resources.patch_status(
        "SchemaMigration",
        name,
        {"observedGeneration": 1, "currentRevision": "20250718000016", "conditions": [ready]},
    )
    assert written["status"]["conditions"] == [ready]
    assert written["metadata"]["generation"] == migration["metadata"]["generation"]

    message = refusal(
        lambda: resources.patch_status(
            "SchemaMigration", name, {"conditions": [ready | {"status": "Maybe"}]}
        )
    )
    assert "status.conditions[0].status" in message
    message = refusal(
        lambda: resources.patch_status(
            "SchemaMigration", name, {"conditions": [ready | {"reason": "not a reason!"}]}
        )
    )
    assert "status.conditions[0].reason" in message


def test_printer_columns_show_target_current_and_ready(api_client: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    version = extensions.read_custom_resource_definition(
        "schemamigrations.rayces.io"
    ).spec.versions[0]
    columns = {column.name: column.json_path for column in version.additional_printer_columns or []}
    assert columns["Target"] == ".spec.targetRevision"
    assert columns["Current"] == ".status.currentRevision"
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
