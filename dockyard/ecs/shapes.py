"""Where ECS wire dicts become domain objects and domain objects become wire dicts.

Input here has already passed botocore-model validation (types and enums are right).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.api.errors import InvalidParameterException
from dockyard.store.models import (
    AccountSetting,
    Attribute,
    Cluster,
    ClusterCounts,
    ContainerInstance,
    TaskDefinition,
)

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
    agent_connected: bool = False,
    tags: Mapping[str, str] | None = None,
    health: bool = False,
) -> Wire:
    """The ContainerInstance shape; ``health`` adds healthStatus (CONTAINER_INSTANCE_HEALTH)."""
    doc = instance.document
    wire: Wire = {
        "containerInstanceArn": instance.arn,
        "ec2InstanceId": instance.ec2_instance_id,
        "version": doc.get("version", 1),
        "versionInfo": doc.get("versionInfo", {}),
        "remainingResources": doc.get("remainingResources", doc.get("registeredResources", [])),
        "registeredResources": doc.get("registeredResources", []),
        "status": instance.status,
        "agentConnected": agent_connected,
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
    if health:
        # Health reports arrive over the agent channel (a later issue); until one has,
        # ECS's answer for an instance it has no data about is INSUFFICIENT_DATA.
        wire["healthStatus"] = doc.get("healthStatus", {"overallStatus": "INSUFFICIENT_DATA"})
    return wire


# Container instance registration

# The resources every container instance reports, and the type ECS gives each.
INSTANCE_RESOURCES = {
    "CPU": "INTEGER",
    "MEMORY": "INTEGER",
    "PORTS": "STRINGSET",
    "PORTS_UDP": "STRINGSET",
}
RESOURCE_TYPES = ("INTEGER", "LONG", "DOUBLE", "STRINGSET")


@dataclass(frozen=True)
class InstanceRegistration:
    cluster: str | None
    ec2_instance_id: str | None  # from the identity document, if one was given
    identity: Mapping[str, Any]  # the parsed instance identity document
    resources: tuple[Wire, ...]  # normalised Resource shapes, CPU/MEMORY/PORTS/PORTS_UDP first
    version_info: Mapping[str, str]
    attributes: tuple[AttributeRequest, ...]
    tags: Mapping[str, str]
    container_instance_arn: str | None


def instance_registration(params: Mapping[str, Any]) -> InstanceRegistration:
    identity = _identity_document(params.get("instanceIdentityDocument"))
    instance_id = identity.get("instanceId")
    return InstanceRegistration(
        cluster=params.get("cluster"),
        ec2_instance_id=instance_id if isinstance(instance_id, str) and instance_id else None,
        identity=identity,
        resources=resources_from_wire(params.get("totalResources")),
        version_info=dict(params.get("versionInfo") or {}),
        attributes=attributes_from_wire(params.get("attributes"), "attributes"),
        tags=tags_from_wire(params.get("tags")),
        container_instance_arn=params.get("containerInstanceArn") or None,
    )


def _identity_document(text: str | None) -> Mapping[str, Any]:
    if not text:
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise InvalidParameterException("instanceIdentityDocument must be a JSON object.")
    return document


def resources_from_wire(items: Sequence[Mapping[str, Any]] | None) -> tuple[Wire, ...]:
    """totalResources as ECS reports them back: every numeric field present, and the
    four standard resources always there (zero or empty when the agent left one out)."""
    given: dict[str, Wire] = {}
    for i, item in enumerate(items or []):
        name = item.get("name")
        if not name:
            raise InvalidParameterException(f"totalResources[{i}].name must be given.")
        if name in given:
            raise InvalidParameterException(f"totalResources lists {name} more than once.")
        kind = item.get("type") or INSTANCE_RESOURCES.get(name, "INTEGER")
        expected = INSTANCE_RESOURCES.get(name)
        if kind not in RESOURCE_TYPES or (expected and kind != expected):
            allowed = expected or ", ".join(RESOURCE_TYPES)
            raise InvalidParameterException(
                f"totalResources[{i}] ({name}): type {kind} is not valid; use {allowed}."
            )
        given[name] = _resource(name, kind, item, f"totalResources[{i}]")
    standard = [
        given.pop(name) if name in given else _resource(name, kind, {}, "")
        for name, kind in INSTANCE_RESOURCES.items()
    ]
    return tuple(standard + list(given.values()))


def _resource(name: str, kind: str, item: Mapping[str, Any], where: str) -> Wire:
    wire: Wire = {
        "name": name,
        "type": kind,
        "doubleValue": float(item.get("doubleValue") or 0.0),
        "longValue": int(item.get("longValue") or 0),
        "integerValue": int(item.get("integerValue") or 0),
    }
    if min(wire["doubleValue"], wire["longValue"], wire["integerValue"]) < 0:
        raise InvalidParameterException(f"{where} ({name}): values must not be negative.")
    if kind == "STRINGSET":
        values = [str(v) for v in item.get("stringSetValue") or []]
        if name in ("PORTS", "PORTS_UDP") and not all(_is_port(v) for v in values):
            raise InvalidParameterException(
                f"{where} ({name}): every stringSetValue must be a port number 0-65535."
            )
        wire["stringSetValue"] = values
    return wire


def _is_port(value: str) -> bool:
    return value.isdigit() and int(value) <= 65535


# Attributes

ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_./\\-]{1,128}")
ATTRIBUTE_VALUE = re.compile(r"[A-Za-z0-9_.@/\\: -]{1,128}")


@dataclass(frozen=True)
class AttributeRequest:
    """An attribute as a request names it; the target is resolved by the handler."""

    name: str
    value: str | None = None
    target_type: str | None = None
    target_id: str | None = None


def attributes_from_wire(
    items: Sequence[Mapping[str, Any]] | None, field: str
) -> tuple[AttributeRequest, ...]:
    """Attributes with ECS's character rules checked; ``field`` names them in errors."""
    result = []
    for i, item in enumerate(items or []):
        name, value = item.get("name", ""), item.get("value")
        if not ATTRIBUTE_NAME.fullmatch(name):
            raise InvalidParameterException(
                f"{field}[{i}].name {name!r}: 1-128 letters, numbers, hyphens, underscores, "
                "periods, forward or back slashes."
            )
        if value is not None and (
            not ATTRIBUTE_VALUE.fullmatch(value) or value != value.strip(" ")
        ):
            raise InvalidParameterException(
                f"{field}[{i}].value {value!r}: 1-128 letters, numbers, hyphens, underscores, "
                "periods, at signs, forward or back slashes, colons or spaces, not starting "
                "or ending with a space."
            )
        result.append(
            AttributeRequest(name, value, item.get("targetType"), item.get("targetId") or None)
        )
    return tuple(result)


def attribute_request_to_wire(request: AttributeRequest) -> Wire:
    """The attribute as the caller named it: PutAttributes and DeleteAttributes echo it."""
    wire: Wire = {"name": request.name}
    if request.value is not None:
        wire["value"] = request.value
    if request.target_type is not None:
        wire["targetType"] = request.target_type
    if request.target_id is not None:
        wire["targetId"] = request.target_id
    return wire


def attribute_to_wire(attribute: Attribute, *, target: bool) -> Wire:
    """A stored attribute; ``target`` adds targetType and targetId (ListAttributes)."""
    wire: Wire = {"name": attribute.name}
    if attribute.value is not None:
        wire["value"] = attribute.value
    if target:
        wire["targetType"] = attribute.target_type
        wire["targetId"] = attribute.target_id
    return wire


# Account settings


def setting_to_wire(setting: AccountSetting) -> Wire:
    return {
        "name": setting.name,
        "value": setting.value,
        "principalArn": setting.principal_arn,
        "type": setting.type,
    }
