"""Repositories: create, describe, delete, their settings, policies and tags.

ECR has one registry per account and region; its id is the account id. A ``registryId``
naming another account finds nothing here, as that registry is not served by Dockyard.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from dockyard.api.awsjson import Params
from dockyard.api.context import RequestContext
from dockyard.api.errors import (
    AwsError,
    InvalidParameterException,
    RepositoryAlreadyExistsException,
    RepositoryNotEmptyException,
    RepositoryNotFoundException,
    RepositoryPolicyNotFoundException,
)
from dockyard.api.pagination import decode_token, encode_token, page_size
from dockyard.ecr import shapes
from dockyard.ecr.registry import ECR
from dockyard.store.models import Repository

_ARN = re.compile(r"arn:aws:ecr:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):repository/(?P<name>.+)")


def repository_arn(ctx: RequestContext, name: str) -> str:
    return f"arn:aws:ecr:{ctx.region}:{ctx.account_id}:repository/{name}"


def find_repository(ctx: RequestContext, name: str, registry_id: str | None = None) -> Repository:
    """The caller's repository ``name``, or ECR's RepositoryNotFoundException."""
    registry = registry_id or ctx.account_id
    found = None
    if registry == ctx.account_id:
        found = ctx.registry.store.get_repository(ctx.account_id, ctx.region, name)
    if found is None:
        raise RepositoryNotFoundException(
            f"The repository with name '{name}' does not exist in the registry with id '{registry}'"
        )
    return found


def _find(ctx: RequestContext, params: Params) -> Repository:
    return find_repository(ctx, params["repositoryName"], params.get("registryId"))


def _wire(ctx: RequestContext, repository: Repository) -> Params:
    return shapes.repository_to_wire(repository, ctx.registry.repository_uri(repository.name))


def _update(ctx: RequestContext, repository: Repository, **changes: Any) -> Repository:
    """Store ``repository`` with some of its document's members replaced (None: removed)."""
    document = {**repository.document, **changes}
    document = {k: v for k, v in document.items() if v is not None}
    updated = replace(repository, document=document)
    ctx.registry.store.update_repository(updated)
    return updated


@ECR.operation("CreateRepository")
def create_repository(ctx: RequestContext, params: Params) -> Params:
    name = params["repositoryName"]
    registry_id = params.get("registryId")
    if registry_id is not None and registry_id != ctx.account_id:
        raise InvalidParameterException(
            f"registryId '{registry_id}' is not this account's registry "
            f"('{ctx.account_id}'); repositories can only be created in your own registry."
        )
    tags = shapes.tags_from_wire(params.get("tags") or [])
    shapes.check_tag_count(len(tags))
    repository = Repository(
        arn=repository_arn(ctx, name),
        account_id=ctx.account_id,
        region=ctx.region,
        name=name,
        created_at=ctx.now,
        document=shapes.repository_document(params, ctx.region, ctx.account_id),
    )
    if not ctx.registry.store.create_repository(repository):
        raise RepositoryAlreadyExistsException(
            f"The repository with name '{name}' already exists in the registry with id "
            f"'{ctx.account_id}'"
        )
    ctx.store.delete_tags(repository.arn)  # a re-created repository starts without old tags
    ctx.store.put_tags(repository.arn, tags)
    return {"repository": _wire(ctx, repository)}


@ECR.operation("DescribeRepositories")
def describe_repositories(ctx: RequestContext, params: Params) -> Params:
    names = params.get("repositoryNames")
    if names:
        if "maxResults" in params or "nextToken" in params:
            raise InvalidParameterException(
                "maxResults and nextToken cannot be used together with repositoryNames."
            )
        registry_id = params.get("registryId")
        found = [find_repository(ctx, n, registry_id) for n in dict.fromkeys(names)]
        return {"repositories": [_wire(ctx, r) for r in found]}
    registry_id = params.get("registryId")
    if registry_id is not None and registry_id != ctx.account_id:
        return {"repositories": []}
    page = ctx.registry.store.list_repositories(
        ctx.account_id,
        ctx.region,
        after=decode_token(params.get("nextToken")),
        limit=page_size(params.get("maxResults"), default=100, ceiling=1000),
    )
    result: Params = {"repositories": [_wire(ctx, r) for r in page.items]}
    if page.next_key is not None:
        result["nextToken"] = encode_token(page.next_key)
    return result


@ECR.operation("DeleteRepository")
def delete_repository(ctx: RequestContext, params: Params) -> Params:
    """Without ``force`` only an empty repository goes; with it, its images go too."""
    repository = _find(ctx, params)
    if not params.get("force") and ctx.registry.store.count_images(repository.arn):
        raise RepositoryNotEmptyException(
            f"The repository with name '{repository.name}' in registry with id "
            f"'{repository.account_id}' cannot be deleted because it still contains images"
        )
    ctx.registry.store.delete_repository(repository.arn)
    ctx.store.delete_tags(repository.arn)
    return {"repository": _wire(ctx, repository)}


@ECR.operation("PutImageTagMutability")
def put_image_tag_mutability(ctx: RequestContext, params: Params) -> Params:
    repository = _find(ctx, params)
    document = shapes.mutability_document(
        params["imageTagMutability"], params.get("imageTagMutabilityExclusionFilters")
    )
    document.setdefault("imageTagMutabilityExclusionFilters", None)  # clears old filters
    repository = _update(ctx, repository, **document)
    result: Params = {
        "registryId": repository.account_id,
        "repositoryName": repository.name,
        "imageTagMutability": repository.document["imageTagMutability"],
    }
    if filters := repository.document.get("imageTagMutabilityExclusionFilters"):
        result["imageTagMutabilityExclusionFilters"] = filters
    return result


@ECR.operation("PutImageScanningConfiguration")
def put_image_scanning_configuration(ctx: RequestContext, params: Params) -> Params:
    """Stored and echoed; Dockyard has no scanner, so no scan ever runs."""
    repository = _find(ctx, params)
    scan_on_push = bool(params["imageScanningConfiguration"].get("scanOnPush", False))
    configuration = {"scanOnPush": scan_on_push}
    repository = _update(ctx, repository, imageScanningConfiguration=configuration)
    return {
        "registryId": repository.account_id,
        "repositoryName": repository.name,
        "imageScanningConfiguration": configuration,
    }


# Repository policies


def _policy_missing(repository: Repository) -> AwsError:
    return RepositoryPolicyNotFoundException(
        f"Repository policy does not exist for the repository with name '{repository.name}' "
        f"in the registry with id '{repository.account_id}'"
    )


def _policy_result(repository: Repository, text: str) -> Params:
    return {
        "registryId": repository.account_id,
        "repositoryName": repository.name,
        "policyText": text,
    }


@ECR.operation("SetRepositoryPolicy")
def set_repository_policy(ctx: RequestContext, params: Params) -> Params:
    """Stored verbatim after checking it is a policy document; IAM-style evaluation
    arrives with the IAM issue (``force`` matters only then)."""
    repository = _find(ctx, params)
    text = shapes.policy_from_wire(params["policyText"])
    _update(ctx, repository, policyText=text)
    return _policy_result(repository, text)


@ECR.operation("GetRepositoryPolicy")
def get_repository_policy(ctx: RequestContext, params: Params) -> Params:
    repository = _find(ctx, params)
    text = repository.document.get("policyText")
    if text is None:
        raise _policy_missing(repository)
    return _policy_result(repository, text)


@ECR.operation("DeleteRepositoryPolicy")
def delete_repository_policy(ctx: RequestContext, params: Params) -> Params:
    repository = _find(ctx, params)
    text = repository.document.get("policyText")
    if text is None:
        raise _policy_missing(repository)
    _update(ctx, repository, policyText=None)
    return _policy_result(repository, text)


# Tags


def _tagged(ctx: RequestContext, arn: str) -> Repository:
    """The repository an ECR ARN names; only repositories carry tags in ECR."""
    match = _ARN.fullmatch(arn)
    if match is None:
        raise InvalidParameterException(
            f"Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN': "
            f"{arn!r} is not arn:aws:ecr:REGION:ACCOUNT:repository/NAME."
        )
    if match["region"] != ctx.region:
        raise RepositoryNotFoundException(
            f"The repository with name '{match['name']}' does not exist in the registry with "
            f"id '{match['account']}' in region {match['region']}"
        )
    return find_repository(ctx, match["name"], match["account"])


@ECR.operation("TagResource")
def tag_resource(ctx: RequestContext, params: Params) -> Params:
    """Add or overwrite tags; tags the request does not name stay as they are."""
    repository = _tagged(ctx, params["resourceArn"])
    new = shapes.tags_from_wire(params["tags"])
    shapes.check_tag_count(len({**ctx.store.get_tags(repository.arn), **new}))
    ctx.store.put_tags(repository.arn, new)
    return {}


@ECR.operation("UntagResource")
def untag_resource(ctx: RequestContext, params: Params) -> Params:
    """Remove the named tags; keys the repository does not have are ignored."""
    repository = _tagged(ctx, params["resourceArn"])
    keys = list(params["tagKeys"])
    for i, key in enumerate(keys):
        shapes.check_tag_key(key, f"tagKeys[{i}]")
    ctx.store.delete_tags(repository.arn, keys)
    return {}


@ECR.operation("ListTagsForResource")
def list_tags_for_resource(ctx: RequestContext, params: Params) -> Params:
    repository = _tagged(ctx, params["resourceArn"])
    return {"tags": shapes.tags_to_wire(ctx.store.get_tags(repository.arn))}


@ECR.operation("DescribeRegistry")
def describe_registry(ctx: RequestContext, params: Params) -> Params:
    """The caller's registry; Dockyard replicates nowhere, so the rules are empty."""
    del params
    return {"registryId": ctx.account_id, "replicationConfiguration": {"rules": []}}
