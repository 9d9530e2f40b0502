"""The project's image for the real test node: built (or reused) by hack/build-image.sh.

The script caches what it can (the stand-in base, buildah's layers), so calling it from the
test session costs little when nothing changed and always gives an image of the checkout.
Where it keeps its OCI archive follows one rule, written here for Python and in the script for
the shell: `$RAYCES_IMAGE_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/rayces/image`.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPOSITORY_ROOT / "hack" / "build-image.sh"
ARCHIVE_NAME = "rayces-operator.oci.tar"
BUILD_TIMEOUT_SECONDS = 1200


class ImageBuildError(RuntimeError):
    """hack/build-image.sh failed; the message carries the end of its output."""


@dataclass(frozen=True)
class ProjectImage:
    """The image's name (as containerd knows it after import) and its OCI archive."""

    name: str
    archive: Path
    build_seconds: float


def image_cache_dir() -> Path:
    """The directory hack/build-image.sh keeps its storage and the archive in."""
    override = os.environ.get("RAYCES_IMAGE_CACHE")
    if override:
        return Path(override)
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "rayces" / "image"


def build_project_image() -> ProjectImage:
    """Run hack/build-image.sh and return what it built."""
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-20:])
        raise ImageBuildError(f"`bash {BUILD_SCRIPT}` exited with {done.returncode}:\n{tail}")
    name = done.stdout.strip().splitlines()[-1]
    archive = image_cache_dir() / ARCHIVE_NAME
    return ProjectImage(name, archive, time.monotonic() - started)
