"""Manifest parsing: each format, the OCI 1.1 fields, and every way to be invalid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from dockyard.registry import manifests
from dockyard.registry.errors import RegistryError
from dockyard.registry.manifests import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Reference,
)


def digest(char: str) -> str:
    return "sha256:" + char * 64


DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
EMPTY = "application/vnd.oci.empty.v1+json"
SBOM = "application/vnd.example.sbom.v1"


def image(media_type: str | None, config_type: str, layer_type: str, **extra: Any) -> Any:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "config": {"mediaType": config_type, "digest": digest("c"), "size": 7},
        "layers": [
            {"mediaType": layer_type, "digest": digest("1"), "size": 100},
            {"mediaType": layer_type, "digest": digest("2"), "size": 23},
        ],
        **extra,
    }
    if media_type:
        document["mediaType"] = media_type
    return document


def index(media_type: str | None, child_type: str, **extra: Any) -> Any:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": child_type, "digest": digest("a"), "size": 500},
            {"mediaType": child_type, "digest": digest("b"), "size": 501},
        ],
        **extra,
    }
    if media_type:
        document["mediaType"] = media_type
    return document


@dataclass(frozen=True)
class Valid:
    name: str
    body: Any
    content_type: str | None
    media_type: str
    artifact_type: str | None
    size: int
    kinds: tuple[str, ...]
    subject: str | None = None


VALID = [
    Valid(
        "docker schema 2",
        image(DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
        DOCKER_MANIFEST,
        DOCKER_MANIFEST,
        DOCKER_CONFIG,
        123,
        ("blob", "blob", "blob"),
    ),
    Valid(
        "docker manifest list",
        index(DOCKER_MANIFEST_LIST, DOCKER_MANIFEST),
        DOCKER_MANIFEST_LIST,
        DOCKER_MANIFEST_LIST,
        None,
        0,
        ("manifest", "manifest"),
    ),
    Valid(
        "oci manifest",
        image(OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
        OCI_MANIFEST,
        OCI_MANIFEST,
        OCI_CONFIG,
        123,
        ("blob", "blob", "blob"),
    ),
    Valid(
        "oci index",
        index(OCI_INDEX, OCI_MANIFEST),
        OCI_INDEX,
        OCI_INDEX,
        None,
        0,
        ("manifest", "manifest"),
    ),
    Valid(
        "oci manifest without mediaType, told by Content-Type",
        image(None, OCI_CONFIG, OCI_LAYER),
        OCI_MANIFEST,
        OCI_MANIFEST,
        OCI_CONFIG,
        123,
        ("blob", "blob", "blob"),
    ),
    Valid(
        "oci manifest without any media type: known by its fields",
        image(None, OCI_CONFIG, OCI_LAYER),
        None,
        OCI_MANIFEST,
        OCI_CONFIG,
        123,
        ("blob", "blob", "blob"),
    ),
    Valid(
        "oci index with a generic Content-Type",
        index(OCI_INDEX, OCI_MANIFEST),
        "application/json",
        OCI_INDEX,
        None,
        0,
        ("manifest", "manifest"),
    ),
    Valid(
        "Content-Type with parameters",
        image(OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
        OCI_MANIFEST + "; charset=utf-8",
        OCI_MANIFEST,
        OCI_CONFIG,
        123,
        ("blob", "blob", "blob"),
    ),
    Valid(
        "artifact: artifactType wins over the config's type, subject kept",
        image(
            OCI_MANIFEST,
            EMPTY,
            OCI_LAYER,
            artifactType=SBOM,
            subject={"mediaType": OCI_MANIFEST, "digest": digest("f"), "size": 9},
        ),
        OCI_MANIFEST,
        OCI_MANIFEST,
        SBOM,
        123,
        ("blob", "blob", "blob"),
        digest("f"),
    ),
    Valid(
        "index with artifactType and subject",
        index(
            OCI_INDEX,
            OCI_MANIFEST,
            artifactType=SBOM,
            subject={"mediaType": OCI_MANIFEST, "digest": digest("f"), "size": 9},
        ),
        OCI_INDEX,
        OCI_INDEX,
        SBOM,
        0,
        ("manifest", "manifest"),
        digest("f"),
    ),
]


@pytest.mark.parametrize("case", VALID, ids=[c.name for c in VALID])
def test_parses(case: Valid) -> None:
    parsed = manifests.parse(orjson.dumps(case.body), case.content_type)
    assert parsed.media_type == case.media_type
    assert parsed.artifact_type == case.artifact_type
    assert parsed.size == case.size
    assert tuple(r.kind for r in parsed.references) == case.kinds
    assert parsed.subject == case.subject
    assert parsed.is_index == (case.media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST))


def test_references_keep_descriptor_fields() -> None:
    parsed = manifests.parse(orjson.dumps(image(OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)), None)
    assert parsed.references[0] == Reference(digest("c"), "blob", OCI_CONFIG, 7)
    assert parsed.references[2] == Reference(digest("2"), "blob", OCI_LAYER, 23)


def test_foreign_layers_with_urls_are_external() -> None:
    foreign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    body = image(DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER)
    body["layers"][0] = {
        "mediaType": foreign,
        "digest": digest("9"),
        "size": 5,
        "urls": ["https://example.com/layer"],
    }
    parsed = manifests.parse(orjson.dumps(body), DOCKER_MANIFEST)
    assert [r.external for r in parsed.references] == [False, True, False]


def test_annotations() -> None:
    body = image(OCI_MANIFEST, OCI_CONFIG, OCI_LAYER, annotations={"org.example": "yes"})
    raw = orjson.dumps(body)
    assert manifests.parse(raw, OCI_MANIFEST).annotations == {"org.example": "yes"}
    assert manifests.annotations_of(raw) == {"org.example": "yes"}


def _without(document: Any, *path: Any) -> Any:
    target = document
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return document


def _with(document: Any, value: Any, *path: Any) -> Any:
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


@dataclass(frozen=True)
class Invalid:
    name: str
    body: bytes
    content_type: str | None
    says: str  # part of the message


def _oci() -> Any:
    return image(OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)


INVALID = [
    Invalid("not JSON", b"{nope", OCI_MANIFEST, "not valid JSON"),
    Invalid("a JSON list", b"[]", OCI_MANIFEST, "JSON object"),
    Invalid(
        "schema 1 by Content-Type",
        b'{"schemaVersion": 1}',
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "schema 1 is unsupported",
    ),
    Invalid("schema 1 by body", b'{"schemaVersion": 1, "fsLayers": []}', None, "unsupported"),
    Invalid("schemaVersion 3", orjson.dumps(_with(_oci(), 3, "schemaVersion")), None, "must be 2"),
    Invalid(
        "mediaType and Content-Type disagree",
        orjson.dumps(_oci()),
        DOCKER_MANIFEST,
        "does not match Content-Type",
    ),
    Invalid(
        "unknown media type",
        orjson.dumps(_with(_oci(), "application/vnd.example+json", "mediaType")),
        None,
        "unsupported manifest media type",
    ),
    Invalid(
        "docker manifest without mediaType",
        orjson.dumps(image(None, DOCKER_CONFIG, DOCKER_LAYER)),
        DOCKER_MANIFEST,
        "must carry its mediaType",
    ),
    Invalid("no config", orjson.dumps(_without(_oci(), "config")), None, "no config"),
    Invalid("no layers", orjson.dumps(_without(_oci(), "layers")), None, "layers must be a list"),
    Invalid(
        "index without manifests",
        orjson.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX}),
        OCI_INDEX,
        "manifests must be a list",
    ),
    Invalid(
        "layer digest malformed",
        orjson.dumps(_with(_oci(), "sha256:xyz", "layers", 0, "digest")),
        None,
        "layers[0].digest",
    ),
    Invalid(
        "layer size negative",
        orjson.dumps(_with(_oci(), -1, "layers", 1, "size")),
        None,
        "layers[1].size",
    ),
    Invalid(
        "config without mediaType",
        orjson.dumps(_without(_oci(), "config", "mediaType")),
        None,
        "config.mediaType",
    ),
    Invalid(
        "subject not a descriptor",
        orjson.dumps(_with(_oci(), "sha256:abc", "subject")),
        None,
        "subject must be a descriptor",
    ),
    Invalid(
        "artifactType not a string",
        orjson.dumps(_with(_oci(), 5, "artifactType")),
        None,
        "artifactType",
    ),
    Invalid(
        "annotations not strings",
        orjson.dumps(_with(_oci(), {"a": 1}, "annotations")),
        None,
        "annotations",
    ),
]


@pytest.mark.parametrize("case", INVALID, ids=[c.name for c in INVALID])
def test_rejects(case: Invalid) -> None:
    with pytest.raises(RegistryError) as raised:
        manifests.parse(case.body, case.content_type)
    assert raised.value.code == "MANIFEST_INVALID"
    assert raised.value.status == 400
    assert case.says in raised.value.message


def test_over_4_mib_is_413() -> None:
    body = orjson.dumps(
        image(OCI_MANIFEST, OCI_CONFIG, OCI_LAYER, annotations={"pad": "x" * (4 << 20)})
    )
    with pytest.raises(RegistryError) as raised:
        manifests.parse(body, OCI_MANIFEST)
    assert (raised.value.code, raised.value.status) == ("MANIFEST_INVALID", 413)


def test_exactly_4_mib_is_accepted() -> None:
    body = orjson.dumps(image(OCI_MANIFEST, OCI_CONFIG, OCI_LAYER, annotations={"pad": ""}))
    padded = body.replace(b'"pad":""', b'"pad":"' + b"x" * ((4 << 20) - len(body)) + b'"')
    assert len(padded) == manifests.MAX_MANIFEST_BYTES
    assert manifests.parse(padded, OCI_MANIFEST).media_type == OCI_MANIFEST
