"""A real node for the test control plane: containerd, kubelet and kube-scheduler.

The node emulator (node.py) runs a Pod's command as a local process of the test environment,
which cannot show what only a container shows: the image's own Python and files, its user
(uid 10001), a read-only root filesystem, the security context, the termination message file
and SIGTERM from the kubelet on deletion or deadline. This module joins a real node to the
running control plane:

- containerd (Debian's) with a private configuration, socket, root and state directory, runc
  as its runtime, `restrict_oom_score_adj` (root here may not lower OOM scores), a CNI bridge
  for Pod networking and a local pause image as `sandbox_image` (no registry is reachable);
- kubelet and kube-scheduler, built by build.sh from the pinned Kubernetes module, the kubelet
  authenticating as `system:node:<name>` (bound to the `system:node` ClusterRole) and serving
  TLS so `kubectl logs` and `exec` work through the apiserver;
- the project's image (hack/build-image.sh), imported into containerd from its OCI archive.

The emulator and the real node share one control plane. The real node carries the label and
NoSchedule taint `node.rayces.io/real-node`; `RealNode.claim_namespace` annotates a namespace so
admission (PodNodeSelector, PodTolerationRestriction) gives each of its Pods the selector and
toleration, the emulator leaves those Pods alone and kube-scheduler binds them here. Everything
else stays on the emulator.

Pods reach the suite's PostgreSQL through `RealNode.pod_database_url`, which relays the CNI
bridge's gateway address on this machine to the server; nothing leaves the machine.

Nothing falls back silently: when containerd or the kubelet cannot start, `RealNodeError` says
which and shows its log. Teardown stops everything and restores what the node changed on the
machine (host_state.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from kubernetes import client
from tests.controlplane import host_state, pki
from tests.controlplane.binaries import BUILD_COMMAND, default_cache_dir
from tests.controlplane.harness import (
    LOG_DIR_VARIABLE,
    ControlPlane,
    ControlPlaneError,
    keep_logs,
    wait_until,
)
from tests.controlplane.node import REAL_NODE_LABEL
from tests.controlplane.objects import as_model
from tests.controlplane.oci_archive import write_single_binary_image
from tests.controlplane.processes import ManagedProcess, free_loopback_port, start_process
from tests.controlplane.tcp_forward import Forward, Target

NODE_NAME = "rayces-node"
POD_SUBNET = "10.88.0.0/24"
GATEWAY = "10.88.0.1"
"""The host's address on the Pods' bridge: the one address Pods reach this machine at."""
NODE_IP = GATEWAY
"""The node's InternalIP, where kubelet serves logs and exec (kubelet refuses loopback)."""
BRIDGE = "rayces0"
CNI_NETWORK = "rayces-test"
SANDBOX_IMAGE = "localhost/rayces-pause:1"
CONTAINERD_NAMESPACE = "k8s.io"
"""The containerd namespace the CRI plugin keeps Kubernetes' images and containers in."""
INSTALL_COMMAND = "bash hack/install-packages.sh"
IMAGE_COMMAND = "bash hack/build-image.sh"
START_TIMEOUT_SECONDS = 120.0
DRAIN_TIMEOUT_SECONDS = 60.0
MACHINE_LOCK = Path(tempfile.gettempdir()) / "rayces-real-node.lock"
"""One real node per machine at a time: the bridge, the `kubepods` cgroups, /var/log/containers
and the shim sockets under /run/containerd are the machine's, not a session's."""
MACHINE_LOCK_TIMEOUT_SECONDS = 900.0
_held_locks: set[Path] = set()
"""Lock files this process holds (a second flock of the same file here would wait forever)."""
NODE_SELECTOR_ANNOTATION = "scheduler.alpha.kubernetes.io/node-selector"
TOLERATIONS_ANNOTATION = "scheduler.alpha.kubernetes.io/defaultTolerations"


class RealNodeError(RuntimeError):
    """The real node cannot start; the message says which part and how to fix it."""


@dataclass(frozen=True)
class NodeTools:
    """The executables a real node runs."""

    kubelet: Path
    kube_scheduler: Path
    pause: Path
    containerd: Path
    ctr: Path
    runc: Path
    cni_bin_dir: Path


def _which(name: str) -> Path | None:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    return Path(found) if found else None


def locate_node_tools(directory: Path | None = None) -> NodeTools:
    """Find kubelet, kube-scheduler and pause (build.sh) and containerd, ctr, runc and the CNI
    plugins (Debian packages), or say how to get each."""
    directory = directory or default_cache_dir()
    built = {name: directory / name for name in ("kubelet", "kube-scheduler", "pause")}
    missing_built = [name for name, path in built.items() if not os.access(path, os.X_OK)]
    if missing_built:
        raise RealNodeError(
            f"the real test node needs {', '.join(missing_built)} in {directory}; "
            f"build them with `{BUILD_COMMAND}`"
        )
    packaged = {name: _which(name) for name in ("containerd", "ctr", "runc")}
    cni = next(
        (Path(d) for d in ("/usr/lib/cni", "/opt/cni/bin") if Path(d, "bridge").exists()), None
    )
    missing = [name for name, path in packaged.items() if path is None]
    if cni is None:
        missing.append("the CNI plugins (bridge, host-local, loopback)")
    if missing:
        raise RealNodeError(
            f"the real test node needs {', '.join(missing)}; install them with "
            f"`{INSTALL_COMMAND}` (as root)"
        )
    if os.geteuid() != 0:
        raise RealNodeError("the real test node runs containerd and kubelet, which need root")
    return NodeTools(
        kubelet=built["kubelet"],
        kube_scheduler=built["kube-scheduler"],
        pause=built["pause"],
        containerd=packaged["containerd"] or Path(),
        ctr=packaged["ctr"] or Path(),
        runc=packaged["runc"] or Path(),
        cni_bin_dir=cni or Path(),
    )


# -- configuration: pure builders --------------------------------------------------------------


def containerd_config(workdir: Path, tools: NodeTools) -> str:
    """containerd's configuration (format version 2, containerd 1.6/1.7), all paths private."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{workdir}/containerd/root"
state = "{workdir}/containerd/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{workdir}/containerd/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "{workdir}/containerd/opt"

[{cri}]
  sandbox_image = "{SANDBOX_IMAGE}"
  # Root here may not lower OOM scores, so containers keep at least containerd's.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  BinaryName = "{tools.runc}"
  Root = "{workdir}/runc"
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{tools.cni_bin_dir}"
  conf_dir = "{workdir}/cni/net.d"
"""


def cni_config(workdir: Path) -> dict[str, Any]:
    """One bridge network; no masquerading or port mapping, so no firewall rule is written."""
    return {
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY}]],
                    "dataDir": str(workdir / "cni" / "ipam"),
                },
            }
        ],
    }


def kubelet_config(
    workdir: Path,
    socket: Path,
    ca: Path,
    *,
    serving: tuple[Path, Path],
    port: int,
    healthz: int,
) -> dict[str, Any]:
    """The KubeletConfiguration: loopback only, private directories, this machine's quirks."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": NODE_IP,
        "healthzPort": healthz,
        "tlsCertFile": str(serving[0]),
        "tlsPrivateKeyFile": str(serving[1]),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{socket}",
        "cgroupDriver": "cgroupfs",
        # This machine: cgroup v1, swap may be on, and no iptables chains of kubelet's.
        "failCgroupV1": False,
        "failSwapOn": False,
        "makeIPTablesUtilChains": False,
        "podLogsDir": str(workdir / "pod-logs"),
        "volumePluginDir": str(workdir / "volume-plugins"),
        "registerWithTaints": [{"key": REAL_NODE_LABEL, "value": "true", "effect": "NoSchedule"}],
        # Never collect the imported images (nothing could pull them back) nor evict for a
        # shared test machine's disk.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "serializeImagePulls": False,
        "hairpinMode": "none",
        "shutdownGracePeriod": "0s",
        "kubeAPIQPS": 50,
        "kubeAPIBurst": 100,
    }


def namespace_annotations() -> dict[str, str]:
    """What makes admission send every Pod of a namespace to the real node."""
    toleration = {"key": REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}
    return {
        NODE_SELECTOR_ANNOTATION: f"{REAL_NODE_LABEL}=true",
        TOLERATIONS_ANNOTATION: json.dumps([toleration]),
    }


def forward_target(database_url: str) -> tuple[Target, dict[str, str]]:
    """Where the server of libpq URL `database_url` listens, and its other URL parameters.

    A Unix socket directory as host means the socket `<dir>/.s.PGSQL.<port>`.
    """
    parameters = psycopg.conninfo.conninfo_to_dict(database_url)
    host = str(parameters.pop("host", "") or "/var/run/postgresql")
    port = int(str(parameters.pop("port", "") or 5432))
    target: Target = f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)
    return target, {key: str(value) for key, value in parameters.items() if value is not None}


# -- the running node --------------------------------------------------------------------------


@dataclass
class RealNode:
    """A node whose Pods run as containers; see the module docstring for how to use it."""

    name: str
    image: str
    """The project's image, imported into containerd (run it with imagePullPolicy Never)."""
    workdir: Path
    plane: ControlPlane
    tools: NodeTools
    containerd: ManagedProcess
    kubelet: ManagedProcess | None = None
    scheduler: ManagedProcess | None = None
    start_seconds: float = 0.0
    _forwards: dict[str, Forward] = field(default_factory=dict, repr=False)

    @property
    def containerd_socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    def ctr(self, *arguments: str, timeout: float = 300) -> str:
        """Run `ctr` against this node's containerd in the Kubernetes namespace; its stdout."""
        argv = [
            str(self.tools.ctr),
            "--address",
            str(self.containerd_socket),
            "--namespace",
            CONTAINERD_NAMESPACE,
            *arguments,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RealNodeError(f"ctr {' '.join(arguments)} failed: {done.stderr.strip()}")
        return done.stdout

    def claim_namespace(self, namespace: str) -> None:
        """Send every Pod created from now on in `namespace` to this node (not the emulator)."""
        with self.plane.api_client() as api_client:
            client.CoreV1Api(api_client).patch_namespace(
                namespace, {"metadata": {"annotations": namespace_annotations()}}
            )

    def create_namespace(self, namespace: str) -> None:
        """Create `namespace` (ready for Pods) with its Pods sent to this node."""
        self.plane.create_namespace(namespace)
        self.claim_namespace(namespace)

    def pod_database_url(self, database_url: str) -> str:
        """`database_url` as a Pod on this node reaches the same database.

        The server (a Unix socket or a loopback address of this machine) is relayed from the
        bridge's gateway address; one relay per server, kept until the node stops.
        """
        target, parameters = forward_target(database_url)
        key = repr(target)
        if key not in self._forwards:
            forward = Forward(GATEWAY, target)
            forward.start()
            self._forwards[key] = forward
        port = self._forwards[key].port
        return psycopg.conninfo.make_conninfo("", host=GATEWAY, port=port, **parameters)

    def stop_forwards(self) -> None:
        for forward in self._forwards.values():
            forward.stop()
        self._forwards.clear()


def _write_kubelet_files(node: RealNode) -> tuple[Path, Path]:
    """The kubelet's kubeconfig and configuration file."""
    plane, workdir = node.plane, node.workdir
    credentials = plane.user(f"system:node:{node.name}", ("system:nodes",))
    serving = plane.serving_certificate((NODE_IP, "localhost", node.name))
    certificate, key = workdir / "kubelet.crt", workdir / "kubelet.key"
    certificate.write_bytes(serving.certificate_pem())
    key.write_bytes(serving.key_pem())
    key.chmod(0o600)
    config = workdir / "kubelet.yaml"
    config.write_text(
        json.dumps(
            kubelet_config(
                workdir,
                node.containerd_socket,
                plane.certificate_authority,
                serving=(certificate, key),
                port=free_loopback_port(),
                healthz=free_loopback_port(),
            ),
            indent=2,
        )
    )
    return credentials.kubeconfig, config


def _bind_node_role(plane: ControlPlane, node_name: str) -> None:
    """Grant the kubelet's user what the `system:node` ClusterRole allows a kubelet."""
    binding: dict[str, Any] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"rayces-test-{node_name}"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:node",
        },
        "subjects": [
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "User",
                "name": f"system:node:{node_name}",
            }
        ],
    }
    with plane.api_client() as api_client:
        rbac = client.RbacAuthorizationV1Api(api_client)
        with contextlib.suppress(client.ApiException):
            rbac.delete_cluster_role_binding(f"rayces-test-{node_name}")
        rbac.create_cluster_role_binding(as_model(client.V1ClusterRoleBinding, binding))


def _start_containerd(node: RealNode) -> None:
    wait_until(
        "containerd to serve its socket",
        lambda: node.containerd_socket.exists() and bool(node.ctr("version", timeout=10)),
        timeout=START_TIMEOUT_SECONDS,
        process=node.containerd,
    )


def _import_images(node: RealNode, image_archive: Path) -> None:
    pause_archive = node.workdir / "pause.oci.tar"
    write_single_binary_image(pause_archive, SANDBOX_IMAGE, node.tools.pause)
    node.ctr("images", "import", str(pause_archive))
    node.ctr("images", "import", str(image_archive))
    names = node.ctr("images", "list", "--quiet").split()
    missing = [name for name in (SANDBOX_IMAGE, node.image) if name not in names]
    if missing:
        raise RealNodeError(
            f"containerd has no {', '.join(missing)} after importing {image_archive} "
            f"(it has {', '.join(names) or 'no image'}); rebuild it with `{IMAGE_COMMAND}`"
        )


def _node_ready(core: client.CoreV1Api, name: str) -> bool:
    node = core.read_node(name)
    conditions = node.status.conditions if node.status else None
    return any(c.type == "Ready" and c.status == "True" for c in conditions or [])


def _start_scheduler(node: RealNode) -> ManagedProcess:
    credentials = node.plane.user("system:kube-scheduler", (pki.SUPERUSER_GROUP,))
    argv = [
        str(node.tools.kube_scheduler),
        f"--kubeconfig={credentials.kubeconfig}",
        "--leader-elect=false",
        "--secure-port=0",
    ]
    return start_process("kube-scheduler", argv, node.workdir / "kube-scheduler.log")


def _running_tasks(node: RealNode) -> list[str]:
    lines = node.ctr("tasks", "list", timeout=30).splitlines()[1:]
    return [line.split()[0] for line in lines if line.split()[-1:] == ["RUNNING"]]


def _drain(node: RealNode) -> None:
    """Delete this node's Pods and wait until kubelet has stopped their containers, so their
    network namespaces and volumes are torn down by the components that made them."""
    with node.plane.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node.name}")
        for pod in pods.items:
            if pod.metadata is None or not pod.metadata.name or not pod.metadata.namespace:
                continue
            with contextlib.suppress(client.ApiException):
                core.delete_namespaced_pod(
                    pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
                )
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while time.monotonic() < deadline and node.containerd.running():
        with contextlib.suppress(RealNodeError, subprocess.TimeoutExpired):
            if not _running_tasks(node):
                return
        time.sleep(0.5)


def _kill_shims(socket: Path) -> None:
    """containerd's shims outlive containerd by design; stop the ones of this node."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(socket).encode() in argv:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(proc.name), signal.SIGKILL)


@contextlib.contextmanager
def machine_lock(path: Path = MACHINE_LOCK) -> Iterator[None]:
    """Hold the machine's real-node lock, waiting for another session's node to stop.

    A second node in the same process would wait for itself, so that is refused at once.
    """
    if path in _held_locks:
        raise RealNodeError(
            "a real test node already runs in this process; use the session's `real_node`"
        )
    with path.open("a") as handle:
        deadline = time.monotonic() + MACHINE_LOCK_TIMEOUT_SECONDS
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RealNodeError(
                        f"another real test node has run on this machine for over "
                        f"{MACHINE_LOCK_TIMEOUT_SECONDS:.0f}s (lock {path}); wait for it to stop"
                    ) from None
                time.sleep(1)
        _held_locks.add(path)
        try:
            yield
        finally:
            _held_locks.discard(path)
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def running_real_node(
    plane: ControlPlane,
    image: str,
    image_archive: Path,
    *,
    tools: NodeTools | None = None,
    name: str = NODE_NAME,
) -> Iterator[RealNode]:
    """Start containerd, kubelet and kube-scheduler against `plane`, with `image` imported
    from `image_archive`; yield when the Node is Ready. Stops everything and restores the
    machine on exit, also after a failure."""
    tools = tools or locate_node_tools()
    if not image_archive.is_file():
        raise RealNodeError(f"no image archive at {image_archive}; build it with `{IMAGE_COMMAND}`")
    started = time.monotonic()
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(machine_lock())
        before = host_state.capture()
        workdir = Path(tempfile.mkdtemp(prefix="rayces-node-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        cleanup.callback(host_state.restore, before, (workdir,))
        log_dir = os.environ.get(LOG_DIR_VARIABLE)
        if log_dir:
            cleanup.callback(keep_logs, workdir, Path(log_dir))
        for directory in ("containerd", "cni/net.d", "pod-logs", "kubelet"):
            (workdir / directory).mkdir(parents=True, exist_ok=True)
        (workdir / "containerd.toml").write_text(containerd_config(workdir, tools))
        (workdir / "cni" / "net.d" / "10-rayces.conflist").write_text(
            json.dumps(cni_config(workdir), indent=2)
        )
        # The bridge exists before the first Pod, so the database relay can listen on it.
        for command in (
            ["ip", "link", "add", BRIDGE, "type", "bridge"],
            ["ip", "address", "add", f"{GATEWAY}/{POD_SUBNET.split('/')[1]}", "dev", BRIDGE],
            ["ip", "link", "set", BRIDGE, "up"],
        ):
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RealNodeError(f"{' '.join(command)} failed: {done.stderr.strip()}")

        containerd = start_process(
            "containerd",
            [str(tools.containerd), "--config", str(workdir / "containerd.toml")],
            workdir / "containerd.log",
        )
        node = RealNode(name, image, workdir, plane, tools, containerd)
        cleanup.callback(_kill_shims, node.containerd_socket)
        cleanup.callback(containerd.stop)
        cleanup.callback(node.stop_forwards)
        try:
            _start_containerd(node)
        except ControlPlaneError as error:
            raise RealNodeError(f"containerd did not start: {error}") from None
        _import_images(node, image_archive)

        _bind_node_role(plane, name)
        kubeconfig, config = _write_kubelet_files(node)
        node.kubelet = start_process(
            "kubelet",
            [
                str(tools.kubelet),
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={workdir / 'kubelet'}",
                f"--hostname-override={name}",
                f"--node-ip={NODE_IP}",
                f"--node-labels={REAL_NODE_LABEL}=true",
                "--v=1",
            ],
            workdir / "kubelet.log",
        )
        cleanup.callback(node.kubelet.stop)
        cleanup.callback(_drain, node)
        with plane.api_client() as api_client:
            core = client.CoreV1Api(api_client)
            try:
                wait_until(
                    f"Node {name} to be Ready",
                    lambda: _node_ready(core, name),
                    timeout=START_TIMEOUT_SECONDS,
                    process=node.kubelet,
                )
            except ControlPlaneError as error:
                raise RealNodeError(f"kubelet did not start: {error}") from None
        node.scheduler = _start_scheduler(node)
        cleanup.callback(node.scheduler.stop)
        node.start_seconds = time.monotonic() - started
        yield node


# -- checking teardown -------------------------------------------------------------------------


@dataclass(frozen=True)
class TeardownReport:
    """What a node changed on the machine while it ran, and what its teardown left behind."""

    changed_while_running: list[str]
    left_after_teardown: list[str]


def wait_for_pod_end(
    core: client.CoreV1Api, namespace: str, name: str, timeout: float = START_TIMEOUT_SECONDS
) -> client.V1Pod:
    """The Pod once its phase is Succeeded or Failed."""
    ended: list[client.V1Pod] = []

    def finished() -> bool:
        pod = core.read_namespaced_pod(name, namespace)
        if pod.status and pod.status.phase in ("Succeeded", "Failed"):
            ended.append(pod)
            return True
        return False

    wait_until(f"Pod {namespace}/{name} to end", finished, timeout=timeout)
    return ended[0]


def check_teardown(plane: ControlPlane, image: str, image_archive: Path) -> TeardownReport:
    """Start a node, run one Pod with volumes (so there are mounts, cgroups, a veth and a
    network namespace to clean), stop the node and compare the machine with before."""
    before = host_state.capture()
    with running_real_node(plane, image, image_archive) as node:
        namespace = "rayces-node-teardown"
        node.create_namespace(namespace)
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "volumes"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": ["sh", "-c", "touch /tmp/scratch && ls /tmp"],
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }
                ],
                "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory"}}],
            },
        }
        with plane.api_client() as api_client:
            core = client.CoreV1Api(api_client)
            core.create_namespaced_pod(namespace, as_model(client.V1Pod, pod))
            ended = wait_for_pod_end(core, namespace, "volumes")
            phase = ended.status.phase if ended.status else None
            if phase != "Succeeded":
                raise RealNodeError(f"the teardown check's Pod ended {phase}")
        changed = host_state.differences(before, host_state.capture())
    return TeardownReport(changed, host_state.differences(before, host_state.capture()))


def check_failed_start(plane: ControlPlane, image: str, image_archive: Path) -> TeardownReport:
    """Start a node whose containerd exits at once: the error it raises, and what is left.

    Returns the error message as `changed_while_running` (one line) and the differences from
    before as `left_after_teardown`.
    """
    tools = dataclasses.replace(locate_node_tools(), containerd=Path("/bin/false"))
    before = host_state.capture()
    try:
        with running_real_node(plane, image, image_archive, tools=tools):
            pass
    except RealNodeError as error:
        message = str(error)
    else:
        message = ""
    return TeardownReport([message], host_state.differences(before, host_state.capture()))
