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
database as such a Pod reaches it. Other namespaces keep the node emulator.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

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
