"""Where the control-plane executables are, and what to say when they are not there.

`build.sh` puts them in a cache directory named after the pinned Kubernetes version; users who
have official envtest binaries point `KUBEBUILDER_ASSETS` at them instead. Both scripts and
Python must agree on that directory, so its rule lives here once for Python and once in
`build.sh` for the shell, and the error message names the command that fills it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

HARNESS_DIR = Path(__file__).resolve().parent
BUILD_COMMAND = "bash tests/controlplane/build.sh"
COLD_BUILD_HINT = "about 6 minutes cold on 2 cores; later runs reuse the cache"


class MissingBinariesError(RuntimeError):
    """The control plane cannot start because an executable is missing."""


@dataclass(frozen=True)
class ControlPlaneBinaries:
    """Paths of the executables; the controller manager is absent from official envtest sets."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path | None


def pinned_kubernetes_version(go_mod: Path = HARNESS_DIR / "go.mod") -> str:
    """The k8s.io/kubernetes version required by the harness's go.mod, e.g. `v1.37.2`."""
    match = re.search(r"^\s*k8s\.io/kubernetes\s+(v\S+)", go_mod.read_text(), re.MULTILINE)
    if match is None:
        raise MissingBinariesError(f"{go_mod} does not require k8s.io/kubernetes")
    return match.group(1)


def default_cache_dir() -> Path:
    """The directory `build.sh` builds into when RAYCES_CONTROLPLANE_DIR is unset."""
    override = os.environ.get("RAYCES_CONTROLPLANE_DIR")
    if override:
        return Path(override)
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "rayces" / "controlplane" / pinned_kubernetes_version()


def _executable(directory: Path, name: str) -> Path | None:
    path = directory / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _missing(directory: Path, names: list[str], source: str) -> MissingBinariesError:
    return MissingBinariesError(
        f"the test control plane needs {', '.join(names)} in {directory} ({source}). "
        f"Build them with `{BUILD_COMMAND}` ({COLD_BUILD_HINT}), or point KUBEBUILDER_ASSETS "
        "at a directory that holds them (envtest binaries). To skip the control-plane tests on "
        "purpose, run pytest with --skip-control-plane or -m 'not control_plane'."
    )


def locate_binaries() -> ControlPlaneBinaries:
    """Find etcd, kube-apiserver and (if built) kube-controller-manager, or explain how to.

    KUBEBUILDER_ASSETS wins when set; a controller manager missing there is looked for in the
    build cache, since official envtest sets do not ship one.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    cache = default_cache_dir()
    directory, source = (Path(assets), "KUBEBUILDER_ASSETS") if assets else (cache, "build cache")
    etcd = _executable(directory, "etcd")
    apiserver = _executable(directory, "kube-apiserver")
    missing = [name for name, path in (("etcd", etcd), ("kube-apiserver", apiserver)) if not path]
    if etcd is None or apiserver is None:
        raise _missing(directory, missing, source)
    controller_manager = _executable(directory, "kube-controller-manager") or _executable(
        cache, "kube-controller-manager"
    )
    return ControlPlaneBinaries(etcd, apiserver, controller_manager)


def controller_manager_missing() -> str:
    """What to do when kube-controller-manager was not found (Jobs would never get Pods)."""
    return str(_missing(default_cache_dir(), ["kube-controller-manager"], "build cache"))
