"""Images: list, describe, get, delete and put manifests, with ECR's semantics.

Manifests go through ``dockyard/registry/content.py``, the same code the /v2/ routes
use, so an image pushed with docker is the image ECR describes and the reverse.
Its OCI errors become the ECR exceptions an AWS client expects.
"""

from __future__ import annotations

from dockyard.api.awsjson import Params
from dockyard.api.context import RequestContext
from dockyard.api.errors import (
    AwsError,
    ImageAlreadyExistsException,
    ImageDigestDoesNotMatchException,
    ImageNotFoundException,
    ImageTagAlreadyExistsException,
    InvalidParameterException,
    LayersNotFoundException,
    ReferencedImagesNotFoundException,
)
from dockyard.api.pagination import decode_token, encode_token, page_size
from dockyard.ecr import shapes
from dockyard.ecr.registry import ECR
from dockyard.ecr.repositories import find_repository
from dockyard.registry import content, manifests, names
from dockyard.registry.errors import RegistryError
from dockyard.store.models import Image, Repository

NOT_FOUND = ("ImageNotFound", "Requested image not found")
MISMATCH = ("ImageTagDoesNotMatchDigest", "Invalid request parameters: image tag digest mismatch")


def _repository(ctx: RequestContext, params: Params) -> Repository:
    return find_repository(ctx, params["repositoryName"], params.get("registryId"))


def _resolve(
    ctx: RequestContext, repository: Repository, image_id: shapes.ImageId
) -> Image | tuple[str, str]:
    """The image an identifier names, or the (failureCode, failureReason) why not."""
    problem = shapes.image_id_problem(image_id)
    if problem is not None:
        return problem
    store = ctx.registry.store
    digest = image_id.digest
    if image_id.tag is not None:
        tagged = store.resolve_tag(repository.arn, image_id.tag)
        if tagged is None:
            return NOT_FOUND
        if digest is not None and digest != tagged:
            return MISMATCH
        digest = tagged
    image = store.get_image(repository.arn, digest) if digest else None
    return image if image is not None else NOT_FOUND


def _tag_status_matches(image: Image, params: Params) -> bool:
    wanted = params.get("filter") or {}
    if wanted.get("imageStatus", "ANY") not in ("ANY", "ACTIVE"):
        return False  # Dockyard never archives images
    status = str(wanted.get("tagStatus", "ANY"))
    return status == "ANY" or (status == "TAGGED") == bool(image.tags)


def _page(params: Params, keys: list[str]) -> tuple[list[str], str | None]:
    """One page of sorted keys, and the token of the next (None on the last page)."""
    after = decode_token(params.get("nextToken"))
    limit = page_size(params.get("maxResults"), default=100, ceiling=1000)
    rest = [k for k in sorted(keys) if after is None or k > after]
    if len(rest) > limit:
        return rest[:limit], encode_token(rest[limit - 1])
    return rest, None


@ECR.operation("ListImages")
def list_images(ctx: RequestContext, params: Params) -> Params:
    """One entry per tag, and one per untagged image, in digest order."""
    repository = _repository(ctx, params)
    entries: dict[str, shapes.ImageId] = {}
    for image in ctx.registry.store.list_images(repository.arn):
        if not _tag_status_matches(image, params):
            continue
        for tag in image.tags or (None,):
            entries[f"{image.digest} {tag or ''}"] = shapes.ImageId(image.digest, tag)
    keys, token = _page(params, list(entries))
    result: Params = {"imageIds": [entries[k].to_wire() for k in keys]}
    if token is not None:
        result["nextToken"] = token
    return result


@ECR.operation("DescribeImages")
def describe_images(ctx: RequestContext, params: Params) -> Params:
    repository = _repository(ctx, params)
    if params.get("imageIds"):
        if "maxResults" in params or "nextToken" in params:
            raise InvalidParameterException(
                "maxResults and nextToken cannot be used together with imageIds."
            )
        found: dict[str, Image] = {}
        for image_id in shapes.image_ids_from_wire(params["imageIds"]):
            problem = shapes.image_id_problem(image_id)
            if problem is not None:
                raise InvalidParameterException(problem[1])
            image = _resolve(ctx, repository, image_id)
            if not isinstance(image, Image):
                raise _image_not_found(repository, image_id)
            found.setdefault(image.digest, image)
        return {
            "imageDetails": [shapes.image_detail_to_wire(i, repository) for i in found.values()]
        }
    images = {
        image.digest: image
        for image in ctx.registry.store.list_images(repository.arn)
        if _tag_status_matches(image, params)
    }
    digests, token = _page(params, list(images))
    result: Params = {
        "imageDetails": [shapes.image_detail_to_wire(images[d], repository) for d in digests]
    }
    if token is not None:
        result["nextToken"] = token
    return result


def _image_not_found(repository: Repository, image_id: shapes.ImageId) -> AwsError:
    return ImageNotFoundException(
        f"The image with imageId {{imageDigest:'{image_id.digest}', imageTag:'{image_id.tag}'}} "
        f"does not exist within the repository with name '{repository.name}' in the registry "
        f"with id '{repository.account_id}'"
    )


@ECR.operation("BatchGetImage")
def batch_get_image(ctx: RequestContext, params: Params) -> Params:
    """Each requested manifest as its exact stored bytes, or a failure saying why not.

    A manifest whose media type is not in ``acceptedMediaTypes`` is not converted (ECR
    converts schema 2 to schema 1, which Dockyard does not store): it is reported as an
    ``UnsupportedImageType`` failure. Without ``acceptedMediaTypes`` every type is taken.
    Each image returned counts as pulled (``lastRecordedPullTime``).
    """
    repository = _repository(ctx, params)
    accepted = params.get("acceptedMediaTypes")
    images, failures = [], []
    for image_id in shapes.image_ids_from_wire(params["imageIds"]):
        image = _resolve(ctx, repository, image_id)
        if not isinstance(image, Image):
            failures.append(shapes.failure(image_id, *image))
        elif accepted is not None and image.media_type not in accepted:
            reason = (
                f"The image's manifest media type {image.media_type} is not among the "
                f"acceptedMediaTypes {', '.join(accepted)}"
            )
            failures.append(shapes.failure(image_id, "UnsupportedImageType", reason))
        else:
            ctx.registry.store.mark_pulled(repository.arn, image.digest, ctx.now)
            images.append(shapes.image_to_wire(image, repository, image_id.tag))
    return {"images": images, "failures": failures}


@ECR.operation("BatchDeleteImage")
def batch_delete_image(ctx: RequestContext, params: Params) -> Params:
    """By digest: the image and all its tags. By tag: the tag, and the image with it
    when that was its last tag (as ECR does). Images an index refers to stay."""
    repository = _repository(ctx, params)
    deleted: list[Params] = []
    failures = []
    for image_id in shapes.image_ids_from_wire(params["imageIds"]):
        image = _resolve(ctx, repository, image_id)
        if not isinstance(image, Image):
            failures.append(shapes.failure(image_id, *image))
            continue
        removes_image = image_id.digest is not None or image.tags == (image_id.tag,)
        parents = _indexes_referring_to(ctx, repository, image.digest) if removes_image else []
        if parents:
            reason = f"Requested image referenced by manifest list: [{', '.join(parents)}]"
            failures.append(shapes.failure(image_id, "ImageReferencedByManifestList", reason))
            continue
        try:
            if removes_image:
                content.delete_manifest(ctx.registry, repository, image.digest)
            else:
                content.untag(ctx.registry, repository, str(image_id.tag))
        except RegistryError:  # deleted meanwhile by another request
            failures.append(shapes.failure(image_id, *NOT_FOUND))
            continue
        removed_tags = image.tags if image_id.digest is not None else (image_id.tag,)
        deleted += [shapes.ImageId(image.digest, t).to_wire() for t in removed_tags or (None,)]
    return {"imageIds": deleted, "failures": failures}


def _indexes_referring_to(ctx: RequestContext, repository: Repository, digest: str) -> list[str]:
    """Digests of the repository's indexes that list ``digest`` as a child."""
    parents = []
    for image in ctx.registry.store.list_images(repository.arn, with_manifests=True):
        if image.media_type in manifests.INDEXES and image.digest != digest:
            parsed = manifests.parse(image.manifest, image.media_type)
            if any(child.digest == digest for child in parsed.references):
                parents.append(image.digest)
    return parents


@ECR.operation("PutImage")
def put_image(ctx: RequestContext, params: Params) -> Params:
    """Store a manifest whose blobs are already in the repository, under a tag or not."""
    repository = _repository(ctx, params)
    body = params["imageManifest"].encode()
    tag, digest = params.get("imageTag"), params.get("imageDigest")
    try:
        if tag is not None:
            names.check_tag(tag)
        if digest is not None:
            names.check_digest(digest)
    except RegistryError as error:
        raise InvalidParameterException(error.message) from None
    actual = content.digest_of(body, digest.partition(":")[0] if digest else "sha256")
    if digest is not None and digest != actual:
        raise ImageDigestDoesNotMatchException(
            f"The digest of the image manifest is '{actual}', not the imageDigest '{digest}'."
        )
    store = ctx.registry.store
    exists = (
        store.resolve_tag(repository.arn, tag) == actual
        if tag is not None
        else store.get_image(repository.arn, actual) is not None
    )
    if exists:
        raise ImageAlreadyExistsException(
            f"Image with digest '{actual}' and tag '{tag}' already exists in the repository "
            f"with name '{repository.name}' in registry with id '{repository.account_id}'"
        )
    try:
        image = content.put_manifest(
            ctx.registry,
            repository,
            tag or actual,
            body,
            params.get("imageManifestMediaType"),
            ctx.now,
        )
    except RegistryError as error:
        raise _put_error(error, repository, tag) from None
    return {"image": shapes.image_to_wire(image, repository, tag)}


def _put_error(error: RegistryError, repository: Repository, tag: str | None) -> AwsError:
    where = (
        f"repository with name '{repository.name}' in registry with id '{repository.account_id}'"
    )
    if error.code == "MANIFEST_BLOB_UNKNOWN":
        detail = error.detail if isinstance(error.detail, dict) else {}
        missing = detail.get("digest", "?")
        if detail.get("mediaType") in manifests.MANIFEST_TYPES:
            return ReferencedImagesNotFoundException(
                f"The image index refers to image '{missing}', which is not in the {where}"
            )
        return LayersNotFoundException(
            f"Layers with digests '[{missing}]' required for pushing image into {where} "
            "do not exist"
        )
    if error.code == "TAG_INVALID":  # the tag's grammar was checked above: immutability
        return ImageTagAlreadyExistsException(
            f"The image tag '{tag}' already exists in the '{repository.name}' repository "
            "and cannot be overwritten because the repository is immutable."
        )
    if error.code == "DIGEST_INVALID":
        return ImageDigestDoesNotMatchException(error.message)
    return InvalidParameterException(f"Invalid parameter at 'imageManifest': {error.message}")
