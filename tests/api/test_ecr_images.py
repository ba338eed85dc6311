"""The ECR layer and image APIs through boto3 and the AWS CLI, as a CI pipeline would
push an image without docker: upload blobs in parts, put a manifest, read it back."""

from __future__ import annotations

import gzip
import hashlib
import json
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from tests.live import KEY, REGION, SECRET, LiveServer

ACCOUNT = "000000000000"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


@pytest.fixture
def ecr(server: LiveServer) -> Any:
    server.reset()
    client = server.client("ecr")
    client.create_repository(repositoryName="demo")
    return client


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload(ecr: Any, data: bytes, repository: str = "demo") -> str:
    """Upload ``data`` in two parts through the layer API; returns its digest."""
    started = ecr.initiate_layer_upload(repositoryName=repository)
    upload_id, half = started["uploadId"], len(data) // 2
    assert started["partSize"] > 0
    for first, part in ((0, data[:half]), (half, data[half:])):
        sent = ecr.upload_layer_part(
            repositoryName=repository,
            uploadId=upload_id,
            partFirstByte=first,
            partLastByte=first + len(part) - 1,
            layerPartBlob=part,
        )
        assert sent["lastByteReceived"] == first + len(part) - 1
    done = ecr.complete_layer_upload(
        repositoryName=repository, uploadId=upload_id, layerDigests=[digest(data)]
    )
    assert done["layerDigest"] == digest(data)
    return digest(data)


def an_image(ecr: Any, label: str = "v1", repository: str = "demo") -> tuple[str, bytes]:
    """Push a config and a layer; returns a schema 2 manifest naming them, and its layer."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "label": label}).encode()
    layer = gzip.compress(f"layer of {label}".encode() * 500, mtime=0)
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": DOCKER_CONFIG,
            "size": len(config),
            "digest": upload(ecr, config, repository),
        },
        "layers": [
            {"mediaType": LAYER_TYPE, "size": len(layer), "digest": upload(ecr, layer, repository)}
        ],
    }
    # Indented on purpose: the exact bytes, not a re-serialisation, must come back.
    return json.dumps(manifest, indent=3), layer


def image_ids(ecr: Any, **params: Any) -> list[dict[str, str]]:
    ids = ecr.list_images(repositoryName="demo", **params)["imageIds"]
    return sorted(ids, key=lambda i: (i["imageDigest"], i.get("imageTag", "")))


def test_push_describe_and_pull_through_the_ecr_api(ecr: Any) -> None:
    manifest, layer = an_image(ecr)
    put = ecr.put_image(repositoryName="demo", imageManifest=manifest, imageTag="v1")["image"]
    image_digest = digest(manifest.encode())
    assert put["imageId"] == {"imageDigest": image_digest, "imageTag": "v1"}
    assert put["imageManifest"] == manifest
    assert put["imageManifestMediaType"] == DOCKER_MANIFEST
    ecr.put_image(repositoryName="demo", imageManifest=manifest, imageTag="latest")

    (detail,) = ecr.describe_images(repositoryName="demo")["imageDetails"]
    assert detail["imageDigest"] == image_digest
    assert sorted(detail["imageTags"]) == ["latest", "v1"]
    assert detail["imageSizeInBytes"] == len(layer)  # ECR counts the compressed layers
    assert detail["imageManifestMediaType"] == DOCKER_MANIFEST
    assert detail["artifactMediaType"] == DOCKER_CONFIG
    assert detail["registryId"] == ACCOUNT and detail["repositoryName"] == "demo"
    assert "lastRecordedPullTime" not in detail

    got = ecr.batch_get_image(repositoryName="demo", imageIds=[{"imageTag": "v1"}])
    assert got["failures"] == []
    (image,) = got["images"]
    assert image["imageManifest"] == manifest
    assert image["imageManifestMediaType"] == DOCKER_MANIFEST
    assert image["imageId"] == {"imageDigest": image_digest, "imageTag": "v1"}
    (pulled,) = ecr.describe_images(repositoryName="demo", imageIds=[{"imageTag": "latest"}])[
        "imageDetails"
    ]
    assert pulled["lastRecordedPullTime"] >= detail["imagePushedAt"]

    assert image_ids(ecr) == [
        {"imageDigest": image_digest, "imageTag": "latest"},
        {"imageDigest": image_digest, "imageTag": "v1"},
    ]


def test_batch_get_image_failures_and_accepted_media_types(ecr: Any, server: LiveServer) -> None:
    manifest, _ = an_image(ecr)
    ecr.put_image(repositoryName="demo", imageManifest=manifest, imageTag="v1")
    image_digest = digest(manifest.encode())
    other = "sha256:" + "0" * 64
    got = ecr.batch_get_image(
        repositoryName="demo",
        imageIds=[
            {"imageDigest": image_digest},
            {"imageTag": "ghost"},
            {"imageDigest": image_digest, "imageTag": "v1"},
            {"imageDigest": other, "imageTag": "v1"},
            {"imageDigest": "sha256:xyz"},
            {},
        ],
        acceptedMediaTypes=[DOCKER_MANIFEST, OCI_MANIFEST],
    )
    assert [i["imageId"] for i in got["images"]] == [
        {"imageDigest": image_digest},
        {"imageDigest": image_digest, "imageTag": "v1"},
    ]
    assert [(f["imageId"], f["failureCode"]) for f in got["failures"]] == [
        ({"imageTag": "ghost"}, "ImageNotFound"),
        ({"imageDigest": other, "imageTag": "v1"}, "ImageTagDoesNotMatchDigest"),
        ({"imageDigest": "sha256:xyz"}, "InvalidImageDigest"),
        ({}, "MissingDigestAndTag"),
    ]

    # A manifest of a type the caller does not accept is a failure, not a conversion.
    # UnsupportedImageType is what ECR answers but is missing from botocore's enum of
    # failure codes, so this one call is made with a client without the shape check.
    plain = boto3.client(
        "ecr",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )
    refused = plain.batch_get_image(
        repositoryName="demo", imageIds=[{"imageTag": "v1"}], acceptedMediaTypes=[OCI_MANIFEST]
    )
    assert refused["images"] == []
    assert [f["failureCode"] for f in refused["failures"]] == ["UnsupportedImageType"]


def test_download_url_serves_the_layer(ecr: Any) -> None:
    _, layer = an_image(ecr)
    layer_digest = digest(layer)
    found = ecr.get_download_url_for_layer(repositoryName="demo", layerDigest=layer_digest)
    assert found["layerDigest"] == layer_digest
    response = httpx.get(found["downloadUrl"], follow_redirects=True)
    assert response.status_code == 200, response.text
    assert response.content == layer

    ecr.create_repository(repositoryName="other")
    for repository, code in (
        ("other", "LayersNotFoundException"),
        ("ghost", "RepositoryNotFoundException"),
    ):
        with pytest.raises(ClientError) as excinfo:
            ecr.get_download_url_for_layer(repositoryName=repository, layerDigest=layer_digest)
        assert error_code(excinfo) == code


def test_layer_availability(ecr: Any) -> None:
    present = upload(ecr, b"a blob")
    missing = digest(b"never uploaded")
    checked = ecr.batch_check_layer_availability(
        repositoryName="demo", layerDigests=[present, missing, "sha256:nothex"]
    )
    assert checked["layers"] == [
        {"layerDigest": present, "layerAvailability": "AVAILABLE", "layerSize": 6}
    ]
    assert [(f["layerDigest"], f["failureCode"]) for f in checked["failures"]] == [
        (missing, "MissingLayerDigest"),
        ("sha256:nothex", "InvalidLayerDigest"),
    ]


def test_upload_rejections_leave_nothing_behind(ecr: Any) -> None:
    data = b"0123456789"
    upload_id = ecr.initiate_layer_upload(repositoryName="demo")["uploadId"]
    ecr.upload_layer_part(
        repositoryName="demo",
        uploadId=upload_id,
        partFirstByte=0,
        partLastByte=4,
        layerPartBlob=data[:5],
    )
    bad_parts = {
        "gap": (6, 9, data[6:]),
        "overlap": (3, 7, data[3:8]),
        "wrong last byte": (5, 8, data[5:]),
    }
    for case, (first, last, blob) in bad_parts.items():
        with pytest.raises(ClientError) as excinfo:
            ecr.upload_layer_part(
                repositoryName="demo",
                uploadId=upload_id,
                partFirstByte=first,
                partLastByte=last,
                layerPartBlob=blob,
            )
        assert error_code(excinfo) == "InvalidLayerPartException", case
        assert excinfo.value.response["lastValidByteReceived"] == 4, case
    # The upload is intact: the right part still continues it.
    ecr.upload_layer_part(
        repositoryName="demo",
        uploadId=upload_id,
        partFirstByte=5,
        partLastByte=9,
        layerPartBlob=data[5:],
    )

    with pytest.raises(ClientError) as excinfo:
        ecr.complete_layer_upload(
            repositoryName="demo", uploadId=upload_id, layerDigests=[digest(b"other")]
        )
    assert error_code(excinfo) == "InvalidLayerException"
    checked = ecr.batch_check_layer_availability(
        repositoryName="demo", layerDigests=[digest(b"other"), digest(data)]
    )
    assert checked["layers"] == []
    # A mismatch discards the upload.
    with pytest.raises(ClientError) as excinfo:
        ecr.complete_layer_upload(
            repositoryName="demo", uploadId=upload_id, layerDigests=[digest(data)]
        )
    assert error_code(excinfo) == "UploadNotFoundException"

    empty = ecr.initiate_layer_upload(repositoryName="demo")["uploadId"]
    with pytest.raises(ClientError) as excinfo:
        ecr.complete_layer_upload(repositoryName="demo", uploadId=empty, layerDigests=[digest(b"")])
    assert error_code(excinfo) == "EmptyUploadException"

    unknown = "12345678-1234-1234-1234-123456789012"
    with pytest.raises(ClientError) as excinfo:
        ecr.upload_layer_part(
            repositoryName="demo",
            uploadId=unknown,
            partFirstByte=0,
            partLastByte=0,
            layerPartBlob=b"x",
        )
    assert error_code(excinfo) == "UploadNotFoundException"

    # An upload belongs to its repository.
    ecr.create_repository(repositoryName="other")
    theirs = ecr.initiate_layer_upload(repositoryName="other")["uploadId"]
    with pytest.raises(ClientError) as excinfo:
        ecr.upload_layer_part(
            repositoryName="demo",
            uploadId=theirs,
            partFirstByte=0,
            partLastByte=0,
            layerPartBlob=b"x",
        )
    assert error_code(excinfo) == "UploadNotFoundException"


def test_completing_a_layer_the_repository_has_is_refused(ecr: Any) -> None:
    data = b"layer bytes"
    upload(ecr, data)
    upload_id = ecr.initiate_layer_upload(repositoryName="demo")["uploadId"]
    ecr.upload_layer_part(
        repositoryName="demo",
        uploadId=upload_id,
        partFirstByte=0,
        partLastByte=len(data) - 1,
        layerPartBlob=data,
    )
    with pytest.raises(ClientError) as excinfo:
        ecr.complete_layer_upload(
            repositoryName="demo", uploadId=upload_id, layerDigests=[digest(data)]
        )
    assert error_code(excinfo) == "LayerAlreadyExistsException"


def test_put_image_rejections_store_nothing(ecr: Any) -> None:
    manifest, _ = an_image(ecr)
    ecr.put_image(repositoryName="demo", imageManifest=manifest, imageTag="v1")
    before = image_ids(ecr)
    missing_layer = json.loads(manifest)
    missing_layer["layers"][0]["digest"] = digest(b"never pushed")
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "same manifest and tag": (
            {"imageManifest": manifest, "imageTag": "v1"},
            "ImageAlreadyExistsException",
        ),
        "same manifest untagged": ({"imageManifest": manifest}, "ImageAlreadyExistsException"),
        "missing layer": (
            {"imageManifest": json.dumps(missing_layer), "imageTag": "v2"},
            "LayersNotFoundException",
        ),
        "wrong digest": (
            {"imageManifest": manifest, "imageTag": "v2", "imageDigest": digest(b"x")},
            "ImageDigestDoesNotMatchException",
        ),
        "not JSON": ({"imageManifest": "{nope", "imageTag": "v2"}, "InvalidParameterException"),
        "media type disagrees": (
            {"imageManifest": manifest, "imageTag": "v2", "imageManifestMediaType": OCI_MANIFEST},
            "InvalidParameterException",
        ),
        "bad tag": (
            {"imageManifest": manifest, "imageTag": ".hidden"},
            "InvalidParameterException",
        ),
    }
    for case, (params, code) in cases.items():
        with pytest.raises(ClientError) as excinfo:
            ecr.put_image(repositoryName="demo", **params)
        assert error_code(excinfo) == code, case
        assert image_ids(ecr) == before, case
    with pytest.raises(ClientError) as excinfo:
        ecr.put_image(repositoryName="ghost", imageManifest=manifest)
    assert error_code(excinfo) == "RepositoryNotFoundException"

    # The right digest is taken, and a new tag for the same manifest is fine.
    ecr.put_image(
        repositoryName="demo",
        imageManifest=manifest,
        imageTag="v2",
        imageDigest=digest(manifest.encode()),
    )
    assert len(image_ids(ecr)) == 2


def test_immutable_repository_refuses_moving_a_tag(ecr: Any) -> None:
    ecr.create_repository(
        repositoryName="locked",
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest*"}],
    )
    first, _ = an_image(ecr, "one", "locked")
    second, _ = an_image(ecr, "two", "locked")
    for tag in ("v1", "latest"):
        ecr.put_image(repositoryName="locked", imageManifest=first, imageTag=tag)
    with pytest.raises(ClientError) as excinfo:
        ecr.put_image(repositoryName="locked", imageManifest=second, imageTag="v1")
    assert error_code(excinfo) == "ImageTagAlreadyExistsException"
    got = ecr.batch_get_image(repositoryName="locked", imageIds=[{"imageTag": "v1"}])
    assert got["images"][0]["imageManifest"] == first
    # The excluded tag still moves.
    ecr.put_image(repositoryName="locked", imageManifest=second, imageTag="latest")
    got = ecr.batch_get_image(repositoryName="locked", imageIds=[{"imageTag": "latest"}])
    assert got["images"][0]["imageManifest"] == second


def test_batch_delete_by_tag_then_by_digest(ecr: Any) -> None:
    manifest, _ = an_image(ecr)
    image_digest = digest(manifest.encode())
    for tag in ("v1", "latest"):
        ecr.put_image(repositoryName="demo", imageManifest=manifest, imageTag=tag)

    deleted = ecr.batch_delete_image(
        repositoryName="demo", imageIds=[{"imageTag": "latest"}, {"imageTag": "ghost"}, {}]
    )
    assert deleted["imageIds"] == [{"imageDigest": image_digest, "imageTag": "latest"}]
    assert [f["failureCode"] for f in deleted["failures"]] == [
        "ImageNotFound",
        "MissingDigestAndTag",
    ]
    assert image_ids(ecr) == [{"imageDigest": image_digest, "imageTag": "v1"}]

    # Removing the last tag removes the image, as ECR does.
    ecr.batch_delete_image(repositoryName="demo", imageIds=[{"imageTag": "v1"}])
    assert image_ids(ecr) == []

    ecr.put_image(repositoryName="demo", imageManifest=manifest, imageTag="v1")
    ecr.put_image(repositoryName="demo", imageManifest=manifest, imageTag="v2")
    deleted = ecr.batch_delete_image(
        repositoryName="demo", imageIds=[{"imageDigest": image_digest}]
    )
    assert sorted(i["imageTag"] for i in deleted["imageIds"]) == ["v1", "v2"]
    assert deleted["failures"] == []
    assert image_ids(ecr) == []
    again = ecr.batch_delete_image(repositoryName="demo", imageIds=[{"imageDigest": image_digest}])
    assert [f["failureCode"] for f in again["failures"]] == ["ImageNotFound"]


def test_list_and_describe_filter_and_page(ecr: Any, server: LiveServer) -> None:
    manifests = [an_image(ecr, f"image-{i}")[0] for i in range(3)]
    ecr.put_image(repositoryName="demo", imageManifest=manifests[0], imageTag="a")
    ecr.put_image(repositoryName="demo", imageManifest=manifests[1], imageTag="b")
    ecr.put_image(repositoryName="demo", imageManifest=manifests[2])
    untagged = digest(manifests[2].encode())

    assert image_ids(ecr, filter={"tagStatus": "UNTAGGED"}) == [{"imageDigest": untagged}]
    assert {i.get("imageTag") for i in image_ids(ecr, filter={"tagStatus": "TAGGED"})} == {"a", "b"}
    assert len(image_ids(ecr)) == 3

    first = ecr.list_images(repositoryName="demo", maxResults=2)
    rest = ecr.list_images(repositoryName="demo", maxResults=2, nextToken=first["nextToken"])
    assert len(first["imageIds"]) == 2 and len(rest["imageIds"]) == 1 and "nextToken" not in rest
    pages = ecr.get_paginator("describe_images").paginate(
        repositoryName="demo", PaginationConfig={"PageSize": 1}
    )
    described = [d["imageDigest"] for page in pages for d in page["imageDetails"]]
    assert sorted(described) == sorted(digest(m.encode()) for m in manifests)
    tagged = ecr.describe_images(repositoryName="demo", filter={"tagStatus": "TAGGED"})
    assert len(tagged["imageDetails"]) == 2

    with pytest.raises(ClientError) as excinfo:
        ecr.describe_images(
            repositoryName="demo", imageIds=[{"imageTag": "a"}, {"imageTag": "ghost"}]
        )
    assert error_code(excinfo) == "ImageNotFoundException"
    unchecked = server.client("ecr", parameter_validation=False)
    bad: list[dict[str, Any]] = [
        {"maxResults": 0},
        {"imageIds": [{"imageTag": "a"}], "maxResults": 1},
        {"imageIds": [{}]},
    ]
    for params in bad:
        with pytest.raises(ClientError) as excinfo:
            unchecked.describe_images(repositoryName="demo", **params)
        assert error_code(excinfo) == "InvalidParameterException", params


def test_delete_repository_refuses_images_unless_forced(ecr: Any) -> None:
    manifest, _ = an_image(ecr)
    ecr.put_image(repositoryName="demo", imageManifest=manifest, imageTag="v1")
    with pytest.raises(ClientError) as excinfo:
        ecr.delete_repository(repositoryName="demo")
    assert error_code(excinfo) == "RepositoryNotEmptyException"
    assert len(image_ids(ecr)) == 1
    ecr.delete_repository(repositoryName="demo", force=True)
    assert ecr.describe_repositories()["repositories"] == []


def test_aws_cli_v1_lists_describes_and_gets_images(ecr: Any, server: LiveServer) -> None:
    manifest, _ = an_image(ecr)
    put = server.aws(
        "ecr", "put-image", "--repository-name", "demo", "--image-tag", "cli",
        "--image-manifest", manifest,
    )  # fmt: skip
    assert put.returncode == 0, put.stderr
    described = server.aws("ecr", "describe-images", "--repository-name", "demo")
    assert described.returncode == 0, described.stderr
    (detail,) = json.loads(described.stdout)["imageDetails"]
    assert detail["imageTags"] == ["cli"]
    got = server.aws(
        "ecr", "batch-get-image", "--repository-name", "demo", "--image-ids", "imageTag=cli",
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["images"][0]["imageManifest"] == manifest
    checked = server.aws(
        "ecr", "batch-check-layer-availability", "--repository-name", "demo",
        "--layer-digests", json.loads(manifest)["layers"][0]["digest"],
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["layers"][0]["layerAvailability"] == "AVAILABLE"


def test_indexes_keep_their_images(ecr: Any) -> None:
    manifest, _ = an_image(ecr)
    ecr.put_image(repositoryName="demo", imageManifest=manifest, imageTag="amd64")
    child = digest(manifest.encode())

    def index(of: str) -> str:
        entry = {
            "mediaType": DOCKER_MANIFEST,
            "digest": of,
            "size": len(manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
        }
        return json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [entry]})

    with pytest.raises(ClientError) as excinfo:
        ecr.put_image(repositoryName="demo", imageManifest=index(digest(b"x")), imageTag="multi")
    assert error_code(excinfo) == "ReferencedImagesNotFoundException"

    ecr.put_image(repositoryName="demo", imageManifest=index(child), imageTag="multi")
    (detail,) = ecr.describe_images(repositoryName="demo", imageIds=[{"imageTag": "multi"}])[
        "imageDetails"
    ]
    assert detail["imageManifestMediaType"] == DOCKER_LIST
    refused = ecr.batch_delete_image(repositoryName="demo", imageIds=[{"imageDigest": child}])
    assert refused["imageIds"] == []
    assert [f["failureCode"] for f in refused["failures"]] == ["ImageReferencedByManifestList"]
    assert len(image_ids(ecr)) == 2
