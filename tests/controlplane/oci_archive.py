"""A one-file container image, written as an OCI archive that `ctr images import` reads.

containerd's CRI plugin needs a sandbox ("pause") image for every Pod, and no registry can be
reached here. The pause program is built with the control plane (cmd/pause), so the node packs
it into an image of its own: one uncompressed layer holding `/pause`, an image config whose
entrypoint runs it, a manifest and an index named by `io.containerd.image.name`. The format is
the OCI image layout (oci-layout, index.json, blobs/sha256/...) in a tar file.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
IMAGE_NAME_ANNOTATION = "io.containerd.image.name"


def _digest(blob: bytes) -> str:
    return f"sha256:{hashlib.sha256(blob).hexdigest()}"


def _descriptor(media_type: str, blob: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _digest(blob), "size": len(blob)}


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def single_file_layer(name: str, content: bytes, mode: int = 0o755) -> bytes:
    """An uncompressed layer tar with one file at the root, owned by root, dated 1970."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(content), mode
        layer.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def image_blobs(image_name: str, layer: bytes, entrypoint: list[str]) -> dict[str, bytes]:
    """The archive's members, path → content, for an image of one layer."""
    config = _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": entrypoint},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": _descriptor(CONFIG_MEDIA_TYPE, config),
            "layers": [_descriptor(LAYER_MEDIA_TYPE, layer)],
        }
    )
    index = _json(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": MANIFEST_MEDIA_TYPE,
                    "digest": _digest(manifest),
                    "size": len(manifest),
                    "annotations": {IMAGE_NAME_ANNOTATION: image_name},
                }
            ],
        }
    )
    members = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": index}
    for blob in (layer, config, manifest):
        members[f"blobs/sha256/{_digest(blob).removeprefix('sha256:')}"] = blob
    return members


def write_single_binary_image(archive: Path, image_name: str, binary: Path) -> None:
    """Write an OCI archive of `image_name` whose only file is `binary`, run as its entrypoint."""
    path_in_image = binary.name
    members = image_blobs(
        image_name, single_file_layer(path_in_image, binary.read_bytes()), [f"/{path_in_image}"]
    )
    with tarfile.open(archive, mode="w") as output:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            output.addfile(info, io.BytesIO(content))
