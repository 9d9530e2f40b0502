"""Start and stop a real Kubernetes control plane on loopback for one test session.

The operator is tested against kube-apiserver itself — CRD schema validation, the status
subresource, finalizers, resourceVersion conflicts and RBAC are the server's behaviour, not a
mock's. This module starts etcd and kube-apiserver the way envtest does (TLS on a free
127.0.0.1 port, RBAC authorization, service-account token signing, an admin client
certificate), adds kube-controller-manager so the Job controller and the garbage collector
run, and the node emulator so Pods run. Everything it starts is stopped, and every file it
wrote is removed, when the `running_control_plane` context exits — also after a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from tests.controlplane import pki
from tests.controlplane.binaries import ControlPlaneBinaries, locate_binaries
from tests.controlplane.node import NodeEmulator
from tests.controlplane.objects import as_model
from tests.controlplane.processes import ManagedProcess, free_loopback_port, start_process

CRDS_DIR = Path(__file__).resolve().parents[2] / "crds"
"""The repository's CustomResourceDefinitions, installed in every test control plane."""
STARTUP_TIMEOUT_SECONDS = 60.0
LOG_DIR_VARIABLE = "RAYCES_CONTROLPLANE_LOG_DIR"
"""When set, the components' and containers' logs are copied there before cleanup."""
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
NODE_ADMISSION_PLUGINS = "PodNodeSelector,PodTolerationRestriction"
"""Namespace annotations choose a node for every Pod in them: how the real test node takes the
Pods of the namespaces it is given while the node emulator keeps the others."""


class ControlPlaneError(RuntimeError):
    """A component did not start or did not become ready; the message carries its log."""


@dataclass(frozen=True)
class UserCredentials:
    """Files that authenticate one user to the test kube-apiserver."""

    user: str
    groups: tuple[str, ...]
    certificate: Path
    key: Path
    kubeconfig: Path


@dataclass
class ControlPlane:
    """A running control plane: where it is, who may talk to it, and what runs in it."""

    server: str
    certificate_authority: Path
    workdir: Path
    namespace: str
    binaries: ControlPlaneBinaries
    admin: UserCredentials
    start_seconds: float = 0.0
    node: NodeEmulator | None = None
    controller_manager: ManagedProcess | None = None
    processes: list[ManagedProcess] = field(default_factory=list)
    """etcd, kube-apiserver and (when built) kube-controller-manager, in start order."""
    _authority: pki.IssuedCertificate | None = field(default=None, repr=False)

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig for the admin user (group system:masters), for kubectl and kopf."""
        return self.admin.kubeconfig

    def configuration(self, credentials: UserCredentials | None = None) -> client.Configuration:
        """A kubernetes client Configuration for `credentials` (the admin by default)."""
        credentials = credentials or self.admin
        configuration = client.Configuration()
        configuration.host = self.server
        configuration.ssl_ca_cert = str(self.certificate_authority)
        configuration.cert_file = str(credentials.certificate)
        configuration.key_file = str(credentials.key)
        return configuration

    def api_client(self, credentials: UserCredentials | None = None) -> client.ApiClient:
        """A new ApiClient; close it (or use it as a context manager) when done."""
        return client.ApiClient(self.configuration(credentials))

    def create_namespace(self, name: str) -> None:
        """Create namespace `name`, ready for Pods (its default ServiceAccount exists)."""
        with self.api_client() as api_client:
            create_namespace(api_client, name, controller_manager=self.controller_manager)

    def serving_certificate(self, hosts: tuple[str, ...]) -> pki.IssuedCertificate:
        """A TLS server certificate for `hosts`, signed by the control plane's CA."""
        if self._authority is None:
            raise ControlPlaneError("the control plane has no certificate authority")
        return pki.issue_serving_certificate(self._authority, hosts)

    def user(self, name: str, groups: tuple[str, ...] = ()) -> UserCredentials:
        """Credentials for a user that has only what RBAC grants `name` and `groups`."""
        if self._authority is None:
            raise ControlPlaneError("the control plane has no certificate authority")
        return write_user_credentials(
            self._authority, name, groups, self.workdir / "users", self.server
        )


def write_kubeconfig(path: Path, server: str, authority: Path, cert: Path, key: Path) -> None:
    """A one-context kubeconfig; JSON is valid YAML, so no YAML writer is needed."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "rayces-test",
                "cluster": {"server": server, "certificate-authority": str(authority)},
            }
        ],
        "users": [
            {
                "name": "rayces-test",
                "user": {"client-certificate": str(cert), "client-key": str(key)},
            }
        ],
        "contexts": [
            {"name": "rayces-test", "context": {"cluster": "rayces-test", "user": "rayces-test"}}
        ],
        "current-context": "rayces-test",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def write_user_credentials(
    authority: pki.IssuedCertificate,
    user: str,
    groups: tuple[str, ...],
    directory: Path,
    server: str,
) -> UserCredentials:
    """Issue a client certificate for `user` in `groups` and write it with a kubeconfig."""
    issued = pki.issue_client_certificate(authority, user, groups)
    home = directory / user.replace(":", "_")
    home.mkdir(parents=True, exist_ok=True)
    certificate, key, kubeconfig = home / "client.crt", home / "client.key", home / "kubeconfig"
    certificate.write_bytes(issued.certificate_pem())
    key.write_bytes(issued.key_pem())
    key.chmod(0o600)
    write_kubeconfig(kubeconfig, server, directory.parent / "ca.crt", certificate, key)
    return UserCredentials(user, groups, certificate, key, kubeconfig)


@dataclass(frozen=True)
class _Secrets:
    """The PKI files one control plane shares between its components."""

    authority: pki.IssuedCertificate
    ca_certificate: Path
    serving_certificate: Path
    serving_key: Path
    service_account_key: Path
    service_account_public_key: Path
    kubelet_client_certificate: Path
    kubelet_client_key: Path


def keep_logs(workdir: Path, destination: Path) -> None:
    """Copy every log of a control plane (components and emulated containers) to keep it."""
    target = destination / workdir.name
    for log in workdir.rglob("*.log"):
        copy = target / log.relative_to(workdir)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, copy)


def _write_secrets(workdir: Path) -> _Secrets:
    authority = pki.new_certificate_authority()
    serving = pki.issue_serving_certificate(authority)
    sa_private, sa_public = pki.new_service_account_signing_key()
    # How kube-apiserver authenticates to a kubelet for logs, exec and port-forward.
    kubelet_client = pki.issue_client_certificate(
        authority, KUBELET_CLIENT_USER, (pki.SUPERUSER_GROUP,)
    )
    files = {
        "ca.crt": authority.certificate_pem(),
        "apiserver.crt": serving.certificate_pem(),
        "apiserver.key": serving.key_pem(),
        "service-account.key": sa_private,
        "service-account.pub": sa_public,
        "apiserver-kubelet-client.crt": kubelet_client.certificate_pem(),
        "apiserver-kubelet-client.key": kubelet_client.key_pem(),
    }
    for name, content in files.items():
        (workdir / name).write_bytes(content)
        (workdir / name).chmod(0o600)
    return _Secrets(
        authority,
        workdir / "ca.crt",
        workdir / "apiserver.crt",
        workdir / "apiserver.key",
        workdir / "service-account.key",
        workdir / "service-account.pub",
        workdir / "apiserver-kubelet-client.crt",
        workdir / "apiserver-kubelet-client.key",
    )


def wait_until(
    what: str,
    ready: Callable[[], bool],
    *,
    timeout: float = STARTUP_TIMEOUT_SECONDS,
    process: ManagedProcess | None = None,
) -> None:
    """Poll `ready` until it holds; fail early, with the log, if `process` dies.

    API errors and connection errors count as "not yet", so `ready` may simply read.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.running():
            raise ControlPlaneError(
                f"{process.name} exited with code {process.process.returncode} before {what}; "
                f"last lines of {process.log_path}:\n{process.log_tail()}"
            )
        with contextlib.suppress(OSError, client.ApiException):
            if ready():
                return
        time.sleep(0.1)
    log = f"; last lines of {process.log_path}:\n{process.log_tail()}" if process else ""
    raise ControlPlaneError(f"timed out after {timeout:.0f}s waiting for {what}{log}")


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return False


def _start_etcd(binaries: ControlPlaneBinaries, workdir: Path) -> tuple[ManagedProcess, str]:
    client_port, peer_port = free_loopback_port(), free_loopback_port()
    client_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    argv = [
        str(binaries.etcd),
        "--name=rayces-test",
        f"--data-dir={workdir / 'etcd'}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=rayces-test={peer_url}",
        # As envtest: a test cluster's data is thrown away, so durability buys nothing.
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]
    etcd = start_process("etcd", argv, workdir / "etcd.log")
    return etcd, client_url


def _apiserver_argv(
    binaries: ControlPlaneBinaries, workdir: Path, etcd_url: str, port: int, secrets: _Secrets
) -> list[str]:
    argv = [
        str(binaries.kube_apiserver),
        "--advertise-address=127.0.0.1",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--etcd-servers={etcd_url}",
        f"--cert-dir={workdir / 'apiserver-certs'}",
        f"--tls-cert-file={secrets.serving_certificate}",
        f"--tls-private-key-file={secrets.serving_key}",
        f"--client-ca-file={secrets.ca_certificate}",
        "--authorization-mode=RBAC",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={secrets.service_account_public_key}",
        f"--service-account-signing-key-file={secrets.service_account_key}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--allow-privileged=true",
        # The endpoint reconciler publishes the advertise address as the endpoint of the
        # `kubernetes` Service and refuses loopback; nothing here reaches it that way.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
        # kubectl logs/exec through a real kubelet (tests/controlplane/realnode.py).
        f"--kubelet-client-certificate={secrets.kubelet_client_certificate}",
        f"--kubelet-client-key={secrets.kubelet_client_key}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--enable-admission-plugins={NODE_ADMISSION_PLUGINS}",
    ]
    if binaries.kube_controller_manager is None:
        # Without the controller manager nothing creates the "default" ServiceAccount, so
        # admission would refuse every Pod; envtest disables the plugin for the same reason.
        argv.append("--disable-admission-plugins=ServiceAccount")
    return argv


def _client_context(secrets: _Secrets, admin: UserCredentials) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(secrets.ca_certificate))
    context.load_cert_chain(str(admin.certificate), str(admin.key))
    return context


def _start_controller_manager(
    path: Path, workdir: Path, secrets: _Secrets, server: str
) -> ManagedProcess:
    credentials = write_user_credentials(
        secrets.authority,
        CONTROLLER_MANAGER_USER,
        # One identity for every controller (no per-controller service accounts), so it
        # needs the superuser group; a cluster would use --use-service-account-credentials.
        (pki.SUPERUSER_GROUP,),
        workdir / "users",
        server,
    )
    argv = [
        str(path),
        f"--kubeconfig={credentials.kubeconfig}",
        "--controllers=*",
        "--leader-elect=false",
        "--use-service-account-credentials=false",
        f"--service-account-private-key-file={secrets.service_account_key}",
        f"--root-ca-file={secrets.ca_certificate}",
        # Its own HTTPS endpoint serves only metrics and health; nothing here reads them.
        "--secure-port=0",
    ]
    return start_process("kube-controller-manager", argv, workdir / "kube-controller-manager.log")


def load_crds(directory: Path) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in the YAML files of `directory` (none if it is absent)."""
    if not directory.is_dir():
        return []
    definitions: list[dict[str, Any]] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        if path.stem == "kustomization":  # kustomize's index of the directory, not an object
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if not document:
                continue
            if document.get("kind") != "CustomResourceDefinition":
                raise ControlPlaneError(
                    f"{path} holds a {document.get('kind')!r}; crds/ is for "
                    "CustomResourceDefinitions only"
                )
            definitions.append(document)
    return definitions


def crd_established(api: client.ApiextensionsV1Api, name: str) -> bool:
    """Whether the CRD `name` serves its resources (condition Established is True)."""
    definition = api.read_custom_resource_definition(name)
    conditions = definition.status.conditions if definition.status else None
    return any(c.type == "Established" and c.status == "True" for c in conditions or [])


def install_crds(api_client: client.ApiClient, definitions: list[dict[str, Any]]) -> None:
    """Create each CRD and wait until the apiserver serves it."""
    api = client.ApiextensionsV1Api(api_client)
    for definition in definitions:
        api.create_custom_resource_definition(
            as_model(client.V1CustomResourceDefinition, definition)
        )
    for definition in definitions:
        wait_for_crd(api, definition["metadata"]["name"])


def wait_for_crd(api: client.ApiextensionsV1Api, name: str) -> None:
    """Block until the apiserver serves the resources of CRD `name`."""
    wait_until(f"CRD {name} to be established", lambda: crd_established(api, name))


def service_account_exists(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    core.read_namespaced_service_account(name, namespace)
    return True


def create_namespace(
    api_client: client.ApiClient, name: str, *, controller_manager: ManagedProcess | None
) -> None:
    """Create namespace `name`; with a controller manager, wait for its default ServiceAccount.

    ServiceAccount admission refuses Pods until that account exists, so a Job created before
    it would start with a failed Pod creation and the Job controller's back-off.
    """
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    if controller_manager is not None:
        wait_until(
            f"ServiceAccount {name}/default",
            lambda: service_account_exists(core, name, "default"),
            process=controller_manager,
        )


@contextlib.contextmanager
def running_control_plane(
    crds_dir: Path = CRDS_DIR,
    namespace: str = "raycesv3",
    binaries: ControlPlaneBinaries | None = None,
) -> Iterator[ControlPlane]:
    """Start etcd, kube-apiserver, kube-controller-manager and the node emulator.

    Yields when the apiserver is ready, `namespace` exists and every CRD in `crds_dir` is
    established; stops everything and deletes the working directory on exit.
    """
    binaries = binaries or locate_binaries()
    started = time.monotonic()
    with contextlib.ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="rayces-controlplane-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        log_dir = os.environ.get(LOG_DIR_VARIABLE)
        if log_dir:
            cleanup.callback(keep_logs, workdir, Path(log_dir))
        secrets = _write_secrets(workdir)

        etcd, etcd_url = _start_etcd(binaries, workdir)
        cleanup.callback(etcd.stop)
        wait_until("etcd /health", lambda: _http_ok(f"{etcd_url}/health"), process=etcd)

        port = free_loopback_port()
        server = f"https://127.0.0.1:{port}"
        admin = write_user_credentials(
            secrets.authority, "admin", (pki.SUPERUSER_GROUP,), workdir / "users", server
        )
        apiserver = start_process(
            "kube-apiserver",
            _apiserver_argv(binaries, workdir, etcd_url, port, secrets),
            workdir / "kube-apiserver.log",
        )
        cleanup.callback(apiserver.stop)
        context = _client_context(secrets, admin)
        wait_until(
            "kube-apiserver /readyz",
            lambda: _http_ok(f"{server}/readyz", context),
            process=apiserver,
        )

        manager = None
        if binaries.kube_controller_manager is not None:
            manager = _start_controller_manager(
                binaries.kube_controller_manager, workdir, secrets, server
            )
            cleanup.callback(manager.stop)

        plane = ControlPlane(
            server=server,
            certificate_authority=secrets.ca_certificate,
            workdir=workdir,
            namespace=namespace,
            binaries=binaries,
            admin=admin,
            controller_manager=manager,
            processes=[etcd, apiserver, *([manager] if manager else [])],
            _authority=secrets.authority,
        )
        api_client = cleanup.enter_context(plane.api_client())
        install_crds(api_client, load_crds(crds_dir))
        node = NodeEmulator(plane.configuration(), workdir / "node")
        node.start()
        cleanup.callback(node.stop)
        plane.node = node
        create_namespace(api_client, namespace, controller_manager=manager)
        plane.start_seconds = time.monotonic() - started
        yield plane
