"""Lifecycle policy handlers, the preview, and the executor that really expires images.

The rules live in ``dockyard/ecr/lifecycle.py`` (pure); this module reads and writes
the repository's document (``lifecyclePolicyText``, ``lifecycleLastEvaluatedAt``,
``lifecyclePreview``) and deletes what ``evaluate`` expires.

Which manifests a policy sees: every image in the repository except the parts of an
index that is still there (ECR refuses to delete those: ImageReferencedByManifestList)
and referrers whose subject is still there (they go when their subject goes, as ECR
cleans up reference artifacts after their subject image is deleted).

When it runs: ECR promises expiry "within 24 hours"; Dockyard runs a policy when it is
put, and whenever the server calls ``apply_to_repository`` (after a push) or
``apply_lifecycle_policies`` (periodically). Untagged images younger than
``UNTAGGED_GRACE`` are left for a later run, except on PutLifecyclePolicy: a
multi-platform push uploads its platform images untagged, one by one, before the index
that adopts them, and an "untagged" rule must not expire them in between.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from dockyard.api.awsjson import Params
from dockyard.api.context import RequestContext
from dockyard.api.errors import (
    InvalidParameterException,
    LifecyclePolicyNotFoundException,
    LifecyclePolicyPreviewNotFoundException,
)
from dockyard.api.pagination import decode_token, encode_token, page_size
from dockyard.ecr import shapes
from dockyard.ecr.lifecycle import Policy, PolicyError, evaluate, parse_policy
from dockyard.ecr.registry import ECR
from dockyard.ecr.repositories import find_repository
from dockyard.registry import manifests
from dockyard.registry.errors import RegistryError
from dockyard.registry.service import Registry
from dockyard.store.models import Image, Repository
from dockyard.store.registry import RegistryStore

log = logging.getLogger("dockyard.ecr.lifecycle")

POLICY = "lifecyclePolicyText"
EVALUATED_AT = "lifecycleLastEvaluatedAt"
PREVIEW = "lifecyclePreview"
UNTAGGED_GRACE = 3600.0  # seconds: time enough for a multi-platform push to finish


def _parse(text: str) -> Policy:
    try:
        return parse_policy(text)
    except PolicyError as error:
        raise InvalidParameterException(
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
            f"'Lifecycle policy validation failure: {error}'"
        ) from None


def _policy_text(repository: Repository) -> str:
    text = repository.document.get(POLICY)
    if not text:
        raise LifecyclePolicyNotFoundException(
            f"Lifecycle policy does not exist for the repository with name "
            f"'{repository.name}' in the registry with id '{repository.account_id}'"
        )
    return str(text)


def _answer(repository: Repository, **fields: Any) -> Params:
    return {"registryId": repository.account_id, "repositoryName": repository.name, **fields}


def _store(ctx: RequestContext, repository: Repository, **changes: Any) -> Repository:
    """Write some document members (None: removed), re-read first to keep others' edits."""
    current = ctx.registry.store.get_repository(
        repository.account_id, repository.region, repository.name
    )
    document = {**(current or repository).document, **changes}
    updated = replace(repository, document={k: v for k, v in document.items() if v is not None})
    ctx.registry.store.update_repository(updated)
    return updated


@ECR.operation("PutLifecyclePolicy")
def put_lifecycle_policy(ctx: RequestContext, params: Params) -> Params:
    repository = find_repository(ctx, params["repositoryName"], params.get("registryId"))
    text = _parse(params["lifecyclePolicyText"]).to_text()
    repository = _store(ctx, repository, **{POLICY: text, EVALUATED_AT: None})
    # ECR expires within 24 hours; doing it now makes the effect visible at once.
    apply_to_repository(ctx.registry, repository, ctx.now, untagged_grace=0)
    return _answer(repository, lifecyclePolicyText=text)


@ECR.operation("GetLifecyclePolicy")
def get_lifecycle_policy(ctx: RequestContext, params: Params) -> Params:
    repository = find_repository(ctx, params["repositoryName"], params.get("registryId"))
    return _answer(
        repository,
        lifecyclePolicyText=_policy_text(repository),
        lastEvaluatedAt=repository.document.get(EVALUATED_AT, 0),
    )


@ECR.operation("DeleteLifecyclePolicy")
def delete_lifecycle_policy(ctx: RequestContext, params: Params) -> Params:
    repository = find_repository(ctx, params["repositoryName"], params.get("registryId"))
    text = _policy_text(repository)
    evaluated_at = repository.document.get(EVALUATED_AT, 0)
    _store(ctx, repository, **{POLICY: None, EVALUATED_AT: None})
    return _answer(repository, lifecyclePolicyText=text, lastEvaluatedAt=evaluated_at)


# -- preview ----------------------------------------------------------------------


@ECR.operation("StartLifecyclePolicyPreview")
def start_lifecycle_policy_preview(ctx: RequestContext, params: Params) -> Params:
    """Computed synchronously, so the preview is COMPLETE when this returns."""
    repository = find_repository(ctx, params["repositoryName"], params.get("registryId"))
    policy = _parse(params.get("lifecyclePolicyText") or _policy_text(repository))
    images = {i.digest: i for i in candidates(ctx.registry.store, repository.arn)}
    results = [
        {
            "imageDigest": e.digest,
            "imageTags": list(images[e.digest].tags),
            "imagePushedAt": images[e.digest].pushed_at,
            "appliedRulePriority": e.rule_priority,
            "action": e.action,
        }
        for e in evaluate(policy, images.values(), ctx.now)
    ]
    text = policy.to_text()
    preview = {"policyText": text, "status": "COMPLETE", "results": results}
    _store(ctx, repository, **{PREVIEW: preview})
    return _answer(repository, lifecyclePolicyText=text, status="COMPLETE")


@ECR.operation("GetLifecyclePolicyPreview")
def get_lifecycle_policy_preview(ctx: RequestContext, params: Params) -> Params:
    repository = find_repository(ctx, params["repositoryName"], params.get("registryId"))
    preview = repository.document.get(PREVIEW)
    if not preview:
        raise LifecyclePolicyPreviewNotFoundException(
            f"Lifecycle policy preview does not exist for the repository with name "
            f"'{repository.name}' in the registry with id '{repository.account_id}'"
        )
    image_ids = params.get("imageIds")
    if image_ids and (params.get("nextToken") or params.get("maxResults")):
        raise InvalidParameterException(
            "nextToken and maxResults cannot be used when imageIds are given; "
            "ask for at most 100 images by id, or page through all of them without imageIds."
        )
    results: list[dict[str, Any]] = list(preview["results"])
    status = (params.get("filter") or {}).get("tagStatus", "ANY")
    if status != "ANY":
        results = [r for r in results if bool(r["imageTags"]) == (status == "TAGGED")]
    if image_ids:
        wanted = shapes.image_ids_from_wire(image_ids)
        results = [r for r in results if any(_is(r, i) for i in wanted)]
    page = _page(
        results, decode_token(params.get("nextToken")), page_size(params.get("maxResults"))
    )
    answer = _answer(
        repository,
        lifecyclePolicyText=preview["policyText"],
        status=preview["status"],
        previewResults=[_result_to_wire(r) for r in page],
        # The summary counts the whole preview, whatever page or filter was asked for.
        summary={"expiringImageTotalCount": len(preview["results"])},
    )
    if page and page[-1] is not results[-1]:
        answer["nextToken"] = encode_token(page[-1]["imageDigest"])
    return answer


def _is(result: dict[str, Any], image_id: shapes.ImageId) -> bool:
    if image_id.digest is not None and image_id.digest != result["imageDigest"]:
        return False
    return image_id.tag is None or image_id.tag in result["imageTags"]


def _page(results: list[dict[str, Any]], after: str | None, size: int) -> list[dict[str, Any]]:
    start = 0
    if after is not None:
        digests = [r["imageDigest"] for r in results]
        if after not in digests:
            raise InvalidParameterException(
                "Invalid nextToken: the preview changed since it was issued; start over."
            )
        start = digests.index(after) + 1
    return results[start : start + size]


def _result_to_wire(result: dict[str, Any]) -> Params:
    wire: Params = {
        "imageDigest": result["imageDigest"],
        "imagePushedAt": result["imagePushedAt"],
        "action": {"type": result["action"]},
        "appliedRulePriority": result["appliedRulePriority"],
    }
    if result["imageTags"]:
        wire["imageTags"] = result["imageTags"]
    return wire


# -- executor ---------------------------------------------------------------------


def candidates(store: RegistryStore, repository_arn: str) -> list[Image]:
    """The images a lifecycle policy judges (see the module docstring for who is left out)."""
    images = store.list_images(repository_arn)
    present = {i.digest for i in images}
    parts: set[str] = set()
    for image in images:
        if image.media_type in manifests.INDEXES:
            parts.update(_children(store, repository_arn, image.digest))
    return [
        i
        for i in images
        if i.digest not in parts and (i.subject_digest is None or i.subject_digest not in present)
    ]


def _children(store: RegistryStore, repository_arn: str, digest: str) -> list[str]:
    index = store.get_image(repository_arn, digest)
    if index is None:  # deleted meanwhile
        return []
    try:
        parsed = manifests.parse(index.manifest, index.media_type)
    except RegistryError:  # stored manifests were checked on push; never expire blindly
        log.warning("cannot parse index %s in %s", digest, repository_arn)
        return []
    return [r.digest for r in parsed.references if r.kind == "manifest"]


def apply_to_repository(
    registry: Registry,
    repository: Repository,
    now: float,
    *,
    untagged_grace: float = UNTAGGED_GRACE,
) -> int:
    """Expire what the repository's policy expires at ``now``; returns how many images.

    Idempotent: run again at the same ``now`` it finds nothing more, except parts of an
    index it just expired, which only become images of their own on the next run.
    Untagged images pushed less than ``untagged_grace`` seconds ago are kept for now.
    """
    text = repository.document.get(POLICY)
    if not text:
        return 0
    store = registry.store
    images = candidates(store, repository.arn)
    young = {i.digest for i in images if not i.tags and i.pushed_at > now - untagged_grace}
    expired = 0
    for expiry in evaluate(parse_policy(str(text)), images, now):
        if expiry.digest not in young and store.delete_image(repository.arn, expiry.digest):
            expired += 1
            _delete_referrers(store, repository.arn, expiry.digest)
    current = store.get_repository(repository.account_id, repository.region, repository.name)
    if current is not None and current.document.get(POLICY) == text:
        document = {**current.document, EVALUATED_AT: now}
        store.update_repository(replace(current, document=document))
    if expired:
        log.info("lifecycle policy of %s expired %d image(s)", repository.arn, expired)
    return expired


def _delete_referrers(store: RegistryStore, repository_arn: str, subject: str) -> None:
    for referrer in store.referrers(repository_arn, subject):
        if store.delete_image(repository_arn, referrer.digest):
            _delete_referrers(store, repository_arn, referrer.digest)


def apply_lifecycle_policies(registry: Registry, now: float) -> int:
    """Run every repository's lifecycle policy; returns how many images were expired."""
    expired = 0
    for repository in _repositories_with_policies(registry.store):
        try:
            expired += apply_to_repository(registry, repository, now)
        except PolicyError as error:  # stored by an older, laxer Dockyard: leave it be
            log.warning("skipping the lifecycle policy of %s: %s", repository.arn, error)
    return expired


def _repositories_with_policies(store: RegistryStore) -> list[Repository]:
    return [repo for repo in store.all_repositories() if repo.document.get(POLICY)]
