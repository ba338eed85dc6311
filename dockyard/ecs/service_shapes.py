"""Services on the wire: CreateService/UpdateService requests, the Service, Deployment
and ServiceEvent shapes.

The service half of ``shapes.py``, with the same rule: wire dicts become typed objects
here and nowhere else. Input has passed botocore-model validation (types and enums).
What Dockyard cannot do yet (load balancers, Cloud Map, Service Connect, EBS volumes,
blue/green) is refused here with a message that says so, never stored and ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.api.errors import InvalidParameterException
from dockyard.ecs.shapes import Wire, tags_from_wire, tags_to_wire
from dockyard.store.models import Service, ServiceDeployment, ServiceEvent

SERVICE_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
MAX_GRACE_SECONDS = 2147483647


# Requests


@dataclass(frozen=True)
class CircuitBreakerSetting:
    enable: bool
    rollback: bool


@dataclass(frozen=True)
class DeploymentSettings:
    """A deploymentConfiguration as given; None: the member was left out."""

    minimum_healthy_percent: int | None
    maximum_percent: int | None
    circuit_breaker: CircuitBreakerSetting | None


@dataclass(frozen=True)
class ServiceRequest:
    """CreateService's parameters."""

    cluster: str | None
    name: str
    task_definition: str | None
    desired_count: int | None
    scheduling: str  # REPLICA | DAEMON
    launch_type: str | None
    capacity_provider_strategy: tuple[Mapping[str, Any], ...]
    platform_version: str | None
    deployment: DeploymentSettings | None
    placement_constraints: tuple[Mapping[str, Any], ...]
    placement_strategy: tuple[Mapping[str, Any], ...]
    network_configuration: Mapping[str, Any] | None
    health_check_grace_period: int | None
    propagate_tags: str
    enable_ecs_managed_tags: bool
    enable_execute_command: bool
    tags: Mapping[str, str]
    client_token: str | None
    role: str | None
    availability_zone_rebalancing: str | None


@dataclass(frozen=True)
class ServiceUpdate:
    """UpdateService's parameters; None everywhere means "leave as it is", and an empty
    placement list clears it (as ECS documents)."""

    cluster: str | None
    service: str
    desired_count: int | None
    task_definition: str | None
    capacity_provider_strategy: tuple[Mapping[str, Any], ...] | None
    platform_version: str | None
    deployment: DeploymentSettings | None
    placement_constraints: tuple[Mapping[str, Any], ...] | None
    placement_strategy: tuple[Mapping[str, Any], ...] | None
    network_configuration: Mapping[str, Any] | None
    force_new_deployment: bool
    health_check_grace_period: int | None
    propagate_tags: str | None
    enable_ecs_managed_tags: bool | None
    enable_execute_command: bool | None
    availability_zone_rebalancing: str | None


def create_request(params: Mapping[str, Any]) -> ServiceRequest:
    name = params["serviceName"]
    if not SERVICE_NAME.fullmatch(name):
        raise InvalidParameterException(
            "Service name must be 1-255 characters: letters, numbers, hyphens and underscores."
        )
    _refuse_unsupported(params)
    token = params.get("clientToken")
    if token is not None and not 1 <= len(token) <= 36:
        raise InvalidParameterException("clientToken must be 1-36 ASCII characters.")
    return ServiceRequest(
        cluster=params.get("cluster"),
        name=name,
        task_definition=params.get("taskDefinition"),
        desired_count=_desired_count(params.get("desiredCount")),
        scheduling=params.get("schedulingStrategy") or "REPLICA",
        launch_type=params.get("launchType"),
        capacity_provider_strategy=tuple(params.get("capacityProviderStrategy") or ()),
        platform_version=params.get("platformVersion"),
        deployment=_deployment_settings(params.get("deploymentConfiguration")),
        placement_constraints=_wire_list(params.get("placementConstraints")),
        placement_strategy=_wire_list(params.get("placementStrategy")),
        network_configuration=params.get("networkConfiguration"),
        health_check_grace_period=_grace(params.get("healthCheckGracePeriodSeconds")),
        propagate_tags=params.get("propagateTags") or "NONE",
        enable_ecs_managed_tags=bool(params.get("enableECSManagedTags", False)),
        enable_execute_command=bool(params.get("enableExecuteCommand", False)),
        tags=tags_from_wire(params.get("tags")),
        client_token=token,
        role=params.get("role"),
        availability_zone_rebalancing=params.get("availabilityZoneRebalancing"),
    )


def update_request(params: Mapping[str, Any]) -> ServiceUpdate:
    _refuse_unsupported(params)
    constraints, strategy = params.get("placementConstraints"), params.get("placementStrategy")
    strategies = params.get("capacityProviderStrategy")
    return ServiceUpdate(
        cluster=params.get("cluster"),
        service=params["service"],
        desired_count=_desired_count(params.get("desiredCount")),
        task_definition=params.get("taskDefinition"),
        capacity_provider_strategy=tuple(strategies) if strategies is not None else None,
        platform_version=params.get("platformVersion"),
        deployment=_deployment_settings(params.get("deploymentConfiguration")),
        placement_constraints=_wire_list(constraints) if constraints is not None else None,
        placement_strategy=_wire_list(strategy) if strategy is not None else None,
        network_configuration=params.get("networkConfiguration"),
        force_new_deployment=bool(params.get("forceNewDeployment", False)),
        health_check_grace_period=_grace(params.get("healthCheckGracePeriodSeconds")),
        propagate_tags=params.get("propagateTags"),
        enable_ecs_managed_tags=params.get("enableECSManagedTags"),
        enable_execute_command=params.get("enableExecuteCommand"),
        availability_zone_rebalancing=params.get("availabilityZoneRebalancing"),
    )


def _desired_count(value: int | None) -> int | None:
    if value is not None and value < 0:
        raise InvalidParameterException(f"desiredCount must be 0 or more; {value} was given.")
    return value


def _grace(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_GRACE_SECONDS:
        raise InvalidParameterException(
            f"healthCheckGracePeriodSeconds must be between 0 and {MAX_GRACE_SECONDS}; "
            f"{value} was given."
        )
    return value


def _wire_list(items: Sequence[Mapping[str, Any]] | None) -> tuple[Mapping[str, Any], ...]:
    """Placement entries as ECS echoes them: the given members, nulls dropped."""
    return tuple({k: v for k, v in item.items() if v is not None} for item in items or ())


def _deployment_settings(wire: Mapping[str, Any] | None) -> DeploymentSettings | None:
    if wire is None:
        return None
    if wire.get("strategy") not in (None, "ROLLING"):
        raise InvalidParameterException(
            f"deploymentConfiguration.strategy {wire['strategy']} is not supported yet; "
            "Dockyard deploys with ROLLING updates."
        )
    alarms = wire.get("alarms") or {}
    if alarms.get("enable"):
        raise InvalidParameterException(
            "deploymentConfiguration.alarms cannot be enabled: Dockyard has no CloudWatch "
            "alarms; use deploymentCircuitBreaker to stop a failing deployment."
        )
    if wire.get("lifecycleHooks"):
        raise InvalidParameterException(
            "deploymentConfiguration.lifecycleHooks are not supported yet."
        )
    breaker = wire.get("deploymentCircuitBreaker")
    return DeploymentSettings(
        minimum_healthy_percent=wire.get("minimumHealthyPercent"),
        maximum_percent=wire.get("maximumPercent"),
        circuit_breaker=(
            CircuitBreakerSetting(bool(breaker["enable"]), bool(breaker["rollback"]))
            if breaker is not None
            else None
        ),
    )


# Members Dockyard cannot honour: (member, what to say).
_UNSUPPORTED = (
    ("loadBalancers", "Dockyard has no Elastic Load Balancing"),
    ("serviceRegistries", "Dockyard has no Cloud Map service discovery"),
    ("volumeConfigurations", "Dockyard has no Amazon EBS volumes"),
    ("vpcLatticeConfigurations", "Dockyard has no VPC Lattice"),
    ("gatewayConnectors", "Dockyard has no gateway connectors"),
)


def _refuse_unsupported(params: Mapping[str, Any]) -> None:
    for member, why in _UNSUPPORTED:
        if params.get(member):
            raise InvalidParameterException(
                f"{member} is not supported yet: {why}. Leave {member} out."
            )
    connect = params.get("serviceConnectConfiguration")
    if connect and connect.get("enabled"):
        raise InvalidParameterException(
            "serviceConnectConfiguration cannot be enabled: Dockyard has no Service Connect."
        )
    controller = (params.get("deploymentController") or {}).get("type", "ECS")
    if controller != "ECS":
        raise InvalidParameterException(
            f"deploymentController {controller} is not supported yet; Dockyard services use "
            "the ECS (rolling update) deployment controller."
        )


# The Service shape


@dataclass(frozen=True)
class Counts:
    """Tasks of a deployment (or a whole service) by state."""

    running: int = 0
    pending: int = 0


_OPTIONAL = (
    "launchType",
    "capacityProviderStrategy",
    "platformVersion",
    "networkConfiguration",
    "healthCheckGracePeriodSeconds",
    "roleArn",
    "availabilityZoneRebalancing",
)


def service_to_wire(
    service: Service,
    deployments: Sequence[tuple[ServiceDeployment, Counts]],
    events: Sequence[ServiceEvent],
    tags: Mapping[str, str] | None = None,
) -> Wire:
    """``deployments``: the live ones (not INACTIVE), PRIMARY first, with their counts."""
    doc = service.document
    primary = next((d for d, _ in deployments if d.status == "PRIMARY"), None)
    desired = doc.get("desiredCount", 0)
    if doc.get("schedulingStrategy") == "DAEMON" and primary is not None:
        desired = primary.desired_count  # the loop's count of eligible instances
    wire: Wire = {
        "serviceArn": service.arn,
        "serviceName": service.name,
        "clusterArn": service.cluster_arn,
        "loadBalancers": list(doc.get("loadBalancers", [])),
        "serviceRegistries": list(doc.get("serviceRegistries", [])),
        "status": service.status,
        "desiredCount": desired,
        "runningCount": sum(c.running for _, c in deployments),
        "pendingCount": sum(c.pending for _, c in deployments),
        "taskDefinition": doc["taskDefinition"],
        "deploymentConfiguration": doc["deploymentConfiguration"],
        "deployments": [deployment_to_wire(d, c) for d, c in deployments],
        "events": [event_to_wire(e) for e in events],
        "createdAt": service.created_at,
        "placementConstraints": list(doc.get("placementConstraints", [])),
        "placementStrategy": list(doc.get("placementStrategy", [])),
        "schedulingStrategy": doc["schedulingStrategy"],
        "deploymentController": doc.get("deploymentController", {"type": "ECS"}),
        "createdBy": doc.get("createdBy", ""),
        "enableECSManagedTags": doc.get("enableECSManagedTags", False),
        "propagateTags": doc.get("propagateTags", "NONE"),
        "enableExecuteCommand": doc.get("enableExecuteCommand", False),
    }
    for name in _OPTIONAL:
        if doc.get(name) is not None:
            wire[name] = doc[name]
    if primary is not None:
        wire["currentServiceDeployment"] = primary.document.get("serviceDeploymentArn")
    wire["currentServiceRevisions"] = [
        {
            "arn": d.document.get("serviceRevisionArn"),
            "requestedTaskCount": d.desired_count,
            "runningTaskCount": c.running,
            "pendingTaskCount": c.pending,
        }
        for d, c in deployments
        if d.document.get("serviceRevisionArn")
    ]
    if tags is not None:
        wire["tags"] = tags_to_wire(tags)
    return wire


def deployment_to_wire(deployment: ServiceDeployment, counts: Counts) -> Wire:
    doc = deployment.document
    wire: Wire = {
        "id": deployment.id,
        "status": deployment.status,
        "taskDefinition": deployment.task_definition_arn,
        "desiredCount": deployment.desired_count,
        "pendingCount": counts.pending,
        "runningCount": counts.running,
        "failedTasks": deployment.failed_tasks,
        "createdAt": deployment.created_at,
        "updatedAt": deployment.updated_at,
        "rolloutState": deployment.rollout_state,
        "rolloutStateReason": deployment.rollout_reason,
    }
    for name in ("launchType", "capacityProviderStrategy", "platformVersion"):
        if doc.get(name) is not None:
            wire[name] = doc[name]
    network = (doc.get("revision") or {}).get("networkConfiguration")
    if network is not None:
        wire["networkConfiguration"] = network
    return wire


def event_to_wire(event: ServiceEvent) -> Wire:
    return {"id": event.id, "createdAt": event.created_at, "message": event.message}
