"""Write OCI image layouts by hand, for images docker cannot build here.

skopeo copies a layout to a registry (``oci:DIR:REF``), so this is how the tests and
the benchmark get multi-platform indexes and many-layer images without a network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

Descriptor = dict[str, Any]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(files: dict[str, bytes]) -> bytes:
    """A reproducible tar (fixed mtime and owner) holding ``files``, executable."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


class Layout:
    """An OCI image layout directory; every ``add_*`` returns the new descriptor."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self._refs: list[Descriptor] = []

    def add_blob(self, data: bytes, media_type: str) -> Descriptor:
        digest = sha256(data)
        (self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def add_json(self, document: dict[str, Any], media_type: str) -> tuple[Descriptor, bytes]:
        raw = json.dumps(document, indent=2).encode()
        return self.add_blob(raw, media_type), raw

    def add_image(
        self, layer_tars: list[bytes], architecture: str, *, compress: bool = True
    ) -> Descriptor:
        """A single-platform linux image whose layers are the given tars."""
        layers, diff_ids = [], []
        for tar in layer_tars:
            diff_ids.append(sha256(tar))
            # mtime=0 keeps the gzip bytes, hence the digests, stable across runs.
            blob = gzip.compress(tar, compresslevel=1, mtime=0) if compress else tar
            layers.append(self.add_blob(blob, OCI_LAYER_GZIP if compress else OCI_LAYER))
        config = {
            "architecture": architecture,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        config_descriptor, _ = self.add_json(config, OCI_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_descriptor,
            "layers": layers,
        }
        descriptor, _ = self.add_json(manifest, OCI_MANIFEST)
        return descriptor | {"platform": {"architecture": architecture, "os": "linux"}}

    def add_index(self, manifests: list[Descriptor]) -> tuple[Descriptor, bytes]:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        return self.add_json(index, OCI_INDEX)

    def tag(self, descriptor: Descriptor, ref: str) -> None:
        """Name ``descriptor`` so that ``oci:ROOT:REF`` finds it."""
        entry = {k: v for k, v in descriptor.items() if k != "platform"}
        self._refs.append(entry | {"annotations": {"org.opencontainers.image.ref.name": ref}})
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self._refs}
        (self.root / "index.json").write_text(json.dumps(index))
