"""Fixtures for tests that talk to Kubernetes: one real control plane for the whole session.

`control_plane` starts etcd, kube-apiserver and kube-controller-manager (see
tests/controlplane/) with the node emulator, the `raycesv3` namespace and every CRD in
crds/, once per session. Any test that uses it is marked `control_plane`.

Missing binaries are an error that says how to build them, never a silent skip: the
control-plane tests are skipped only when asked with `--skip-control-plane` (or
RAYCES_SKIP_CONTROL_PLANE=1), and CI (CI=true) refuses even that.

`real_node` joins a real node (containerd, kubelet, kube-scheduler; tests/controlplane/
realnode.py) to that control plane, with the project's image (hack/build-image.sh) imported.
Its Pods run as real containers of the image. Use it through `node_namespace`, a namespace
whose Pods (and so a Job's Pods) go to the real node, and `pod_database_url`, a fresh test
database as such a Pod reaches it. Other namespaces keep the node emulator. `node_operator`
(one per test module) is an operator whose Jobs run there, and `node_cluster` its admin helpers.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from kubernetes import client
from tests.controlplane.binaries import (
    MissingBinariesError,
    controller_manager_missing,
    locate_binaries,
)
from tests.controlplane.harness import CRDS_DIR, ControlPlane, running_control_plane
from tests.controlplane.processes import ManagedProcess
from tests.controlplane.project_image import ImageBuildError, ProjectImage, build_project_image
from tests.controlplane.realnode import (
    RealNode,
    RealNodeError,
    TeardownReport,
    check_failed_start,
    check_teardown,
    locate_node_tools,
    running_real_node,
)

if TYPE_CHECKING:
    from tests.controller.operator_support import Cluster, OperatorProcess

SKIP_ENVIRONMENT_VARIABLE = "RAYCES_SKIP_CONTROL_PLANE"
START_SECONDS = pytest.StashKey[float]()
NODE_START_SECONDS = pytest.StashKey[float]()
IMAGE_SECONDS = pytest.StashKey[float]()


def skip_requested(config: pytest.Config) -> bool:
    """Whether the user asked, explicitly, to skip the control-plane tests."""
    option = bool(config.getoption("--skip-control-plane", default=False))
    return option or os.environ.get(SKIP_ENVIRONMENT_VARIABLE, "") not in ("", "0")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the control plane, before `-m` selection reads marks."""
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.control_plane)


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """The session's running control plane (admin kubeconfig, client configuration, node)."""
    if skip_requested(request.config):
        if os.environ.get("CI") == "true":
            pytest.fail("CI never skips the control-plane tests", pytrace=False)
        pytest.skip("control-plane tests skipped on request (--skip-control-plane)")
    try:
        binaries = locate_binaries()
    except MissingBinariesError as error:
        missing = str(error)
    else:
        missing = ""
    if missing:
        pytest.fail(missing, pytrace=False)
    with running_control_plane(CRDS_DIR, binaries=binaries) as plane:
        request.config.stash[START_SECONDS] = plane.start_seconds
        yield plane


@pytest.fixture
def controller_manager(control_plane: ControlPlane) -> ManagedProcess:
    """kube-controller-manager, for tests of Jobs, Pods and garbage collection.

    Official envtest binary sets lack it; such tests then fail saying how to build it.
    """
    if control_plane.controller_manager is None:
        pytest.fail(controller_manager_missing(), pytrace=False)
    return control_plane.controller_manager


@pytest.fixture
def api_client(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    """An admin ApiClient for one test."""
    with control_plane.api_client() as api:
        yield api


@pytest.fixture
def namespace(control_plane: ControlPlane, api_client: client.ApiClient) -> Iterator[str]:
    """A fresh namespace, ready for Pods, deleted (asynchronously) after the test."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    control_plane.create_namespace(name)
    yield name
    client.CoreV1Api(api_client).delete_namespace(name)


@pytest.fixture(scope="session")
def project_image(request: pytest.FixtureRequest) -> ProjectImage:
    """The project's image, built from the checkout (or reused) by hack/build-image.sh."""
    try:
        image = build_project_image()
    except ImageBuildError as error:
        pytest.fail(str(error), pytrace=False)
    request.config.stash[IMAGE_SECONDS] = image.build_seconds
    return image


@pytest.fixture(scope="session")
def node_teardown_report(
    control_plane: ControlPlane, project_image: ProjectImage
) -> TeardownReport:
    """A real node started, used and stopped once, before the session's node starts."""
    try:
        locate_node_tools()
        return check_teardown(control_plane, project_image.name, project_image.archive)
    except RealNodeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def node_failed_start_report(
    control_plane: ControlPlane, project_image: ProjectImage
) -> TeardownReport:
    """A real node whose containerd cannot start: its error, and what it left behind."""
    try:
        return check_failed_start(control_plane, project_image.name, project_image.archive)
    except RealNodeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def real_node(
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    project_image: ProjectImage,
    node_teardown_report: TeardownReport,
    node_failed_start_report: TeardownReport,
) -> Iterator[RealNode]:
    """The session's real node: containerd, kubelet and kube-scheduler, the image imported.

    When containerd or the kubelet cannot start, every test that uses it fails saying why.
    """
    with contextlib.ExitStack() as stack:
        try:
            node = stack.enter_context(
                running_real_node(control_plane, project_image.name, project_image.archive)
            )
        except RealNodeError as error:
            pytest.fail(str(error), pytrace=False)
        request.config.stash[NODE_START_SECONDS] = node.start_seconds
        yield node


@pytest.fixture
def node_namespace(real_node: RealNode, api_client: client.ApiClient) -> Iterator[str]:
    """A fresh namespace whose Pods run on the real node, deleted after the test."""
    name = f"node-{uuid.uuid4().hex[:10]}"
    real_node.create_namespace(name)
    yield name
    client.CoreV1Api(api_client).delete_namespace(name)


@pytest.fixture
def pod_database_url(real_node: RealNode, database_url: str) -> str:
    """`database_url` (a fresh, empty database) as a Pod on the real node reaches it."""
    return real_node.pod_database_url(database_url)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Report how long the control plane took to start, since no test asserts a duration."""
    seconds = config.stash.get(START_SECONDS, None)
    if seconds is not None:
        terminalreporter.write_line(f"test control plane started in {seconds:.1f}s")
    image_seconds = config.stash.get(IMAGE_SECONDS, None)
    if image_seconds is not None:
        terminalreporter.write_line(f"project image built or reused in {image_seconds:.1f}s")
    node_seconds = config.stash.get(NODE_START_SECONDS, None)
    if node_seconds is not None:
        terminalreporter.write_line(f"real test node started in {node_seconds:.1f}s")
    from tests.controller.operator_support import FOOTPRINT

    footprint = config.stash.get(FOOTPRINT, None)
    if footprint is not None:
        terminalreporter.write_line(footprint)


@pytest.fixture(scope="session")
def deployed(control_plane: ControlPlane) -> ControlPlane:
    """`kubectl apply -k deploy/`, as a person installs the operator (Deployment scaled to 0:
    the emulated node gives Pods no ServiceAccount token, so the operator runs locally)."""
    from tests.controller.operator_support import DEPLOY_DIR, NAMESPACE, kubectl

    kubectl(control_plane.kubeconfig, "apply", "-k", str(DEPLOY_DIR))
    kubectl(
        control_plane.kubeconfig,
        "-n",
        NAMESPACE,
        "scale",
        "deployment/rayces-operator",
        "--replicas=0",
    )
    return control_plane


@pytest.fixture(scope="session")
def running_operator(
    deployed: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator for the session, running as the deploy/ ServiceAccount (TokenRequest)."""
    from tests.controller.operator_support import OperatorProcess, service_account_kubeconfig

    directory = tmp_path_factory.mktemp("operator")
    kubeconfig = service_account_kubeconfig(deployed, directory / "kubeconfig")
    operator = OperatorProcess(kubeconfig=kubeconfig, log_path=directory / "operator.log")
    operator.start()
    yield operator
    operator.stop()
    log_directory = os.environ.get("RAYCES_CONTROLPLANE_LOG_DIR")
    if log_directory:
        destination = Path(log_directory)
        destination.mkdir(parents=True, exist_ok=True)
        (destination / "operator.log").write_text(operator.log_text())


@pytest.fixture
def operator_cluster(
    running_operator: OperatorProcess, api_client: client.ApiClient, deployed: ControlPlane
) -> Iterator[Cluster]:
    """Admin helpers for one test, with the session's operator running."""
    from tests.controller.operator_support import Cluster, forbidden_lines

    if running_operator.process is None or not running_operator.process.running():
        running_operator.start()
    log_start = len(running_operator.log_text())
    yield Cluster(plane=deployed, api=api_client)
    running_operator.sample_memory()
    refused = forbidden_lines(running_operator.log_text()[log_start:])
    if refused:
        pytest.fail(f"the operator was refused by RBAC: {refused[0][:500]}", pytrace=False)


@pytest.fixture(scope="module")
def node_operator(
    real_node: RealNode, deployed: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """An operator of its own namespace, claimed by the real node, Jobs of the project image.

    It runs as the `rayces-operator` ServiceAccount bound to deploy/'s Role in that namespace,
    with `RAYCES_JOB_IMAGE` set to the image containerd holds.
    """
    from tests.controller.operator_support import (
        TEST_SETTINGS,
        OperatorProcess,
        install_operator_identity,
        operator_role,
        service_account_kubeconfig_for,
    )

    namespace = f"node-ops-{uuid.uuid4().hex[:8]}"
    deployed.create_namespace(namespace)
    # Claimed before the operator creates any Job, so every Pod goes to the real node.
    real_node.claim_namespace(namespace)
    install_operator_identity(deployed, namespace, operator_role()["rules"])
    directory = tmp_path_factory.mktemp("node-operator")
    operator = OperatorProcess(
        kubeconfig=service_account_kubeconfig_for(deployed, namespace, directory / "kubeconfig"),
        log_path=directory / "operator.log",
        namespace=namespace,
        environment={**TEST_SETTINGS, "RAYCES_JOB_IMAGE": real_node.image},
    )
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()
        with deployed.api_client() as api:
            client.CoreV1Api(api).delete_namespace(namespace)
        log_directory = os.environ.get("RAYCES_CONTROLPLANE_LOG_DIR")
        if log_directory:
            destination = Path(log_directory)
            destination.mkdir(parents=True, exist_ok=True)
            (destination / f"{namespace}-operator.log").write_text(operator.log_text())


@pytest.fixture
def node_cluster(
    node_operator: OperatorProcess, api_client: client.ApiClient, deployed: ControlPlane
) -> Iterator[Cluster]:
    """Admin helpers in the node operator's namespace; a 403 in its log fails the test."""
    from tests.controller.operator_support import Cluster, forbidden_lines

    log_start = len(node_operator.log_text())
    yield Cluster(plane=deployed, api=api_client, namespace=node_operator.namespace)
    refused = forbidden_lines(node_operator.log_text()[log_start:])
    if refused:
        pytest.fail(f"the operator was refused by RBAC: {refused[0][:500]}", pytrace=False)
