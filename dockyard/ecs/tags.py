"""Tags on every taggable ECS resource, found by its ARN.

Each taggable kind is one line of ``_FINDERS``: a function that takes the parsed ARN and
returns the ARN the resource's tags are stored under, or None when the caller's account
and region hold no such resource. Capacity providers add their line when they arrive.

Errors, as ECS reports them:

* an ARN that is not an ECS ARN, or names a kind that cannot be tagged:
  ``InvalidParameterException``;
* a cluster that does not exist (or is in another account or region):
  ``ClusterNotFoundException``;
* any other resource that does not exist: ``ResourceNotFoundException`` from TagResource
  and UntagResource. ListTagsForResource does not declare that error, so it answers
  ``InvalidParameterException`` (one of the errors it does declare).
"""

from __future__ import annotations

from collections.abc import Callable

from dockyard.api.awsjson import Params
from dockyard.api.context import RequestContext
from dockyard.api.errors import (
    AwsError,
    ClusterNotFoundException,
    InvalidParameterException,
    LimitExceededException,
    ResourceNotFoundException,
)
from dockyard.ecs import arns, shapes
from dockyard.ecs.registry import ECS

MAX_TAGS = 50

Finder = Callable[[RequestContext, arns.Arn], str | None]


def _cluster(ctx: RequestContext, arn: arns.Arn) -> str | None:
    cluster = ctx.store.get_cluster(ctx.account_id, ctx.region, arn.resource)
    return cluster.arn if cluster is not None and cluster.status != "INACTIVE" else None


def _task_definition(ctx: RequestContext, arn: arns.Arn) -> str | None:
    """``family:revision``; every revision but one being deleted can carry tags."""
    family, _, revision = arn.resource.rpartition(":")
    if not family or not revision.isdigit():
        return None
    definition = ctx.store.get_task_definition(ctx.account_id, ctx.region, family, int(revision))
    if definition is None or definition.status == "DELETE_IN_PROGRESS":
        return None
    return definition.arn


def _container_instance(ctx: RequestContext, arn: arns.Arn) -> str | None:
    instance = ctx.store.get_container_instance(arns.make(ctx, "container-instance", arn.resource))
    return instance.arn if instance is not None and instance.status != "INACTIVE" else None


def _task(ctx: RequestContext, arn: arns.Arn) -> str | None:
    task = ctx.store.tasks.get(arns.make(ctx, "task", arn.resource))
    return task.arn if task is not None else None


def _service(ctx: RequestContext, arn: arns.Arn) -> str | None:
    """``CLUSTER/NAME``; the old ``service/NAME`` form names no cluster, so no service."""
    if "/" not in arn.resource:
        return None
    service = ctx.store.services.get(arns.make(ctx, "service", arn.resource))
    return service.arn if service is not None and service.status != "INACTIVE" else None


# ARN kind -> where that kind of resource's tags live (None: no such resource).
_FINDERS: dict[str, Finder] = {
    "cluster": _cluster,
    "task-definition": _task_definition,
    "container-instance": _container_instance,
    "task": _task,
    "service": _service,
}


def find_resource(ctx: RequestContext, reference: str, missing: type[AwsError]) -> str:
    """The stored ARN of the resource ``reference`` names, or the ECS error; ``missing``
    is the error for a resource (other than a cluster) that does not exist."""
    arn = arns.parse(reference)
    if arn is None:
        raise InvalidParameterException(
            f"Invalid resource ARN {reference!r}: expected arn:aws:ecs:REGION:ACCOUNT:TYPE/ID."
        )
    finder = _FINDERS.get(arn.kind)
    if finder is None:
        kinds = ", ".join(sorted(_FINDERS))
        raise InvalidParameterException(
            f"Resources of type {arn.kind} cannot be tagged here; taggable types: {kinds}."
        )
    here = (arn.account_id, arn.region) == (ctx.account_id, ctx.region)
    found = finder(ctx, arn) if here else None
    if found is None:
        if arn.kind == "cluster":
            raise ClusterNotFoundException("Cluster not found.")
        raise missing(f"The specified {arn.kind} does not exist: {reference}")
    return found


@ECS.operation("TagResource")
def tag_resource(ctx: RequestContext, params: Params) -> Params:
    """Add or overwrite tags; tags the request does not name stay as they are."""
    arn = find_resource(ctx, params["resourceArn"], ResourceNotFoundException)
    new = shapes.tags_from_wire(params["tags"])
    merged = {**ctx.store.get_tags(arn), **new}
    if len(merged) > MAX_TAGS:
        raise LimitExceededException(
            f"A resource can have at most {MAX_TAGS} tags; this request would leave "
            f"{len(merged)} on {arn}."
        )
    ctx.store.put_tags(arn, new)
    return {}


@ECS.operation("UntagResource")
def untag_resource(ctx: RequestContext, params: Params) -> Params:
    """Remove the named tags; keys the resource does not have are ignored."""
    arn = find_resource(ctx, params["resourceArn"], ResourceNotFoundException)
    keys = list(params["tagKeys"])
    for key in keys:
        if key.lower().startswith("aws:"):
            raise InvalidParameterException(
                f"Tag key {key!r}: tags with the aws: prefix are reserved and cannot be removed."
            )
    ctx.store.delete_tags(arn, keys)
    return {}


@ECS.operation("ListTagsForResource")
def list_tags_for_resource(ctx: RequestContext, params: Params) -> Params:
    arn = find_resource(ctx, params["resourceArn"], InvalidParameterException)
    return {"tags": shapes.tags_to_wire(ctx.store.get_tags(arn))}
