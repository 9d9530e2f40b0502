"""Every field of the project's CRDs carries a description, so `kubectl explain` documents it.

The CRD schema is the one place a field is described; this keeps that promise for new fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

CRDS_DIR = Path(__file__).resolve().parents[2] / "crds"
# Kubernetes describes these itself; condition items follow the upstream metav1.Condition shape.
SELF_DESCRIBED = {"apiVersion", "kind", "metadata"}
CONDITION_FIELDS = {
    "type",
    "status",
    "observedGeneration",
    "lastTransitionTime",
    "reason",
    "message",
}


def definitions() -> list[dict[str, Any]]:
    found = []
    for path in sorted(CRDS_DIR.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        if document.get("kind") == "CustomResourceDefinition":
            found.append(document)
    return found


def fields(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every named property below `schema`, with its dotted path."""
    for name, child in schema.get("properties", {}).items():
        yield f"{path}.{name}", child
        yield from fields(child, f"{path}.{name}")
    items = schema.get("items")
    if isinstance(items, dict):
        yield from fields(items, f"{path}[]")


def test_the_crds_directory_has_both_kinds() -> None:
    assert sorted(d["spec"]["names"]["kind"] for d in definitions()) == [
        "Organization",
        "SchemaMigration",
    ]


@pytest.mark.parametrize(
    "definition", [pytest.param(d, id=d["metadata"]["name"]) for d in definitions()]
)
def test_every_field_is_described(definition: dict[str, Any]) -> None:
    undocumented = []
    for version in definition["spec"]["versions"]:
        root = version["schema"]["openAPIV3Schema"]
        assert root.get("description"), f"{version['name']}: the kind itself needs a description"
        for path, schema in fields(root, version["name"]):
            name = path.rsplit(".", 1)[-1]
            if name in SELF_DESCRIBED and path.count(".") == 1:
                continue
            if ".conditions[]." in path and name in CONDITION_FIELDS:
                continue
            if not schema.get("description"):
                undocumented.append(path)
    assert undocumented == []
