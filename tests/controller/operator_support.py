"""The operator under test: deployed with kubectl, run as its ServiceAccount, watched from outside.

`deploy/` is applied with the real `kubectl apply -k`. Its Deployment is then scaled to zero:
the emulated node gives Pods no service-account token (docs/control-plane.md), so the operator
runs here as a local process instead, with a kubeconfig holding a TokenRequest token of the
`rayces-operator` ServiceAccount. It therefore has exactly the rights of deploy/'s Role, and a
403 in its log is a test failure. Its memory (VmHWM from /proc) and API calls (from /metrics)
are read from outside, as a person would.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
import yaml
from kubernetes import client, watch
from tests.controlplane.harness import ControlPlane
from tests.controlplane.processes import ManagedProcess, start_process
from tests.controlplane.realnode import RealNode

from rayces.migrations.locking import MIGRATION_LOCK_KEY

REPOSITORY = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPOSITORY / "deploy"
NAMESPACE = "raycesv3"
SERVICE_ACCOUNT = "rayces-operator"
GROUP, VERSION, PLURAL = "rayces.io", "v1alpha1", "schemamigrations"
ORGANIZATIONS = "organizations"
#: Settings that keep retries short in tests (the defaults are 10 s doubling to 5 min), yet long
#: enough that a scheduled retry is still ahead when the operator notices a failure.
TEST_SETTINGS = {
    "RAYCES_RETRY_BASE_SECONDS": "5",
    "RAYCES_RETRY_CAP_SECONDS": "20",
    "RAYCES_MAX_ATTEMPTS": "3",
    "RAYCES_RESYNC_SECONDS": "2",
    "RAYCES_JOB_IMAGE": "rayces-operator:test",
    "RAYCES_DRY_RUN_MAX_BYTES": "44000",
}

#: The first revision: what a failing upgrade with rollbackOnFailure returns to.
BASELINE = "20240606034427"

T = TypeVar("T")
#: Figures of test_operator_footprint, printed in the test summary.
FOOTPRINT = pytest.StashKey[str]()


def kubectl_binary() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl is not on PATH; install it (apt-get install kubectl)")
    return found


def kubectl(
    kubeconfig: Path, *arguments: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real kubectl; on failure raise with its stderr."""
    completed = subprocess.run(
        [kubectl_binary(), "--kubeconfig", str(kubeconfig), *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if check and completed.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(arguments)} exited {completed.returncode}: {completed.stderr}"
        )
    return completed


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 120.0) -> T:
    """Poll `probe` until it returns something other than None/False; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_account_kubeconfig(plane: ControlPlane, path: Path) -> Path:
    """A kubeconfig with a TokenRequest token of the operator's ServiceAccount."""
    return service_account_kubeconfig_for(plane, NAMESPACE, path)


def service_account_kubeconfig_for(plane: ControlPlane, namespace: str, path: Path) -> Path:
    """A kubeconfig with a TokenRequest token of `rayces-operator` in `namespace`."""
    with plane.api_client() as api:
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=6 * 3600)
        )
        answer = client.CoreV1Api(api).create_namespaced_service_account_token(
            SERVICE_ACCOUNT, namespace, request
        )
    assert answer.status is not None
    token = answer.status.token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {
                    "server": plane.server,
                    "certificate-authority": str(plane.certificate_authority),
                },
            }
        ],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "test", "user": SERVICE_ACCOUNT}}],
        "current-context": "sa",
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


@dataclass
class OperatorProcess:
    """`raycesctl operator` as a local process, restartable, with its log kept across runs."""

    kubeconfig: Path
    log_path: Path
    namespace: str = NAMESPACE
    environment: Mapping[str, str] = field(default_factory=lambda: dict(TEST_SETTINGS))
    metrics_port: int = 0
    health_port: int = 0
    process: ManagedProcess | None = None
    peak_rss_kib: int = 0

    def start(self, *, wait: bool = True) -> None:
        self.metrics_port = free_port()
        self.health_port = health_port = free_port()
        raycesctl = str(Path(sys.executable).with_name("raycesctl"))
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            **self.environment,
        }
        self.process = start_process(
            "operator",
            [
                raycesctl,
                "operator",
                "--kubeconfig",
                str(self.kubeconfig),
                "--namespace",
                self.namespace,
                "--host",
                "127.0.0.1",
                "--metrics-port",
                str(self.metrics_port),
                "--health-port",
                str(health_port),
            ],
            self.log_path,
            env=env,
        )
        if wait:
            eventually("the operator's /readyz", self.ready, timeout=90)

    def ready(self) -> bool:
        if self.process is None or not self.process.running():
            raise AssertionError(f"the operator exited:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=2
            ) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def sample_memory(self) -> int:
        """Peak resident memory (KiB) of the process so far, from /proc."""
        if self.process is None or not self.process.running():
            return self.peak_rss_kib
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))
        return self.peak_rss_kib

    def metrics(self) -> dict[str, float]:
        """The /metrics samples, name{labels} → value."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as answer:
            text = answer.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def kill(self) -> None:
        """SIGKILL, as when a node dies: no cleanup runs."""
        if self.process is not None:
            self.sample_memory()
            self.process._signal_group(__import__("signal").SIGKILL)
            self.process.process.wait()

    def stop(self) -> int:
        if self.process is None:
            return 0
        self.sample_memory()
        return self.process.stop(grace_seconds=15)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class Cluster:
    """Admin-side helpers for the tests: apply, read and wait for SchemaMigrations."""

    plane: ControlPlane
    api: client.ApiClient
    namespace: str = NAMESPACE

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def apply(self, manifest: Mapping[str, Any]) -> None:
        kubectl(self.plane.kubeconfig, "apply", "-f", "-", stdin=json.dumps(manifest))

    def get(self, name: str) -> dict[str, Any]:
        found = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        assert isinstance(found, dict)
        return found

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        for item in self.status(name).get("conditions") or []:
            if item.get("type") == kind:
                return dict(item)
        return {}

    def wait_for(
        self, name: str, kind: str, reason: str | None = None, timeout: float = 180.0
    ) -> dict[str, Any]:
        """Wait until condition `kind` is True (and has `reason`) for the current generation."""

        def probe() -> dict[str, Any] | None:
            resource = self.get(name)
            status = resource.get("status") or {}
            if status.get("observedGeneration") != resource["metadata"]["generation"]:
                return None
            for item in status.get("conditions") or []:
                if (
                    item.get("type") == kind
                    and item.get("status") == "True"
                    and (reason is None or item.get("reason") == reason)
                ):
                    return dict(status)
            return None

        return eventually(f"{name} {kind} {reason or ''}".strip(), probe, timeout)

    def secret(self, name: str, url: str, key: str = "DATABASE_URL") -> None:
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, namespace=self.namespace),
            string_data={key: url},
        )
        core = client.CoreV1Api(self.api)
        try:
            core.create_namespaced_secret(self.namespace, body)
        except client.ApiException as error:
            if error.status != 409:
                raise
            core.replace_namespaced_secret(name, self.namespace, body)

    def plain(self, value: Any) -> Any:
        """A client model as the JSON dict the API sent (camelCase keys)."""
        return self.api.sanitize_for_serialization(value)  # type: ignore[no-untyped-call]

    def jobs_of(self, name: str) -> list[dict[str, Any]]:
        """The resource's Jobs, oldest first, as plain dicts."""
        uid = self.get(name)["metadata"]["uid"]
        jobs = client.BatchV1Api(self.api).list_namespaced_job(
            self.namespace, label_selector=f"rayces.io/schemamigration-uid={uid}"
        )
        plain: list[dict[str, Any]] = self.plain(jobs)["items"]
        return sorted(plain, key=lambda job: str(job["metadata"]["creationTimestamp"]))

    def job_names(self, name: str) -> list[str]:
        return [str(job["metadata"]["name"]) for job in self.jobs_of(name)]

    def job_actions(self, name: str) -> list[str]:
        return [str(job["metadata"]["labels"]["rayces.io/action"]) for job in self.jobs_of(name)]

    def events_of(self, name: str) -> list[dict[str, Any]]:
        events = client.CoreV1Api(self.api).list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        )
        items: list[dict[str, Any]] = self.plain(events)["items"]
        return items

    def config_map(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.plain(
            client.CoreV1Api(self.api).read_namespaced_config_map(name, self.namespace)
        )
        return found

    def delete(self, name: str) -> None:
        with contextlib.suppress(client.ApiException):
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )


def schema_migration(
    name: str,
    secret: str,
    target: str = "head",
    *,
    key: str | None = None,
    namespace: str = NAMESPACE,
    **spec: Any,
) -> dict[str, Any]:
    reference: dict[str, Any] = {"name": secret}
    if key is not None:
        reference["key"] = key
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SchemaMigration",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"database": {"urlSecretRef": reference}, "targetRevision": target, **spec},
    }


def database_revision(url: str) -> str | None:
    """The revision in alembic_version, or None (base)."""
    with psycopg.connect(url) as connection:
        exists = connection.execute("SELECT to_regclass('alembic_version')").fetchone()
        if exists is None or exists[0] is None:
            return None
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None else str(row[0])


def raycesctl(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("raycesctl")), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def revisions() -> list[str]:
    """Every revision of alembic/versions, oldest first."""
    versions = sorted((REPOSITORY / "alembic" / "versions").glob("*.py"))
    return [path.name.split("_", 1)[0] for path in versions]


def head_revision() -> str:
    return revisions()[-1]


def forbidden_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if re.search(r"\b403\b|[Ff]orbidden", line)]


@contextlib.contextmanager
def applied(cluster: Cluster, manifest: Mapping[str, Any]) -> Iterator[str]:
    """Apply a SchemaMigration, and delete it afterwards so its database is free again."""
    cluster.apply(manifest)
    name = str(manifest["metadata"]["name"])
    try:
        yield name
    finally:
        cluster.delete(name)


def operator_role() -> dict[str, Any]:
    """The Role of deploy/operator/role.yaml, as a dict."""
    documents = yaml.safe_load_all((DEPLOY_DIR / "operator" / "role.yaml").read_text())
    role: dict[str, Any] = next(document for document in documents if document["kind"] == "Role")
    return role


def install_operator_identity(
    plane: ControlPlane, namespace: str, rules: list[dict[str, Any]]
) -> None:
    """The `rayces-operator` ServiceAccount in `namespace`, bound to a Role with `rules`."""
    documents = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "rayces-operator", "namespace": namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "rayces-operator", "namespace": namespace},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "rayces-operator", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "rayces-operator",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": "rayces-operator", "namespace": namespace}
            ],
        },
    ]
    kubectl(plane.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(documents))


def unique(prefix: str) -> str:
    """A resource or Secret name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def migration_lock_held(url: str) -> Iterator[None]:
    """Hold raycesctl's advisory lock, so a Job waits (lock wait) until we let go."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        yield
        connection.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


def baseline_with_duplicate_emails(url: str) -> None:
    """The database at BASELINE, populated as the Rails app left it (users, posts, likes), with
    two users sharing an e-mail, so ...0005 fails on them after ...0001-0004 committed."""
    result = raycesctl("migrate", "--to", BASELINE, "--database-url", url, "-q")
    assert result.returncode == 0, result.stderr
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO users (name, email, created_at, updated_at) "
            "SELECT 'User ' || g, 'u' || g || '@example.test', now(), now() "
            "FROM generate_series(1, 60) AS g"
        )
        connection.execute(
            "INSERT INTO posts (post_id, hash_id, created_at, updated_at) "
            "SELECT 'p' || g, md5(g::text), now(), now() FROM generate_series(1, 20) AS g"
        )
        connection.execute(
            "INSERT INTO likes (user_id, post_id, created_at, updated_at) "
            "SELECT users.id, posts.id, now(), now() FROM users CROSS JOIN posts "
            "WHERE (users.id + posts.id) % 5 = 0"
        )
        connection.execute(
            "INSERT INTO users (name, email, created_at, updated_at) VALUES "
            "('a', 'twin@example.test', now(), now()), ('b', 'twin@example.test', now(), now())"
        )


def relation_exists(url: str, name: str) -> bool:
    """Whether the table (or index, sequence, ...) `name` exists in the database."""
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT to_regclass(%s)", (name,)).fetchone()
    return row is not None and row[0] is not None


def database_contents(url: str) -> tuple[str, dict[str, str]]:
    """The schema (`raycesctl schema dump`) and a digest of every row of every table."""
    from rayces.migrations import commands

    with psycopg.connect(url) as connection:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall()
        ]
        rows = {
            table: str(
                connection.execute(
                    f"SELECT count(*) || md5(string_agg(t::text, '|' ORDER BY t::text)) "
                    f'FROM "{table}" AS t'
                ).fetchone()
            )
            for table in tables
        }
    return commands.dump_schema(url), rows


def shipped_schema_migration(
    name: str, secret: str, *, namespace: str = NAMESPACE
) -> dict[str, Any]:
    """`deploy/samples/schemamigration.yaml` as shipped, with only its name, namespace and Secret
    changed."""
    manifest: dict[str, Any] = yaml.safe_load(
        (REPOSITORY / "deploy" / "samples" / "schemamigration.yaml").read_text()
    )
    manifest["metadata"]["name"] = name
    manifest["metadata"]["namespace"] = namespace
    manifest["spec"]["database"]["urlSecretRef"]["name"] = secret
    return manifest


# ---------------------------------------------------------------- Organizations


def organization(
    name: str,
    migration: str,
    subdomain: str | None = None,
    *,
    namespace: str = NAMESPACE,
    **spec: Any,
) -> dict[str, Any]:
    """An Organization manifest whose tenant is seeded on the database of `migration`."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Organization",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "subdomain": subdomain or name,
            "displayName": spec.pop("displayName", name.title()),
            "schemaMigrationRef": {"name": migration},
            **spec,
        },
    }


class Organizations:
    """Admin-side reads of the Organizations of the cluster helpers' namespace."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.namespace = cluster.namespace
        self.custom = client.CustomObjectsApi(cluster.api)

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            found = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, ORGANIZATIONS, name
            )
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        assert isinstance(found, dict)
        return found

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        resource = self.get(name) or {}
        for item in (resource.get("status") or {}).get("conditions") or []:
            if item.get("type") == kind:
                return dict(item)
        return {}

    def wait_for(
        self, name: str, kind: str, reason: str | None = None, timeout: float = 240.0
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            resource = self.get(name)
            if resource is None:
                return None
            status = resource.get("status") or {}
            if status.get("observedGeneration") != resource["metadata"]["generation"]:
                return None
            for item in status.get("conditions") or []:
                if (
                    item.get("type") == kind
                    and item.get("status") == "True"
                    and (reason is None or item.get("reason") == reason)
                ):
                    return dict(status)
            return None

        return eventually(f"organization {name} {kind} {reason or ''}", probe, timeout)

    def gone(self, name: str, timeout: float = 240.0) -> None:
        eventually(f"organization {name} deleted", lambda: self.get(name) is None or None, timeout)

    def delete(self, name: str) -> None:
        with contextlib.suppress(client.ApiException):
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, ORGANIZATIONS, name
            )

    def events(self, name: str) -> list[dict[str, Any]]:
        return [
            event
            for event in self.cluster.events_of(name)
            if event["involvedObject"]["kind"] == "Organization"
        ]


def row(url: str, subdomain: str) -> tuple[str, str, str] | None:
    """The tenant's (name, status, time_zone) in the organizations table, or None."""
    with psycopg.connect(url) as connection:
        found = connection.execute(
            "SELECT name, status, time_zone FROM organizations WHERE subdomain = %s",
            (subdomain,),
        ).fetchone()
    return None if found is None else (str(found[0]), str(found[1]), str(found[2]))


# ---------------------------------------------------------------- Pods on the real node


def pods_of(cluster: Cluster, job: str) -> list[dict[str, Any]]:
    """The Pods of Job `job`, as plain dicts."""
    pods = client.CoreV1Api(cluster.api).list_namespaced_pod(
        cluster.namespace, label_selector=f"job-name={job}"
    )
    items: list[dict[str, Any]] = cluster.plain(pods)["items"]
    return items


def assert_pod_ran_on_the_real_node(pod: Mapping[str, Any], node: RealNode) -> None:
    """`pod` ran as a container of the project image on the real node: uid 10001, read-only root."""
    assert pod["spec"]["nodeName"] == node.name
    (container,) = pod["spec"]["containers"]
    assert container["image"] == node.image
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    (state,) = pod["status"]["containerStatuses"]
    assert "terminated" in state["state"], state
    assert state["containerID"].startswith("containerd://")


def assert_ran_on_the_real_node(cluster: Cluster, node: RealNode, job: str) -> None:
    """The one Pod of Job `job` ran as a container of the project image on the real node."""
    (pod,) = pods_of(cluster, job)
    assert_pod_ran_on_the_real_node(pod, node)


def terminated_pod(
    cluster: Cluster,
    resource_version: str,
    *,
    field_selector: str = "",
    label_selector: str = "",
    timeout: int = 180,
) -> dict[str, Any]:
    """The first selected Pod seen, from `resource_version` on, with a terminated container.

    Watching from a version taken beforehand sees the Pod even when the garbage collector has
    deleted it since (a purge Job goes with its Organization).
    """
    stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
        client.CoreV1Api(cluster.api).list_namespaced_pod,
        cluster.namespace,
        field_selector=field_selector,
        label_selector=label_selector,
        resource_version=resource_version,
        timeout_seconds=timeout,
    )
    for event in stream:
        pod: dict[str, Any] = cluster.plain(event["object"])
        for status in pod["status"].get("containerStatuses") or []:
            if (status.get("state") or {}).get("terminated"):
                return pod
    selected = field_selector or label_selector
    raise AssertionError(f"no pod ({selected}) reported its container's end within {timeout}s")


def terminated_state(cluster: Cluster, pod: Mapping[str, Any]) -> dict[str, Any]:
    """Watch `pod` from its current version until its container has terminated; that state."""
    ended = terminated_pod(
        cluster,
        pod["metadata"]["resourceVersion"],
        field_selector=f"metadata.name={pod['metadata']['name']}",
    )
    (status,) = ended["status"]["containerStatuses"]
    found: dict[str, Any] = status["state"]["terminated"]
    return found
