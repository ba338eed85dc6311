"""Attributes: name-value pairs on container instances, for placement constraints.

The attributes RegisterContainerInstance records (the agent's capabilities, ``ecs.*``)
and the custom ones PutAttributes adds share one table, so ListAttributes and
DescribeContainerInstances show both. A container instance holds at most 10 custom
attributes; built-in names (``ecs.*``, ``com.amazonaws.ecs.*``) do not count.

A request is checked whole before anything is written: one bad attribute leaves the
stored ones as they were.
"""

from __future__ import annotations

from collections.abc import Iterable

from dockyard.api.awsjson import Params
from dockyard.api.context import RequestContext
from dockyard.api.errors import (
    AttributeLimitExceededException,
    InvalidParameterException,
    TargetNotFoundException,
)
from dockyard.api.pagination import decode_token, encode_token, page_size
from dockyard.ecs import shapes
from dockyard.ecs.clusters import find_cluster
from dockyard.ecs.container_instances import (
    CUSTOM_ATTRIBUTE_LIMIT,
    TARGET_TYPE,
    find_container_instance,
    instance_attributes,
    is_custom,
)
from dockyard.ecs.registry import ECS
from dockyard.store.models import Attribute, Cluster, ContainerInstance

MAX_PER_CALL = 10


def _target(
    ctx: RequestContext, cluster: Cluster, request: shapes.AttributeRequest, index: int
) -> ContainerInstance:
    """The container instance an attribute's targetId (an ID or ARN) names."""
    target_id = request.target_id
    if target_id is None:
        raise InvalidParameterException(f"attributes[{index}].targetId must be given.")
    if not target_id.startswith("arn:") and request.target_type is None:
        raise InvalidParameterException(
            f"attributes[{index}].targetType must be given when targetId is a short ID."
        )
    instance = find_container_instance(ctx, cluster, target_id)
    if instance is None or instance.status == "INACTIVE":
        raise TargetNotFoundException(
            f"Could not find {target_id}: no registered container instance in cluster "
            f"{cluster.name} has that ID or ARN."
        )
    return instance


def _resolve(
    ctx: RequestContext, cluster: Cluster, requests: Iterable[shapes.AttributeRequest]
) -> tuple[dict[tuple[str, str], Attribute], dict[str, ContainerInstance]]:
    """(target ARN, name) -> attribute, last one winning, and the targets by ARN."""
    resolved: dict[tuple[str, str], Attribute] = {}
    targets: dict[str, ContainerInstance] = {}
    for index, request in enumerate(requests):
        target = _target(ctx, cluster, request, index)
        targets[target.arn] = target
        attribute = Attribute(cluster.arn, TARGET_TYPE, target.arn, request.name, request.value)
        resolved[(target.arn, request.name)] = attribute
    return resolved, targets


def _requests(params: Params) -> tuple[shapes.AttributeRequest, ...]:
    requests = shapes.attributes_from_wire(params["attributes"], "attributes")
    if not requests:
        raise InvalidParameterException("attributes must name at least one attribute.")
    if len(requests) > MAX_PER_CALL:
        raise InvalidParameterException(
            f"A request can name at most {MAX_PER_CALL} attributes; it named {len(requests)}."
        )
    return requests


@ECS.operation("PutAttributes")
def put_attributes(ctx: RequestContext, params: Params) -> Params:
    """Create attributes, or replace the value of ones that exist."""
    cluster = find_cluster(ctx, params.get("cluster"))
    requests = _requests(params)
    resolved, targets = _resolve(ctx, cluster, requests)
    for arn, target in targets.items():
        custom = {a.name for a in instance_attributes(ctx, target) if is_custom(a.name)}
        custom |= {name for (t, name) in resolved if t == arn and is_custom(name)}
        if len(custom) > CUSTOM_ATTRIBUTE_LIMIT:
            raise AttributeLimitExceededException(
                f"{arn} would have {len(custom)} custom attributes; the limit is "
                f"{CUSTOM_ATTRIBUTE_LIMIT}."
            )
    ctx.store.put_attributes(resolved.values())
    return {"attributes": [shapes.attribute_request_to_wire(r) for r in requests]}


@ECS.operation("DeleteAttributes")
def delete_attributes(ctx: RequestContext, params: Params) -> Params:
    """Delete attributes by name and target; a name the target lacks is no error."""
    cluster = find_cluster(ctx, params.get("cluster"))
    requests = _requests(params)
    resolved, _ = _resolve(ctx, cluster, requests)
    ctx.store.delete_attributes(resolved.values())
    return {"attributes": [shapes.attribute_request_to_wire(r) for r in requests]}


@ECS.operation("ListAttributes")
def list_attributes(ctx: RequestContext, params: Params) -> Params:
    """One entry per attribute per target, ordered by target ARN then name."""
    cluster = find_cluster(ctx, params.get("cluster"))
    name, value = params.get("attributeName"), params.get("attributeValue")
    if value is not None and name is None:
        raise InvalidParameterException("To filter by attributeValue, give attributeName too.")
    found = ctx.store.list_attributes(
        cluster.arn, target_type=params["targetType"], name=name, value=value
    )
    # Sorted here, not by the database: the page key must order the same way everywhere.
    items = sorted(found, key=lambda a: (a.target_id, a.name))
    token = decode_token(params.get("nextToken"))
    if token is not None:
        target_id, _, after_name = token.partition(" ")
        items = [a for a in items if (a.target_id, a.name) > (target_id, after_name)]
    limit = page_size(params.get("maxResults"))
    result: Params = {
        "attributes": [shapes.attribute_to_wire(a, target=True) for a in items[:limit]]
    }
    if len(items) > limit:
        last = items[limit - 1]
        result["nextToken"] = encode_token(f"{last.target_id} {last.name}")
    return result
