"""What a real test node changes on the machine, captured before it starts and restored after.

kubelet, containerd and the CNI bridge plugin change host-wide settings that outlive them: the
kernel tunables kubelet sets at start (`vm.overcommit_memory`, `kernel.panic`, ...), IP
forwarding turned on by the bridge, the `kubepods` cgroups, mounts of Pod volumes, the bridge
link, and directories at fixed paths (`/var/log/containers` is not configurable). A test
machine is shared with the rest of the suite and with later runs, so the node captures a
`HostState` before it starts and, after stopping, puts back whatever differs. `differences`
compares two captures; the node's teardown test asserts that nothing differs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

TUNABLES = (
    # Set by kubelet at start unless protectKernelDefaults is on (and then it refuses to run).
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    # Set by the CNI bridge plugin when it is the Pods' gateway.
    "net.ipv4.ip_forward",
)
FIXED_PATHS = (
    Path("/var/lib/kubelet"),
    Path("/var/log/containers"),
    Path("/var/log/pods"),
    Path("/run/containerd"),
    Path("/var/lib/containerd"),
    Path("/var/lib/cni"),
    Path("/run/netns"),
)
"""Paths kubelet, containerd or CNI plugins may create even when told to use private ones."""
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PREFIX = "kubepods"


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_tunables() -> dict[str, str]:
    """The current value of each tunable in TUNABLES that this kernel has."""
    values = {}
    for name in TUNABLES:
        with contextlib.suppress(OSError):
            values[name] = _sysctl_path(name).read_text().strip()
    return values


def mount_points() -> frozenset[str]:
    """Every mount point in this mount namespace."""
    points = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        points.add(fields[4].replace("\\040", " "))
    return frozenset(points)


def link_names() -> frozenset[str]:
    """Network interfaces of the host's network namespace."""
    return frozenset(path.name for path in Path("/sys/class/net").iterdir())


def kubepods_cgroups() -> frozenset[str]:
    """Top-level `kubepods*` cgroups, as `<hierarchy>/<name>`."""
    found = set()
    if CGROUP_ROOT.is_dir():
        for hierarchy in CGROUP_ROOT.iterdir():
            with contextlib.suppress(OSError):
                for child in hierarchy.iterdir():
                    if child.is_dir() and child.name.startswith(CGROUP_PREFIX):
                        found.add(f"{hierarchy.name}/{child.name}")
    return frozenset(found)


def firewall_rules() -> str:
    """The iptables rules of every table (empty when iptables is not installed)."""
    if shutil.which("iptables-save") is None:
        return ""
    saved = subprocess.run(
        ["iptables-save"], capture_output=True, text=True, timeout=30, check=False
    )
    # The header and footer comments carry timestamps; the rules are what matters.
    return "\n".join(line for line in saved.stdout.splitlines() if not line.startswith("#"))


@dataclass(frozen=True)
class HostState:
    """What a real node may change on the machine, at one moment."""

    tunables: dict[str, str]
    existing_paths: frozenset[Path]
    mounts: frozenset[str]
    links: frozenset[str]
    cgroups: frozenset[str]
    firewall: str


def capture() -> HostState:
    """The machine's state now."""
    return HostState(
        tunables=read_tunables(),
        existing_paths=frozenset(path for path in FIXED_PATHS if path.exists()),
        mounts=mount_points(),
        links=link_names(),
        cgroups=kubepods_cgroups(),
        firewall=firewall_rules(),
    )


def differences(before: HostState, after: HostState) -> list[str]:
    """What `after` has that `before` had not, one line each; empty when they agree."""
    found = [
        f"sysctl {name} is {after.tunables.get(name)!r}, was {value!r}"
        for name, value in before.tunables.items()
        if after.tunables.get(name) != value
    ]
    created, removed = (
        after.existing_paths - before.existing_paths,
        before.existing_paths - after.existing_paths,
    )
    found += [f"{path} was created" for path in sorted(created)]
    found += [f"{path} was removed" for path in sorted(removed)]
    found += [f"mount {point} is left" for point in sorted(after.mounts - before.mounts)]
    found += [f"link {name} is left" for name in sorted(after.links - before.links)]
    found += [f"cgroup {name} is left" for name in sorted(after.cgroups - before.cgroups)]
    if after.firewall != before.firewall:
        found.append("the iptables rules changed")
    return found


def _kill_cgroup_members(directory: Path) -> None:
    for procs in directory.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(pid), signal.SIGKILL)


def _remove_cgroup_tree(directory: Path) -> None:
    """rmdir a cgroup and its descendants, deepest first (cgroupfs refuses rm -r)."""
    children = sorted(
        (path for path in directory.rglob("*") if path.is_dir()),
        key=lambda path: len(path.parts),
        reverse=True,
    )
    for path in [*children, directory]:
        with contextlib.suppress(OSError):
            path.rmdir()


def _unmount(point: str) -> None:
    subprocess.run(["umount", "--lazy", point], capture_output=True, timeout=30, check=False)


def restore(before: HostState, private_dirs: tuple[Path, ...] = ()) -> None:
    """Put back what differs from `before`, after the node's processes have stopped.

    Mounts are undone first (newest first), then processes left in new `kubepods` cgroups are
    killed and the cgroups removed, then links, paths, tunables and iptables rules are restored.
    `private_dirs` are the node's own directories: anything still mounted below them goes too.
    """
    current = mount_points()
    for point in sorted(current - before.mounts, key=len, reverse=True):
        _unmount(point)
    for directory in private_dirs:
        for point in sorted(mount_points(), key=len, reverse=True):
            if point.startswith(f"{directory}/"):
                _unmount(point)
    for name in kubepods_cgroups() - before.cgroups:
        _kill_cgroup_members(CGROUP_ROOT / name)
    for name in kubepods_cgroups() - before.cgroups:
        _remove_cgroup_tree(CGROUP_ROOT / name)
    for name in link_names() - before.links:
        subprocess.run(["ip", "link", "delete", name], capture_output=True, timeout=30, check=False)
    for path in FIXED_PATHS:
        if path.exists() and path not in before.existing_paths:
            shutil.rmtree(path, ignore_errors=True)
    for name, value in before.tunables.items():
        if read_tunables().get(name) != value:
            with contextlib.suppress(OSError):
                _sysctl_path(name).write_text(value)
    if firewall_rules() != before.firewall and shutil.which("iptables-restore"):
        subprocess.run(
            ["iptables-restore"], input=before.firewall + "\n", text=True, timeout=30, check=False
        )
