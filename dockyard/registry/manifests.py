"""Manifest formats: what a pushed manifest is and what it refers to (pure).

Four formats are accepted: Docker schema 2 manifests and manifest lists, OCI image
manifests and OCI image indexes (with the OCI 1.1 ``artifactType`` and ``subject``).
The stored bytes are always the exact bytes pushed; parsing only extracts what the
registry needs to check references, answer the referrers API and report sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from dockyard.registry.errors import RegistryError
from dockyard.registry.names import check_digest

MAX_MANIFEST_BYTES = 4 * 1024 * 1024

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

IMAGE_MANIFESTS = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEXES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
MANIFEST_TYPES = IMAGE_MANIFESTS + INDEXES
# Content types that say nothing about the format: the body's mediaType decides.
_GENERIC_TYPES = ("", "application/json", "application/octet-stream", "*/*")


@dataclass(frozen=True)
class Reference:
    """A descriptor the manifest points at."""

    digest: str
    kind: str  # "blob" (config, layers) | "manifest" (index entries)
    media_type: str
    size: int
    # Non-distributable layers with URLs are fetched from elsewhere, not from us.
    external: bool = False


@dataclass(frozen=True)
class Manifest:
    media_type: str
    references: tuple[Reference, ...]
    subject: str | None  # digest of the manifest this one refers to (OCI 1.1)
    artifact_type: str | None
    # ECR's image size: the sum of the layers for an image manifest; 0 for an index,
    # whose size is the largest of its children's, known only once they are looked up.
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEXES


def invalid(message: str, detail: Any = None) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", message, detail)


def parse(body: bytes, content_type: str | None) -> Manifest:
    """Check a manifest pushed with ``content_type`` and extract its references.

    Raises MANIFEST_INVALID (status 413 when the body is over 4 MiB).
    """
    if len(body) > MAX_MANIFEST_BYTES:
        raise RegistryError(
            "MANIFEST_INVALID",
            f"manifest is {len(body)} bytes, over the limit of {MAX_MANIFEST_BYTES}",
            {"size": len(body), "limit": MAX_MANIFEST_BYTES},
            status=413,
        )
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared in DOCKER_SCHEMA1:
        raise invalid("Docker image manifest schema 1 is unsupported; push schema 2 or OCI")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise invalid("manifest must be a JSON object")
    version = document.get("schemaVersion")
    if version == 1:
        raise invalid("Docker image manifest schema 1 is unsupported; push schema 2 or OCI")
    if version != 2:
        raise invalid("manifest schemaVersion must be 2", {"schemaVersion": version})

    media_type = _media_type(document, declared)
    artifact_type = _optional_string(document, "artifactType")
    subject = _descriptor(document["subject"], "subject") if "subject" in document else None
    annotations = _annotations(document)

    if media_type in INDEXES:
        entries = _list(document, "manifests")
        children = tuple(
            _reference(entry, f"manifests[{i}]", "manifest") for i, entry in enumerate(entries)
        )
        return Manifest(media_type, children, subject, artifact_type, 0, annotations)

    if "config" not in document:
        raise invalid("manifest has no config descriptor")
    config = _reference(document["config"], "config", "blob")
    layers = tuple(
        _reference(layer, f"layers[{i}]", "blob")
        for i, layer in enumerate(_list(document, "layers"))
    )
    size = sum(layer.size for layer in layers)
    return Manifest(
        media_type,
        (config, *layers),
        subject,
        artifact_type or config.media_type,
        size,
        annotations,
    )


def _media_type(document: dict[str, Any], declared: str) -> str:
    """The format, from the body's mediaType and the Content-Type; they must agree."""
    inner = _optional_string(document, "mediaType")
    if inner is not None and declared not in _GENERIC_TYPES and inner != declared:
        raise invalid(
            f"manifest mediaType {inner!r} does not match Content-Type {declared!r}",
            {"mediaType": inner, "contentType": declared},
        )
    media_type = inner or (declared if declared not in _GENERIC_TYPES else None)
    if media_type is None:
        # OCI manifests and indexes may leave mediaType out; their fields tell them apart.
        if "manifests" in document:
            media_type = OCI_INDEX
        elif "config" in document:
            media_type = OCI_MANIFEST
        else:
            raise invalid("manifest has no mediaType and is neither a manifest nor an index")
    if media_type in DOCKER_SCHEMA1:
        raise invalid("Docker image manifest schema 1 is unsupported; push schema 2 or OCI")
    if media_type not in MANIFEST_TYPES:
        raise invalid(
            f"unsupported manifest media type {media_type!r}",
            {"mediaType": media_type, "supported": list(MANIFEST_TYPES)},
        )
    if media_type in (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST) and inner is None:
        raise invalid("a Docker manifest must carry its mediaType")
    return media_type


def _descriptor(value: Any, where: str) -> str:
    """Validate a descriptor's required fields; returns its digest."""
    if not isinstance(value, dict):
        raise invalid(f"{where} must be a descriptor object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise invalid(f"{where}.mediaType must be a non-empty string")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise invalid(f"{where}.size must be a non-negative integer", {"size": size})
    digest = value.get("digest")
    if not isinstance(digest, str):
        raise invalid(f"{where}.digest must be a string")
    try:
        return check_digest(digest)
    except RegistryError as error:
        raise invalid(f"{where}.digest: {error.message}", {"digest": digest}) from None


def _reference(value: Any, where: str, kind: str) -> Reference:
    digest = _descriptor(value, where)
    media_type = value["mediaType"]
    external = bool(value.get("urls")) and (
        "foreign" in media_type or "nondistributable" in media_type
    )
    return Reference(digest, kind, media_type, value["size"], external)


def _list(document: dict[str, Any], key: str) -> list[Any]:
    value = document.get(key)
    if not isinstance(value, list):
        raise invalid(f"manifest {key} must be a list")
    return value


def _optional_string(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise invalid(f"manifest {key} must be a non-empty string")
    return value


def _annotations(document: dict[str, Any]) -> dict[str, str]:
    value = document.get("annotations")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise invalid("manifest annotations must map strings to strings")
    return dict(value)


def annotations_of(body: bytes) -> dict[str, str]:
    """The annotations of a stored (already validated) manifest, for referrers."""
    try:
        document = orjson.loads(body)
        value = document.get("annotations") if isinstance(document, dict) else None
    except orjson.JSONDecodeError:
        return {}
    return dict(value) if isinstance(value, dict) else {}
