"""Clusters: create, describe, list, update and delete, with ECS's semantics."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from dockyard.api.awsjson import Params
from dockyard.api.context import RequestContext
from dockyard.api.errors import (
    ClusterContainsContainerInstancesException,
    ClusterContainsServicesException,
    ClusterContainsTasksException,
    ClusterNotFoundException,
    InvalidParameterException,
)
from dockyard.api.pagination import decode_token, listing, page_size
from dockyard.ecs import arns, shapes
from dockyard.ecs.registry import ECS
from dockyard.store.models import Cluster

CLUSTER_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")


def find_cluster(ctx: RequestContext, reference: str | None, active: bool = True) -> Cluster:
    """The cluster a ``cluster`` parameter names (default ``default``), or the ECS error."""
    name = arns.cluster_name(ctx, reference or "default")
    cluster = ctx.store.get_cluster(ctx.account_id, ctx.region, name) if name else None
    return found_cluster(cluster, active)


def found_cluster(cluster: Cluster | None, active: bool = True) -> Cluster:
    """``cluster`` if it is one to act on, or the ECS error."""
    if cluster is None or (active and cluster.status == "INACTIVE"):
        raise ClusterNotFoundException("Cluster not found.")
    return cluster


def _check_capacity_providers(providers: tuple[str, ...], strategy: tuple[Any, ...]) -> None:
    for provider in providers:
        if provider not in FARGATE_PROVIDERS:
            raise InvalidParameterException(
                f"The specified capacity provider {provider} does not exist. "
                "Specify a valid capacity provider and try again."
            )
    if len(set(providers)) != len(providers):
        raise InvalidParameterException("The capacityProviders list contains duplicates.")
    base_count = 0
    for item in strategy:
        if item["capacityProvider"] not in providers:
            raise InvalidParameterException(
                f"The specified capacity provider strategy cannot contain a capacity provider "
                f"that is not associated with the cluster: {item['capacityProvider']}. "
                "Associate the capacity provider with the cluster or specify a valid one."
            )
        base_count += 1 if item.get("base", 0) > 0 else 0
    if base_count > 1:
        raise InvalidParameterException(
            "Only one capacity provider in a strategy can have a base defined."
        )


def _wire(ctx: RequestContext, cluster: Cluster, include: Any = (), tags: bool = True) -> Params:
    return shapes.cluster_to_wire(
        cluster,
        ctx.store.cluster_counts(cluster.arn),
        include=include,
        tags=ctx.store.get_tags(cluster.arn) if tags else None,
    )


@ECS.operation("CreateCluster")
def create_cluster(ctx: RequestContext, params: Params) -> Params:
    request = shapes.cluster_request(params)
    if not CLUSTER_NAME.fullmatch(request.name):
        raise InvalidParameterException(
            "Cluster name must be 1-255 characters: letters, numbers, hyphens and underscores."
        )
    _check_capacity_providers(request.capacity_providers, request.default_strategy)
    existing = ctx.store.get_cluster(ctx.account_id, ctx.region, request.name)
    if existing is not None and existing.status == "ACTIVE":
        # ECS answers a repeated CreateCluster with the cluster as it is.
        return {"cluster": _wire(ctx, existing, ("SETTINGS", "CONFIGURATIONS"))}
    cluster = Cluster(
        arn=arns.cluster(ctx, request.name),
        account_id=ctx.account_id,
        region=ctx.region,
        name=request.name,
        status="ACTIVE",
        created_at=ctx.now,
        settings=request.settings or (("containerInsights", "disabled"),),
        configuration=request.configuration,
        capacity_providers=request.capacity_providers,
        default_strategy=request.default_strategy,
        service_connect_namespace=request.service_connect_namespace,
    )
    ctx.store.delete_tags(cluster.arn)  # a re-created cluster starts without old tags
    ctx.store.put_tags(cluster.arn, request.tags)
    ctx.store.put_cluster(cluster)
    return {"cluster": _wire(ctx, cluster, ("SETTINGS", "CONFIGURATIONS"))}


@ECS.operation("DescribeClusters")
def describe_clusters(ctx: RequestContext, params: Params) -> Params:
    include = params.get("include") or []
    found, failures = [], []
    for reference in params.get("clusters") or ["default"]:
        name = arns.cluster_name(ctx, reference)
        cluster = ctx.store.get_cluster(ctx.account_id, ctx.region, name) if name else None
        if cluster is None:
            arn = reference if reference.startswith("arn:") else arns.cluster(ctx, reference)
            failures.append({"arn": arn, "reason": "MISSING"})
            continue
        found.append(_wire(ctx, cluster, include, tags="TAGS" in include))
    return {"clusters": found, "failures": failures}


@ECS.operation("ListClusters")
def list_clusters(ctx: RequestContext, params: Params) -> Params:
    page = ctx.store.list_clusters(
        ctx.account_id,
        ctx.region,
        after=decode_token(params.get("nextToken")),
        limit=page_size(params.get("maxResults")),
    )
    return listing("clusterArns", [c.arn for c in page.items], page.next_key)


@ECS.operation("DeleteCluster")
def delete_cluster(ctx: RequestContext, params: Params) -> Params:
    cluster = find_cluster(ctx, params["cluster"])
    counts = ctx.store.cluster_counts(cluster.arn)
    if counts.registered_instances:
        raise ClusterContainsContainerInstancesException(
            "The Cluster cannot be deleted while Container Instances are active or draining."
        )
    if counts.active_services or counts.draining_services:
        raise ClusterContainsServicesException(
            "The Cluster cannot be deleted while Services are active."
        )
    if counts.running_tasks or counts.pending_tasks:
        raise ClusterContainsTasksException("The Cluster cannot be deleted while Tasks are active.")
    inactive = replace(cluster, status="INACTIVE")
    ctx.store.put_cluster(inactive)
    return {"cluster": _wire(ctx, inactive, ("SETTINGS", "CONFIGURATIONS"))}


@ECS.operation("UpdateCluster")
def update_cluster(ctx: RequestContext, params: Params) -> Params:
    cluster = find_cluster(ctx, params["cluster"])
    if "settings" in params:
        cluster = replace(cluster, settings=_merge(cluster, params["settings"]))
    if "configuration" in params:
        cluster = replace(cluster, configuration=params["configuration"])
    if "serviceConnectDefaults" in params:
        namespace = params["serviceConnectDefaults"].get("namespace")
        cluster = replace(cluster, service_connect_namespace=namespace or None)
    ctx.store.put_cluster(cluster)
    return {"cluster": _wire(ctx, cluster, ("SETTINGS", "CONFIGURATIONS"))}


@ECS.operation("UpdateClusterSettings")
def update_cluster_settings(ctx: RequestContext, params: Params) -> Params:
    cluster = find_cluster(ctx, params["cluster"])
    cluster = replace(cluster, settings=_merge(cluster, params["settings"]))
    ctx.store.put_cluster(cluster)
    return {"cluster": _wire(ctx, cluster, ("SETTINGS",))}


def _merge(cluster: Cluster, items: Any) -> tuple[tuple[str, str], ...]:
    merged = dict(cluster.settings)
    merged.update(shapes.settings_from_wire(items))
    return tuple(merged.items())


@ECS.operation("PutClusterCapacityProviders")
def put_cluster_capacity_providers(ctx: RequestContext, params: Params) -> Params:
    cluster = find_cluster(ctx, params["cluster"])
    providers = tuple(params["capacityProviders"])
    strategy = tuple(params["defaultCapacityProviderStrategy"])
    _check_capacity_providers(providers, strategy)
    cluster = replace(cluster, capacity_providers=providers, default_strategy=strategy)
    ctx.store.put_cluster(cluster)
    return {"cluster": _wire(ctx, cluster, ("SETTINGS", "CONFIGURATIONS"))}


@ECS.operation("DescribeCapacityProviders")
def describe_capacity_providers(ctx: RequestContext, params: Params) -> Params:
    """FARGATE and FARGATE_SPOT exist in every account; custom providers come later."""
    wanted = params.get("capacityProviders") or list(FARGATE_PROVIDERS)
    found, failures = [], []
    for reference in wanted:
        name = reference.rsplit("/", 1)[-1]
        if name in FARGATE_PROVIDERS:
            found.append(
                {
                    "capacityProviderArn": arns.make(ctx, "capacity-provider", name),
                    "name": name,
                    "status": "ACTIVE",
                    "tags": [],
                }
            )
        else:
            failures.append({"arn": reference, "reason": "MISSING"})
    return {"capacityProviders": found, "failures": failures}
