"""Health as tools read it: Argo CD's Lua health checks (run with lupa) and kstatus (the real Go
library, through tests/kstatus), on live SchemaMigrations the operator wrote status for, and on
the upstream-style health_test.yaml cases kept beside the Lua."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lupa
import pytest
import yaml
from tests.controller.operator_support import (
    DEPLOY_DIR,
    REPOSITORY,
    Cluster,
    kubectl,
    kubectl_binary,
    schema_migration,
)

from rayces.migrations.embedded import temporary_database

CUSTOMIZATIONS = DEPLOY_DIR / "argocd" / "resource_customizations" / "rayces.io"
KINDS = ("SchemaMigration", "Organization")
#: Set to write the live objects of test_live_objects_* as testdata (how testdata/ was made).
WRITE_TESTDATA = "RAYCES_WRITE_HEALTH_TESTDATA"


def lua_health(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    """Run `<Kind>/health.lua` as Argo CD does: `obj` in, `hs` table out."""
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    script = (CUSTOMIZATIONS / kind / "health.lua").read_text()
    check = runtime.eval(f"function(obj)\n{script}\nend")
    result = check(runtime.table_from(json.loads(json.dumps(obj)), recursive=True))
    return {"status": str(result["status"]), "message": str(result["message"] or "")}


def kstatus_of(binary: Path, obj: dict[str, Any]) -> dict[str, str]:
    completed = subprocess.run(
        [str(binary)], input=json.dumps(obj), capture_output=True, text=True, check=True
    )
    answer: dict[str, str] = json.loads(completed.stdout)
    return answer


@pytest.fixture(scope="session")
def kstatus_binary() -> Path:
    """tests/kstatus built (or reused from the cache) by its script."""
    completed = subprocess.run(
        ["bash", str(REPOSITORY / "tests" / "kstatus" / "build.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr
    return Path(completed.stdout.strip())


def health_cases() -> Iterator[Any]:
    for kind in KINDS:
        spec = yaml.safe_load((CUSTOMIZATIONS / kind / "health_test.yaml").read_text())
        for case in spec["tests"]:
            yield pytest.param(kind, case, id=f"{kind}-{Path(case['inputPath']).stem}")


@pytest.mark.parametrize(("kind", "case"), list(health_cases()))
def test_health_test_yaml_cases(kind: str, case: dict[str, Any]) -> None:
    obj = yaml.safe_load((CUSTOMIZATIONS / kind / case["inputPath"]).read_text())
    assert lua_health(kind, obj) == case["healthStatus"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_testdata_file_has_a_case(kind: str) -> None:
    spec = yaml.safe_load((CUSTOMIZATIONS / kind / "health_test.yaml").read_text())
    listed = {case["inputPath"] for case in spec["tests"]}
    present = {f"testdata/{path.name}" for path in (CUSTOMIZATIONS / kind / "testdata").glob("*")}
    assert listed == present


def test_argocd_cm_carries_the_lua_files_unchanged() -> None:
    rendered = subprocess.run(
        [kubectl_binary(), "kustomize", str(DEPLOY_DIR / "argocd")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    config_map = yaml.safe_load(rendered)
    assert config_map["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/part-of": "argocd"},
    }
    for kind in KINDS:
        key = f"resource.customizations.health.rayces.io_{kind}"
        assert config_map["data"][key] == (CUSTOMIZATIONS / kind / "health.lua").read_text()


def test_live_objects_health_and_kstatus_agree(
    operator_cluster: Cluster, postgres_server_url: str, kstatus_binary: Path
) -> None:
    """Each phase the operator reports, read by Argo CD's Lua and by kstatus."""
    suffix = uuid.uuid4().hex[:6]
    seen: dict[str, dict[str, Any]] = {}
    with temporary_database(postgres_server_url, prefix="health") as url:
        ready, missing, invalid = f"ready-{suffix}", f"waiting-{suffix}", f"invalid-{suffix}"
        operator_cluster.secret(f"db-{suffix}", url)
        manifests = [
            schema_migration(ready, f"db-{suffix}"),
            schema_migration(missing, f"absent-{suffix}"),
            schema_migration(invalid, f"db2-{suffix}", "20990101000000"),
        ]
        try:
            for manifest in manifests:
                operator_cluster.apply(manifest)
            operator_cluster.wait_for(missing, "Reconciling", "SecretNotFound")
            seen["reconciling"] = operator_cluster.get(missing)
            operator_cluster.wait_for(invalid, "Stalled", "UnknownRevision")
            seen["stalled"] = operator_cluster.get(invalid)
            operator_cluster.wait_for(ready, "Ready")
            seen["ready"] = operator_cluster.get(ready)
        finally:
            for manifest in manifests:
                operator_cluster.delete(manifest["metadata"]["name"])
    stale = copy.deepcopy(seen["ready"])
    stale["metadata"]["generation"] += 1
    seen["not-yet-observed"] = stale

    expected = {
        "ready": ("Healthy", "Current"),
        "reconciling": ("Progressing", "InProgress"),
        "stalled": ("Degraded", "Failed"),
        "not-yet-observed": ("Progressing", "InProgress"),
    }
    for phase, obj in seen.items():
        health = lua_health("SchemaMigration", obj)
        kstatus = kstatus_of(kstatus_binary, obj)
        assert (health["status"], kstatus["status"]) == expected[phase], phase
    assert "UnknownRevision" in lua_health("SchemaMigration", seen["stalled"])["message"]
    if os.environ.get(WRITE_TESTDATA):
        directory = CUSTOMIZATIONS / "SchemaMigration" / "testdata"
        for phase, obj in seen.items():
            for key in ("managedFields", "resourceVersion", "uid", "creationTimestamp"):
                obj["metadata"].pop(key, None)
            (directory / f"{phase}.yaml").write_text(yaml.safe_dump(obj, sort_keys=False))


def test_apply_k_of_argocd_merges_into_an_existing_argocd_cm(operator_cluster: Cluster) -> None:
    kubeconfig = operator_cluster.plane.kubeconfig
    kubectl(kubeconfig, "create", "namespace", "argocd", check=False)
    kubectl(
        kubeconfig,
        "-n",
        "argocd",
        "create",
        "configmap",
        "argocd-cm",
        "--from-literal=url=https://argocd.example.test",
        check=False,
    )
    kubectl(kubeconfig, "apply", "-k", str(DEPLOY_DIR / "argocd"))
    data = json.loads(
        kubectl(kubeconfig, "-n", "argocd", "get", "configmap", "argocd-cm", "-o", "json").stdout
    )["data"]
    assert data["url"] == "https://argocd.example.test"
    assert "resource.customizations.health.rayces.io_SchemaMigration" in data


def test_the_two_kinds_share_one_health_rule() -> None:
    """Argo CD wants one script per kind, and both kinds follow the same kstatus conditions: the
    two files may differ only in their first comment line, so a fix to one reaches both."""
    bodies = {
        kind: (CUSTOMIZATIONS / kind / "health.lua").read_text().splitlines()[1:]
        for kind in ("SchemaMigration", "Organization")
    }
    assert bodies["SchemaMigration"] == bodies["Organization"]
