"""The ECR layer API: check, upload in parts, complete, and download layers.

Uploads go through ``dockyard/registry/uploads.py``, the code the /v2/ push routes
use: bytes are hashed as they arrive and the digest is verified before the blob
becomes visible. A part continues the upload exactly where it stands; positions are
inclusive, as ECR's ``partFirstByte``/``partLastByte`` are.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from dockyard.api.awsjson import Params
from dockyard.api.context import RequestContext
from dockyard.api.errors import (
    AwsError,
    EmptyUploadException,
    InvalidLayerException,
    InvalidLayerPartException,
    InvalidParameterException,
    LayerAlreadyExistsException,
    LayerInaccessibleException,
    LayersNotFoundException,
    UploadNotFoundException,
)
from dockyard.ecr.auth import registry_token
from dockyard.ecr.registry import ECR
from dockyard.ecr.repositories import find_repository
from dockyard.registry import names, uploads
from dockyard.registry.errors import RegistryError
from dockyard.store.models import Repository, Upload

PART_SIZE = 10 * 1024 * 1024  # what ECR advertises; parts of any size are taken


def _repository(ctx: RequestContext, params: Params) -> Repository:
    return find_repository(ctx, params["repositoryName"], params.get("registryId"))


def _upload(ctx: RequestContext, repository: Repository, upload_id: str) -> Upload:
    try:
        return uploads.get_upload(ctx.registry, repository, upload_id)
    except RegistryError:
        raise _upload_not_found(repository, upload_id) from None


def _upload_not_found(repository: Repository, upload_id: str) -> AwsError:
    return UploadNotFoundException(
        f"Upload with id '{upload_id}' is not found in the repository with name "
        f"'{repository.name}' in registry with id '{repository.account_id}'"
    )


def _digest(digest: str) -> str:
    try:
        return names.check_digest(digest)
    except RegistryError as error:
        raise InvalidParameterException(
            f"Invalid layer digest '{digest}': {error.message}"
        ) from None


@ECR.operation("BatchCheckLayerAvailability")
def batch_check_layer_availability(ctx: RequestContext, params: Params) -> Params:
    """AVAILABLE for a blob the repository holds; UNAVAILABLE when its record is there
    but its bytes are not; a failure for a digest it does not hold or cannot be one."""
    repository = _repository(ctx, params)
    layers, failures = [], []
    for digest in params["layerDigests"]:
        try:
            names.check_digest(digest)
        except RegistryError as error:
            failures.append(_layer_failure(digest, "InvalidLayerDigest", error.message))
            continue
        size = ctx.registry.store.blob_size(repository.arn, digest)
        if size is None:
            failures.append(_layer_failure(digest, "MissingLayerDigest", "Could not find layer"))
            continue
        stored = ctx.registry.storage.size(digest) is not None
        layers.append(
            {
                "layerDigest": digest,
                "layerAvailability": "AVAILABLE" if stored else "UNAVAILABLE",
                "layerSize": size,
            }
        )
    return {"layers": layers, "failures": failures}


def _layer_failure(digest: str, code: str, reason: str) -> Params:
    return {"layerDigest": digest, "failureCode": code, "failureReason": reason}


@ECR.operation("InitiateLayerUpload")
def initiate_layer_upload(ctx: RequestContext, params: Params) -> Params:
    repository = _repository(ctx, params)
    upload = uploads.start_upload(ctx.registry, repository, ctx.now)
    return {"uploadId": upload.id, "partSize": PART_SIZE}


@ECR.operation("UploadLayerPart")
def upload_layer_part(ctx: RequestContext, params: Params) -> Params:
    """Append one part; it must start right after the last byte received and span
    exactly its bytes. A part that does not is refused with the last valid byte, so
    the client can resume from there."""
    repository = _repository(ctx, params)
    upload_id = params["uploadId"]
    upload = _upload(ctx, repository, upload_id)
    data = base64.b64decode(params["layerPartBlob"])
    first, last = params["partFirstByte"], params["partLastByte"]

    def refuse(reason: str, received: int) -> AwsError:
        return InvalidLayerPartException(
            reason,
            registryId=repository.account_id,
            repositoryName=repository.name,
            uploadId=upload_id,
            lastValidByteReceived=received - 1,
        )

    if not data:
        raise refuse("The layer part is empty.", upload.size)
    if first != upload.size:
        raise refuse(
            f"The part's first byte {first} does not follow the last byte received, "
            f"{upload.size - 1}; the next part must start at {upload.size}.",
            upload.size,
        )
    if last != first + len(data) - 1:
        raise refuse(
            f"The part holds {len(data)} bytes, so its last byte is {first + len(data) - 1}, "
            f"not {last}.",
            upload.size,
        )
    try:
        size = uploads.append(ctx.registry, upload_id, data, first)
    except RegistryError as error:
        if error.code == "BLOB_UPLOAD_UNKNOWN":
            raise _upload_not_found(repository, upload_id) from None
        # RANGE_INVALID: a concurrent part got there first.
        received = uploads.get_upload(ctx.registry, repository, upload_id).size
        raise refuse(error.message, received) from None
    return {
        "registryId": repository.account_id,
        "repositoryName": repository.name,
        "uploadId": upload_id,
        "lastByteReceived": size - 1,
    }


@ECR.operation("CompleteLayerUpload")
def complete_layer_upload(ctx: RequestContext, params: Params) -> Params:
    """Verify the upload against ``layerDigests`` (one digest, given once or repeated)
    and make it a layer of the repository; a mismatch discards the upload."""
    repository = _repository(ctx, params)
    upload_id = params["uploadId"]
    digests = {_digest(d) for d in params["layerDigests"]}
    if len(digests) != 1:
        raise InvalidParameterException(
            "layerDigests names more than one digest; an upload is one layer with one digest."
        )
    (digest,) = digests
    upload = _upload(ctx, repository, upload_id)
    if upload.size == 0:
        raise EmptyUploadException(
            f"The upload with id '{upload_id}' in the repository with name "
            f"'{repository.name}' contains no data."
        )
    if ctx.registry.store.blob_size(repository.arn, digest) is not None:
        uploads.cancel(ctx.registry, repository, upload_id)
        raise LayerAlreadyExistsException(
            f"Layer '{digest}' already exists in the repository with name "
            f"'{repository.name}' in registry with id '{repository.account_id}'"
        )
    try:
        uploads.finish(ctx.registry, repository, upload_id, digest, ctx.now)
    except RegistryError as error:
        if error.code == "BLOB_UPLOAD_UNKNOWN":
            raise _upload_not_found(repository, upload_id) from None
        raise InvalidLayerException(
            f"The upload does not match layer digest '{digest}': {error.message}"
        ) from None
    return {
        "registryId": repository.account_id,
        "repositoryName": repository.name,
        "uploadId": upload_id,
        "layerDigest": digest,
    }


@ECR.operation("GetDownloadUrlForLayer")
def get_download_url_for_layer(ctx: RequestContext, params: Params) -> Params:
    """A URL of this registry's blob route that serves the layer for 12 hours: the
    caller's registry token rides in its query string, as S3 presigns ECR's URLs."""
    repository = _repository(ctx, params)
    digest = _digest(params["layerDigest"])
    if ctx.registry.store.blob_size(repository.arn, digest) is None:
        raise LayersNotFoundException(
            f"Layer with digest '{digest}' does not exist in the repository with name "
            f"'{repository.name}' in registry with id '{repository.account_id}'"
        )
    if ctx.registry.storage.size(digest) is None:
        raise LayerInaccessibleException(
            f"The layer with digest '{digest}' is recorded but its content cannot be read."
        )
    token, _ = registry_token(ctx)
    url = (
        f"http://{ctx.registry.address}/v2/{repository.name}/blobs/{digest}"
        f"?token={quote(token, safe='')}"
    )
    return {"downloadUrl": url, "layerDigest": digest}
