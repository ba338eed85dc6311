"""Where ECS wire dicts become domain objects and domain objects become wire dicts.

Input here has already passed botocore-model validation (types and enums are right).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.api.errors import InvalidParameterException
from dockyard.store.models import Cluster, ClusterCounts, ContainerInstance, TaskDefinition

Wire = dict[str, Any]

# Tags


def tags_from_wire(items: Sequence[Mapping[str, str]] | None) -> dict[str, str]:
    """ECS's tag rules: at most 50, no ``aws:`` prefix, keys unique."""
    tags: dict[str, str] = {}
    for i, item in enumerate(items or []):
        key, value = item.get("key"), item.get("value", "")
        if not key:
            raise InvalidParameterException(f"tags[{i}].key must be given and not empty.")
        if key.lower().startswith("aws:"):
            raise InvalidParameterException(
                f"Tag key {key!r}: the aws: prefix is reserved for AWS use."
            )
        tags[key] = value or ""
    if len(tags) > 50:
        raise InvalidParameterException("A resource can have at most 50 tags.")
    return tags


def tags_to_wire(tags: Mapping[str, str]) -> list[Wire]:
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


# Clusters


@dataclass(frozen=True)
class ClusterRequest:
    name: str
    settings: tuple[tuple[str, str], ...]
    configuration: Mapping[str, Any] | None
    capacity_providers: tuple[str, ...]
    default_strategy: tuple[Mapping[str, Any], ...]
    service_connect_namespace: str | None
    tags: Mapping[str, str]


def settings_from_wire(items: Iterable[Mapping[str, str]] | None) -> tuple[tuple[str, str], ...]:
    settings = []
    for i, item in enumerate(items or []):
        name, value = item.get("name", "containerInsights"), item.get("value")
        if value not in ("enabled", "disabled", "enhanced"):
            raise InvalidParameterException(
                f"settings[{i}].value for {name} must be enabled, disabled or enhanced."
            )
        settings.append((name, value))
    return tuple(settings)


def cluster_request(params: Mapping[str, Any]) -> ClusterRequest:
    namespace = (params.get("serviceConnectDefaults") or {}).get("namespace")
    return ClusterRequest(
        name=params.get("clusterName") or "default",
        settings=settings_from_wire(params.get("settings")),
        configuration=params.get("configuration"),
        capacity_providers=tuple(params.get("capacityProviders") or ()),
        default_strategy=tuple(params.get("defaultCapacityProviderStrategy") or ()),
        service_connect_namespace=namespace,
        tags=tags_from_wire(params.get("tags")),
    )


def cluster_to_wire(
    cluster: Cluster,
    counts: ClusterCounts,
    *,
    include: Iterable[str] = (),
    tags: Mapping[str, str] | None = None,
) -> Wire:
    """The Cluster shape; ``include`` as DescribeClusters takes it."""
    include = set(include)
    wire: Wire = {
        "clusterArn": cluster.arn,
        "clusterName": cluster.name,
        "status": cluster.status,
        "registeredContainerInstancesCount": counts.registered_instances,
        "runningTasksCount": counts.running_tasks,
        "pendingTasksCount": counts.pending_tasks,
        "activeServicesCount": counts.active_services,
        "capacityProviders": list(cluster.capacity_providers),
        "defaultCapacityProviderStrategy": [dict(s) for s in cluster.default_strategy],
    }
    if "SETTINGS" in include:
        wire["settings"] = [{"name": n, "value": v} for n, v in cluster.settings]
    if "CONFIGURATIONS" in include and cluster.configuration is not None:
        wire["configuration"] = dict(cluster.configuration)
    if "STATISTICS" in include:
        wire["statistics"] = _statistics(counts)
    if "ATTACHMENTS" in include:
        wire["attachments"] = []
    if tags is not None:
        wire["tags"] = tags_to_wire(tags)
    if cluster.service_connect_namespace:
        wire["serviceConnectDefaults"] = {"namespace": cluster.service_connect_namespace}
    return wire


def _statistics(counts: ClusterCounts) -> list[Wire]:
    # Every task and service counts as EC2 until Fargate tasks exist (a later issue).
    figures = {
        "runningEC2TasksCount": counts.running_tasks,
        "runningFargateTasksCount": 0,
        "pendingEC2TasksCount": counts.pending_tasks,
        "pendingFargateTasksCount": 0,
        "activeEC2ServiceCount": counts.active_services,
        "activeFargateServiceCount": 0,
        "drainingEC2ServiceCount": 0,
        "drainingFargateServiceCount": 0,
    }
    return [{"name": k, "value": str(v)} for k, v in figures.items()]


# Task definitions


def task_definition_to_wire(definition: TaskDefinition, requires_attributes: list[Wire]) -> Wire:
    doc = definition.document
    wire: Wire = {
        "taskDefinitionArn": definition.arn,
        "family": definition.family,
        "revision": definition.revision,
        "status": definition.status,
        "containerDefinitions": doc["containerDefinitions"],
        "volumes": doc.get("volumes", []),
        "placementConstraints": doc.get("placementConstraints", []),
        "compatibilities": compatibilities(doc),
        "requiresAttributes": requires_attributes,
        "registeredAt": definition.registered_at,
        "registeredBy": definition.registered_by,
    }
    for name in (
        "taskRoleArn",
        "executionRoleArn",
        "networkMode",
        "requiresCompatibilities",
        "cpu",
        "memory",
        "pidMode",
        "ipcMode",
        "proxyConfiguration",
        "inferenceAccelerators",
        "ephemeralStorage",
        "runtimePlatform",
        "enableFaultInjection",
    ):
        if name in doc:
            wire[name] = doc[name]
    if definition.deregistered_at is not None:
        wire["deregisteredAt"] = definition.deregistered_at
    return wire


def compatibilities(doc: Mapping[str, Any]) -> list[str]:
    """Where a definition can run: always EC2 and EXTERNAL-like hosts; FARGATE when it
    fits Fargate's rules (awsvpc with task-level cpu and memory)."""
    result = ["EC2"]
    fargate_ready = doc.get("networkMode") == "awsvpc" and "cpu" in doc and "memory" in doc
    if fargate_ready or "FARGATE" in doc.get("requiresCompatibilities", []):
        result.append("FARGATE")
    return result


# Container instances


def container_instance_to_wire(
    instance: ContainerInstance,
    attributes: list[Wire],
    *,
    running_tasks: int = 0,
    pending_tasks: int = 0,
    tags: Mapping[str, str] | None = None,
) -> Wire:
    doc = instance.document
    wire: Wire = {
        "containerInstanceArn": instance.arn,
        "ec2InstanceId": instance.ec2_instance_id,
        "version": doc.get("version", 1),
        "versionInfo": doc.get("versionInfo", {}),
        "remainingResources": doc.get("remainingResources", doc.get("registeredResources", [])),
        "registeredResources": doc.get("registeredResources", []),
        "status": instance.status,
        "agentConnected": doc.get("agentConnected", False),
        "runningTasksCount": running_tasks,
        "pendingTasksCount": pending_tasks,
        "attributes": attributes,
        "registeredAt": instance.registered_at,
        "attachments": [],
    }
    for name in ("capacityProviderName", "statusReason", "agentUpdateStatus"):
        if doc.get(name):
            wire[name] = doc[name]
    if tags is not None:
        wire["tags"] = tags_to_wire(tags)
    return wire
