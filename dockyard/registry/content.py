"""Registry operations shared by the /v2/ routes and the ECR API handlers (sync).

Callers authenticate and ``authorize`` first; these functions enforce the content
rules: names, digests, references to known blobs, and tag immutability.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import TypeVar

import orjson
from sqlalchemy.exc import IntegrityError

from dockyard.registry import manifests
from dockyard.registry.errors import RegistryError
from dockyard.registry.names import check_digest, check_name, check_tag, is_digest
from dockyard.registry.service import Registry
from dockyard.store.models import Image, Repository
from dockyard.store.registry import MissingBlobs, TagConflict

T = TypeVar("T")
MAX_TAGS_PAGE = 1000


def find_repository(registry: Registry, account_id: str, region: str, name: str) -> Repository:
    check_name(name)
    repository = registry.store.get_repository(account_id, region, name)
    if repository is None:
        raise RegistryError(
            "NAME_UNKNOWN",
            f"The repository with name '{name}' does not exist in the registry "
            f"with id '{account_id}'",
            {"name": name},
        )
    return repository


def tag_is_immutable(repository: Repository, tag: str) -> bool:
    """Whether ``tag``, once set, may not be moved to another image.

    The ``*_WITH_EXCLUSION`` settings invert the repository's rule for the tags that
    match one of its wildcard filters.
    """
    mutability = repository.document.get("imageTagMutability", "MUTABLE")
    filters = repository.document.get("imageTagMutabilityExclusionFilters") or []
    excluded = any(
        f.get("filterType", "WILDCARD") == "WILDCARD"
        and _wildcard(str(f.get("filter", ""))).fullmatch(tag)
        for f in filters
    )
    if mutability == "IMMUTABLE":
        return True
    if mutability == "IMMUTABLE_WITH_EXCLUSION":
        return not excluded
    if mutability == "MUTABLE_WITH_EXCLUSION":
        return excluded
    return False


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def digest_of(body: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


def put_manifest(
    registry: Registry,
    repository: Repository,
    reference: str,
    body: bytes,
    content_type: str | None,
    now: float,
) -> Image:
    """Store a manifest under ``reference`` (a tag, or the digest of ``body``).

    Idempotent: the same bytes pushed again keep their first push time.
    """
    manifest = manifests.parse(body, content_type)
    tag = None
    if is_digest(reference):
        algorithm = check_digest(reference).partition(":")[0]
        digest = digest_of(body, algorithm)
        if digest != reference:
            raise RegistryError(
                "DIGEST_INVALID",
                f"the manifest's digest is {digest}, not {reference}",
                {"expected": reference, "actual": digest},
            )
    else:
        tag = check_tag(reference)
        digest = digest_of(body)

    size = manifest.size
    for child in manifest.references:
        if child.external:
            continue
        if child.kind == "manifest":
            image = registry.store.get_image(repository.arn, child.digest)
            found = image is not None
            size = max(size, image.size if image else 0)
        else:
            found = registry.store.blob_size(repository.arn, child.digest) is not None
        if not found:
            raise RegistryError(
                "MANIFEST_BLOB_UNKNOWN",
                f"the manifest refers to {child.kind} {child.digest}, which is not in "
                f"repository '{repository.name}'",
                {"digest": child.digest, "mediaType": child.media_type},
            )

    image = Image(
        repository_arn=repository.arn,
        digest=digest,
        media_type=manifest.media_type,
        size=size,
        pushed_at=now,
        manifest=body,
        artifact_type=manifest.artifact_type,
        subject_digest=manifest.subject,
    )
    edges = [(child.digest, child.kind) for child in manifest.references]
    immutable = tag is not None and tag_is_immutable(repository, tag)
    required = [c.digest for c in manifest.references if c.kind == "blob" and not c.external]
    try:
        retry_on_conflict(lambda: registry.store.put_image(image, edges, tag, immutable, required))
    except MissingBlobs as missing:
        raise RegistryError(
            "MANIFEST_BLOB_UNKNOWN",
            f"the manifest refers to blob {missing.digests[0]}, which is not in "
            f"repository '{repository.name}'",
            {"digest": missing.digests[0]},
        ) from None
    except TagConflict:
        raise RegistryError(
            "TAG_INVALID",
            f"The image tag '{tag}' already exists in the '{repository.name}' repository "
            "and cannot be overwritten because the repository is immutable.",
            {"tag": tag},
        ) from None
    stored = registry.store.get_image(repository.arn, digest)
    if registry.after_push is not None:
        registry.after_push(registry, repository, now)
    return stored if stored is not None else image


def get_manifest(registry: Registry, repository: Repository, reference: str) -> Image:
    """The manifest a tag names, or the manifest with this digest."""
    if is_digest(reference):
        digest: str | None = check_digest(reference)
    else:
        digest = registry.store.resolve_tag(repository.arn, check_tag(reference))
    image = registry.store.get_image(repository.arn, digest) if digest else None
    if image is None:
        raise RegistryError(
            "MANIFEST_UNKNOWN",
            f"manifest '{reference}' is not in repository '{repository.name}'",
            {"name": repository.name, "reference": reference},
        )
    return image


def delete_manifest(registry: Registry, repository: Repository, digest: str) -> None:
    """Delete the manifest and every tag naming it."""
    if not registry.store.delete_image(repository.arn, check_digest(digest)):
        raise RegistryError(
            "MANIFEST_UNKNOWN",
            f"manifest '{digest}' is not in repository '{repository.name}'",
            {"name": repository.name, "digest": digest},
        )


def untag(registry: Registry, repository: Repository, tag: str) -> None:
    """Remove a tag (the manifest stays); OCI 1.1's DELETE of a tag reference."""
    if registry.store.untag(repository.arn, check_tag(tag)) is None:
        raise RegistryError(
            "MANIFEST_UNKNOWN",
            f"tag '{tag}' is not in repository '{repository.name}'",
            {"name": repository.name, "tag": tag},
        )


def list_tags(
    registry: Registry, repository: Repository, n: int | None, last: str | None
) -> tuple[list[str], str | None]:
    """Tags in lexical order after ``last``: at most ``n`` (capped at a page of
    MAX_TAGS_PAGE) with the tag to continue after, or all of them when ``n`` is None.
    """
    if n == 0:
        return [], None
    if n is not None:
        page = registry.store.list_tags(repository.arn, last, min(n, MAX_TAGS_PAGE))
        return list(page.items), page.next_key
    tags: list[str] = []
    while True:
        page = registry.store.list_tags(repository.arn, last, MAX_TAGS_PAGE)
        tags.extend(page.items)
        if page.next_key is None:
            return tags, None
        last = page.next_key


def referrers_index(
    registry: Registry, repository: Repository, digest: str, artifact_type: str | None
) -> bytes:
    """The OCI image index of the manifests whose subject is ``digest``.

    An unknown digest has no referrers: the answer is an empty index, not an error.
    """
    check_digest(digest)
    descriptors = []
    for image in registry.store.referrers(repository.arn, digest):
        if artifact_type is not None and image.artifact_type != artifact_type:
            continue
        descriptor: dict[str, object] = {
            "mediaType": image.media_type,
            "digest": image.digest,
            "size": len(image.manifest),
        }
        if image.artifact_type:
            descriptor["artifactType"] = image.artifact_type
        annotations = manifests.annotations_of(image.manifest)
        if annotations:
            descriptor["annotations"] = annotations
        descriptors.append(descriptor)
    descriptors.sort(key=lambda d: str(d["digest"]))
    index = {"schemaVersion": 2, "mediaType": manifests.OCI_INDEX, "manifests": descriptors}
    return orjson.dumps(index)


def retry_on_conflict(operation: Callable[[], T]) -> T:
    """Run a check-then-insert store call again if a concurrent writer won the race.

    The store's writes are idempotent, so the second run sees the row and succeeds.
    """
    try:
        return operation()
    except IntegrityError:
        return operation()
