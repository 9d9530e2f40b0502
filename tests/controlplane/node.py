"""The emulated node: the part of a cluster the test control plane cannot run for real.

There is no kubelet or container runtime on a test machine. This module stands in for one
node, doing the kubelet's and scheduler's jobs through the real API only:

- it registers a Node (`rayces-emulated-node`) that reports Ready and renews its Lease in
  `kube-node-lease`, so the real node-lifecycle controller keeps it healthy;
- it binds unscheduled Pods to that Node through the `binding` subresource, as the scheduler
  would (honouring `nodeSelector`, ignoring resources and affinity);
- it runs each bound Pod's container — command and args, as a local process, with the Pod's
  environment resolved as kubelet resolves it (`container_spec.py`) — and writes the Pod
  status kubelet would write (`pod_status.py`): Running, then Succeeded or Failed with the
  exit code, reason and termination message;
- on Pod deletion it stops the process (SIGTERM, then SIGKILL after the grace period),
  reports the termination and deletes the Pod, as kubelet does.

Not emulated, and refused or ignored as stated: images (the process runs with this
machine's files and the test interpreter's PATH), volumes, init and sidecar containers
(such Pods are failed with reason NotEmulated), probes, resource limits, pod-level
`activeDeadlineSeconds`, logs through the API (`container_log` reads them here instead).
Everything above the node — Job controller, garbage collector, admission, RBAC — is real.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from tests.controlplane import pod_status
from tests.controlplane.container_spec import (
    ContainerConfigError,
    ObjectStore,
    container_argv,
    container_environment,
    decode_secret_data,
    map_message_path,
    termination_message,
)
from tests.controlplane.objects import as_model
from tests.controlplane.processes import ManagedProcess, start_process

NODE_NAME = "rayces-emulated-node"
NODE_LABELS = {
    "kubernetes.io/hostname": NODE_NAME,
    "kubernetes.io/os": "linux",
    "kubernetes.io/arch": "amd64",
    "node.rayces.io/emulated": "true",
}
REAL_NODE_LABEL = "node.rayces.io/real-node"
"""The label of the real test node (realnode.py): Pods that select it are left to kube-scheduler."""
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
HEARTBEAT_SECONDS = 10.0
"""kubelet renews its Lease every 10 s; the node-lifecycle controller waits 40 s."""
WATCH_TIMEOUT_SECONDS = 1
"""Server-side watch timeout: how long stop() may wait for the watch thread. Each watch
resumes from the last resourceVersion seen, so a short one loses no event."""
RESTART_DELAY_SECONDS = 1.0
CONFIG_RETRY_SECONDS = 1.0
DEFAULT_GRACE_SECONDS = 30.0
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})

log = logging.getLogger(__name__)


def default_base_environment() -> dict[str, str]:
    """What stands in for the image's environment: the test interpreter's PATH first.

    Pods run commands installed in the test environment (`raycesctl`, `python`), as the
    operator's image would have them on its PATH.
    """
    interpreter_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join([interpreter_bin, os.environ.get("PATH", os.defpath)])
    return {"PATH": path, "LANG": "C.UTF-8"}


def node_selector_mismatch(selector: dict[str, str] | None) -> str | None:
    """Why the emulated node does not match `selector`, or None when it does."""
    for key, value in (selector or {}).items():
        if NODE_LABELS.get(key) != value:
            return f"0/1 nodes are available: 1 node(s) didn't match Pod's node selector ({key})."
    return None


def should_restart(restart_policy: str | None, exit_code: int) -> bool:
    """kubelet's rule for a container that exited."""
    if restart_policy == "Always":
        return True
    return restart_policy == "OnFailure" and exit_code != 0


def unsupported_reason(pod: client.V1Pod) -> str | None:
    """Why the emulated node refuses to run `pod`, or None when it can."""
    spec = pod.spec
    if spec is None or not spec.containers:
        return "the Pod has no containers"
    if spec.init_containers:
        return "init containers are not emulated by the test node"
    if len(spec.containers) > 1:
        return "the test node runs one container per Pod; this Pod has several"
    return None


def exit_status(return_code: int) -> tuple[int, int | None]:
    """(exit code, signal) as a container runtime reports a process's end."""
    if return_code < 0:
        return 128 - return_code, -return_code
    return return_code, None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


@dataclass
class _PodRun:
    """One Pod's container on the emulated node, and how to stop it."""

    namespace: str
    name: str
    uid: str
    directory: Path
    terminate: threading.Event = field(default_factory=threading.Event)
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    process: ManagedProcess | None = None
    thread: threading.Thread | None = None
    finished: bool = False

    def request_termination(self, grace_seconds: float) -> None:
        self.grace_seconds = min(self.grace_seconds, grace_seconds)
        self.terminate.set()


class NodeEmulator:
    """Plays one node against a real kube-apiserver; see the module docstring."""

    def __init__(
        self,
        configuration: client.Configuration,
        workdir: Path,
        *,
        name: str = NODE_NAME,
        base_environment: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.base_environment = base_environment or default_base_environment()
        self._api_client = client.ApiClient(configuration)
        self._core = client.CoreV1Api(self._api_client)
        self._coordination = client.CoordinationV1Api(self._api_client)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._runs: dict[str, _PodRun] = {}
        self._unschedulable: set[str] = set()
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Register the Node and its Lease, then start watching Pods and heartbeating."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._register_node()
        self._renew_lease()
        for target, label in ((self._watch_pods, "watch"), (self._heartbeat, "heartbeat")):
            thread = threading.Thread(target=target, name=f"node-emulator-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Kill every container still running and stop the emulator's threads."""
        self._stopping.set()
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.request_termination(0)
        for run in runs:
            if run.thread is not None:
                run.thread.join(timeout=DEFAULT_GRACE_SECONDS)
        for thread in self._threads:
            thread.join(timeout=WATCH_TIMEOUT_SECONDS + 2)
        self._api_client.close()  # type: ignore[no-untyped-call]

    def container_log(self, namespace: str, name: str) -> str:
        """What the container of Pod `namespace/name` wrote to stdout and stderr (latest run)."""
        with self._lock:
            runs = [r for r in self._runs.values() if (r.namespace, r.name) == (namespace, name)]
        if not runs:
            raise LookupError(f"the emulated node never ran Pod {namespace}/{name}")
        return _read_bytes(runs[-1].directory / "container.log").decode(errors="replace")

    # -- the Node ----------------------------------------------------------------------------

    def _node_status(self) -> dict[str, Any]:
        version = client.VersionApi(self._api_client).get_code().git_version
        resources = {"cpu": str(os.cpu_count() or 1), "memory": "8Gi", "pods": "110"}
        conditions = [
            ("Ready", "True", "KubeletReady", "emulated node is ready"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", ""),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", ""),
            ("PIDPressure", "False", "KubeletHasSufficientPID", ""),
        ]
        return {
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "conditions": [
                    {
                        "type": kind,
                        "status": status,
                        "reason": reason,
                        "message": message,
                        "lastHeartbeatTime": pod_status.now(),
                        "lastTransitionTime": pod_status.now(),
                    }
                    for kind, status, reason, message in conditions
                ],
                "addresses": [
                    {"type": "InternalIP", "address": pod_status.NODE_IP},
                    {"type": "Hostname", "address": self.name},
                ],
                "nodeInfo": {
                    "machineID": self.name,
                    "systemUUID": self.name,
                    "bootID": self.name,
                    "kernelVersion": os.uname().release,
                    "osImage": "rayces test node emulator",
                    "containerRuntimeVersion": "emulated://1",
                    "kubeletVersion": version,
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            }
        }

    def _register_node(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": NODE_LABELS},
        }
        try:
            self._core.create_node(as_model(client.V1Node, body))
        except client.ApiException as error:
            if error.status != 409:
                raise
        self._core.patch_node_status(self.name, self._node_status())

    def _renew_lease(self) -> None:
        node_uid = self._core.read_node(self.name).metadata.uid  # type: ignore[union-attr]
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": LEASE_NAMESPACE,
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "name": self.name,
                        "uid": node_uid,
                    }
                ],
            },
            "spec": {
                "holderIdentity": self.name,
                "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                "renewTime": pod_status.micro_now(),
            },
        }
        try:
            self._coordination.patch_namespaced_lease(self.name, LEASE_NAMESPACE, body)
        except client.ApiException as error:
            if error.status != 404:
                raise
            self._coordination.create_namespaced_lease(
                LEASE_NAMESPACE, as_model(client.V1Lease, body)
            )

    def _heartbeat(self) -> None:
        while not self._stopping.wait(HEARTBEAT_SECONDS):
            try:
                self._renew_lease()
            except Exception:  # a missed heartbeat is retried at the next one
                if not self._stopping.is_set():
                    log.exception("emulated node %s: lease renewal failed", self.name)

    # -- watching Pods -----------------------------------------------------------------------

    def _watch_pods(self) -> None:
        while not self._stopping.is_set():
            try:
                self._list_and_watch()
            except client.ApiException as error:
                if error.status == 410:  # the watch fell behind etcd's history: list again
                    continue
                if self._stopping.is_set():
                    return
                log.exception("emulated node %s: pod watch failed; listing again", self.name)
                time.sleep(0.5)
            except Exception:
                if self._stopping.is_set():
                    return
                log.exception("emulated node %s: pod watch failed; listing again", self.name)
                time.sleep(0.5)

    def _list_and_watch(self) -> None:
        listing = self._core.list_pod_for_all_namespaces()
        for pod in listing.items:
            self._handle("ADDED", pod)
        resource_version = listing.metadata.resource_version if listing.metadata else None
        while not self._stopping.is_set():
            stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                self._core.list_pod_for_all_namespaces,
                resource_version=resource_version,
                timeout_seconds=WATCH_TIMEOUT_SECONDS,
                allow_watch_bookmarks=True,
            )
            for event in stream:
                pod = event["object"]
                resource_version = pod.metadata.resource_version
                if event["type"] != "BOOKMARK":
                    self._handle(event["type"], pod)
                if self._stopping.is_set():
                    return

    def _handle(self, event_type: str, pod: client.V1Pod) -> None:
        metadata, spec = pod.metadata, pod.spec
        if metadata is None or spec is None or metadata.uid is None:
            return
        if event_type == "DELETED":
            self._terminate(metadata.uid, 0)
        elif not spec.node_name:
            if metadata.deletion_timestamp is None:
                self._schedule(pod)
        elif spec.node_name != self.name:
            return
        elif metadata.deletion_timestamp is not None:
            self._on_deletion(pod)
        elif (pod.status.phase if pod.status else None) not in TERMINAL_PHASES:
            self._ensure_running(pod)

    # -- scheduling --------------------------------------------------------------------------

    def _schedule(self, pod: client.V1Pod) -> None:
        assert pod.metadata is not None and pod.spec is not None
        if pod.spec.scheduler_name not in (None, "default-scheduler"):
            return
        name, namespace = pod.metadata.name or "", pod.metadata.namespace or ""
        if REAL_NODE_LABEL in (pod.spec.node_selector or {}):
            return
        mismatch = node_selector_mismatch(pod.spec.node_selector)
        if mismatch is not None:
            if pod.metadata.uid not in self._unschedulable:
                self._unschedulable.add(pod.metadata.uid or "")
                self._patch_status(namespace, name, pod_status.unschedulable_patch(mismatch))
            return
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": pod.metadata.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.name},
        }
        try:
            # The response is a Status, not a Binding, so it is not deserialised.
            self._core.create_namespaced_pod_binding(
                name, namespace, as_model(client.V1Binding, binding), _preload_content=False
            )
        except client.ApiException as error:
            if error.status not in (404, 409):  # deleted, or already bound
                raise

    # -- running -----------------------------------------------------------------------------

    def _ensure_running(self, pod: client.V1Pod) -> None:
        assert pod.metadata is not None
        uid = pod.metadata.uid or ""
        with self._lock:
            if uid in self._runs or self._stopping.is_set():
                return
            namespace, name = pod.metadata.namespace or "", pod.metadata.name or ""
            directory = self.workdir / namespace / f"{name}-{uid[:8]}"
            directory.mkdir(parents=True, exist_ok=True)
            run = _PodRun(namespace, name, uid, directory)
            self._runs[uid] = run
        run.thread = threading.Thread(
            target=self._run_pod, args=(run, pod), name=f"pod-{namespace}-{name}", daemon=True
        )
        run.thread.start()

    def _on_deletion(self, pod: client.V1Pod) -> None:
        assert pod.metadata is not None
        uid = pod.metadata.uid or ""
        grace = pod.metadata.deletion_grace_period_seconds
        with self._lock:
            run = self._runs.get(uid)
        if run is not None:
            run.request_termination(DEFAULT_GRACE_SECONDS if grace is None else float(grace))
        elif (pod.status.phase if pod.status else None) not in TERMINAL_PHASES:
            self._delete_now(pod.metadata.namespace or "", pod.metadata.name or "", uid)

    def _terminate(self, uid: str, grace_seconds: float) -> None:
        with self._lock:
            run = self._runs.get(uid)
        if run is not None:
            run.request_termination(grace_seconds)

    def _run_pod(self, run: _PodRun, pod: client.V1Pod) -> None:
        try:
            self._run_pod_to_end(run, pod)
        except Exception:
            if not self._stopping.is_set():
                log.exception(
                    "emulated node %s: running Pod %s/%s failed", self.name, run.namespace, run.name
                )
        finally:
            run.finished = True

    def _run_pod_to_end(self, run: _PodRun, pod: client.V1Pod) -> None:
        assert pod.spec is not None
        container = pod.spec.containers[0]
        image = container.image or ""
        refusal = unsupported_reason(pod)
        if refusal is not None:
            self._patch_status(
                run.namespace, run.name, pod_status.refused_patch(container.name, image, refusal)
            )
            return
        environment = self._wait_for_environment(run, pod, container)
        if environment is None:
            self._finish_deleted(run)
            return
        restart_count, last = 0, None
        while True:
            try:
                termination = self._run_container(run, container, environment, restart_count, last)
            except ContainerConfigError as error:
                patch = pod_status.refused_patch(container.name, image, str(error))
                self._patch_status(run.namespace, run.name, patch)
                return
            if run.terminate.is_set() or not should_restart(
                pod.spec.restart_policy, termination.exit_code
            ):
                break
            restart_count, last = restart_count + 1, termination
            if run.terminate.wait(RESTART_DELAY_SECONDS):
                break
        patch = pod_status.terminated_patch(container.name, image, termination, restart_count)
        self._patch_status(run.namespace, run.name, patch)
        if run.terminate.is_set():
            self._finish_deleted(run)

    def _wait_for_environment(
        self, run: _PodRun, pod: client.V1Pod, container: client.V1Container
    ) -> dict[str, str] | None:
        """The container's environment once every Secret and ConfigMap it needs exists."""
        reported = None
        while not run.terminate.is_set():
            try:
                return container_environment(pod, container, self._object_store())
            except ContainerConfigError as error:
                if str(error) != reported:
                    reported = str(error)
                    patch = pod_status.waiting_patch(
                        container.name,
                        container.image or "",
                        "CreateContainerConfigError",
                        reported,
                    )
                    self._patch_status(run.namespace, run.name, patch)
            run.terminate.wait(CONFIG_RETRY_SECONDS)
        return None

    def _run_container(
        self,
        run: _PodRun,
        container: client.V1Container,
        environment: dict[str, str],
        restart_count: int,
        last: pod_status.Termination | None,
    ) -> pod_status.Termination:
        message_file = run.directory / "termination-log"
        message_file.write_bytes(b"")
        argv = container_argv(container, environment, str(message_file))
        process_environment = {
            **self.base_environment,
            "HOSTNAME": run.name,
            "HOME": str(run.directory),
            **map_message_path(environment, container, str(message_file)),
        }
        working_dir = container.working_dir
        cwd = Path(working_dir) if working_dir and Path(working_dir).is_dir() else run.directory
        log_path = run.directory / "container.log"
        started_at = pod_status.now()
        try:
            process = start_process(
                f"{run.namespace}/{run.name}", argv, log_path, env=process_environment, cwd=cwd
            )
        except OSError as error:
            # kubelet reports an exec failure as exit code 128 with the runtime's message.
            return pod_status.Termination(128, str(error), started_at, pod_status.now(), 0)
        run.process = process
        self._patch_status(
            run.namespace,
            run.name,
            pod_status.running_patch(
                container.name,
                container.image or "",
                process_id=process.process.pid,
                started_at=started_at,
                restart_count=restart_count,
                last_termination=last,
            ),
        )
        return_code = self._wait_for_exit(run, process)
        exit_code, signal_number = exit_status(return_code)
        message = termination_message(
            _read_bytes(message_file),
            _read_bytes(log_path),
            exit_code,
            container.termination_message_policy,
        )
        return pod_status.Termination(
            exit_code, message, started_at, pod_status.now(), process.process.pid, signal_number
        )

    @staticmethod
    def _wait_for_exit(run: _PodRun, process: ManagedProcess) -> int:
        while process.running():
            if run.terminate.wait(0.05):
                return process.stop(run.grace_seconds)
        return process.stop(0)

    # -- API calls ---------------------------------------------------------------------------

    def _object_store(self) -> ObjectStore:
        return ObjectStore(secret=self._secret_data, config_map=self._config_map_data)

    def _secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            secret = self._core.read_namespaced_secret(name, namespace)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        data = decode_secret_data(secret.data)
        return data | dict(secret.string_data or {})

    def _config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            config_map = self._core.read_namespaced_config_map(name, namespace)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(config_map.data or {})

    def _patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        if self._stopping.is_set():
            return
        with contextlib.suppress(client.ApiException):  # a Pod deleted meanwhile
            self._core.patch_namespaced_pod_status(
                name, namespace, patch, _content_type="application/strategic-merge-patch+json"
            )

    def _finish_deleted(self, run: _PodRun) -> None:
        self._delete_now(run.namespace, run.name, run.uid)

    def _delete_now(self, namespace: str, name: str, uid: str) -> None:
        """kubelet's last word on a Pod being deleted: remove it without further grace."""
        if self._stopping.is_set():
            return
        body = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)
        )
        with contextlib.suppress(client.ApiException):
            self._core.delete_namespaced_pod(name, namespace, body=body)
