"""Tasks on the wire: RunTask/StartTask requests, agent reports, the Task shape.

The task half of ``shapes.py`` (split off for length), with the same rule: wire dicts
become typed objects here and nowhere else. Input has passed botocore-model validation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dockyard.api.errors import InvalidParameterException
from dockyard.ecs import fargate
from dockyard.ecs.shapes import Wire, tags_from_wire, tags_to_wire
from dockyard.store.models import Task

STOP_CODES = (
    "TaskFailedToStart",
    "EssentialContainerExited",
    "UserInitiated",
    "ServiceSchedulerInitiated",
    "SpotInterruption",
    "TerminationNotice",
)


# Requests


@dataclass(frozen=True)
class ContainerOverride:
    name: str
    cpu: int | None
    memory: int | None
    memory_reservation: int | None


@dataclass(frozen=True)
class Overrides:
    containers: tuple[ContainerOverride, ...]
    cpu: int | None  # task-level, in units
    memory: int | None  # task-level, in MiB
    wire: Mapping[str, Any]  # as given: echoed in DescribeTasks and sent to the agent


@dataclass(frozen=True)
class RunRequest:
    """RunTask's or StartTask's parameters (StartTask: ``container_instances``)."""

    cluster: str | None
    task_definition: str
    count: int
    group: str | None
    started_by: str | None
    launch_type: str | None
    overrides: Overrides
    tags: Mapping[str, str]
    propagate_tags: str | None
    placement_constraints: tuple[Mapping[str, Any], ...]
    placement_strategy: tuple[Mapping[str, Any], ...]
    capacity_provider_strategy: tuple[Mapping[str, Any], ...]
    enable_execute_command: bool
    container_instances: tuple[str, ...] = ()


def run_request(params: Mapping[str, Any]) -> RunRequest:
    count = params.get("count", 1)
    if not 1 <= count <= 10:
        raise InvalidParameterException(f"count must be between 1 and 10; {count} was given.")
    started_by = params.get("startedBy")
    if started_by is not None and len(started_by) > 128:
        raise InvalidParameterException("startedBy must be at most 128 characters.")
    group = params.get("group")
    if group is not None and not 1 <= len(group) <= 255:
        raise InvalidParameterException("group must be 1-255 characters.")
    return RunRequest(
        cluster=params.get("cluster"),
        task_definition=params["taskDefinition"],
        count=count,
        group=group,
        started_by=started_by,
        launch_type=params.get("launchType"),
        overrides=overrides_from_wire(params.get("overrides") or {}),
        tags=tags_from_wire(params.get("tags")),
        propagate_tags=params.get("propagateTags"),
        placement_constraints=tuple(params.get("placementConstraints") or ()),
        placement_strategy=tuple(params.get("placementStrategy") or ()),
        capacity_provider_strategy=tuple(params.get("capacityProviderStrategy") or ()),
        enable_execute_command=bool(params.get("enableExecuteCommand", False)),
        container_instances=tuple(params.get("containerInstances") or ()),
    )


def overrides_from_wire(wire: Mapping[str, Any]) -> Overrides:
    containers = []
    for i, item in enumerate(wire.get("containerOverrides") or []):
        if not item.get("name"):
            raise InvalidParameterException(f"overrides.containerOverrides[{i}].name is required.")
        for key in ("cpu", "memory", "memoryReservation"):
            if (item.get(key) or 0) < 0:
                raise InvalidParameterException(
                    f"overrides.containerOverrides[{i}].{key} must not be negative."
                )
        containers.append(
            ContainerOverride(
                item["name"], item.get("cpu"), item.get("memory"), item.get("memoryReservation")
            )
        )
    if len({c.name for c in containers}) != len(containers):
        raise InvalidParameterException("overrides.containerOverrides names a container twice.")
    return Overrides(
        containers=tuple(containers),
        cpu=_task_size(wire.get("cpu"), fargate.parse_cpu, "cpu", "CPU units or vCPU"),
        memory=_task_size(wire.get("memory"), fargate.parse_memory, "memory", "MiB or GB"),
        wire=dict(wire),
    )


def _task_size(text: str | None, parse: Any, name: str, units: str) -> int | None:
    if text is None:
        return None
    value: int | None = parse(text)
    if value is None:
        raise InvalidParameterException(f"overrides.{name} {text!r} is not a size in {units}.")
    return value


# Agent reports


@dataclass(frozen=True)
class ContainerChange:
    name: str
    status: str | None  # PENDING | RUNNING | STOPPED
    runtime_id: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    network_bindings: tuple[Mapping[str, Any], ...] | None = None
    health_status: str | None = None  # Dockyard's addition: HEALTHY | UNHEALTHY | UNKNOWN
    image_digest: str | None = None


@dataclass(frozen=True)
class TaskChange:
    cluster: str | None
    task: str
    status: str | None
    reason: str | None
    stop_code: str | None  # Dockyard's addition; ECS works it out itself
    containers: tuple[ContainerChange, ...]
    pull_started_at: float | None
    pull_stopped_at: float | None
    execution_stopped_at: float | None


CONTAINER_STATUSES = ("PENDING", "RUNNING", "STOPPED")
HEALTH_STATUSES = ("HEALTHY", "UNHEALTHY", "UNKNOWN")


def task_change(params: Mapping[str, Any], statuses: Sequence[str]) -> TaskChange:
    """SubmitTaskStateChange's input; ``statuses``: the task statuses it may report."""
    if not params.get("task"):
        raise InvalidParameterException("task is required: the ARN of the task reported.")
    status = params.get("status")
    if status is not None and status not in statuses:
        raise InvalidParameterException(f"status {status!r} must be one of {', '.join(statuses)}.")
    stop_code = params.get("stopCode")
    if stop_code is not None and stop_code not in STOP_CODES:
        stop_code = None  # an addition we do not know: let the control plane decide
    return TaskChange(
        cluster=params.get("cluster"),
        task=params["task"],
        status=status,
        reason=params.get("reason"),
        stop_code=stop_code,
        containers=tuple(container_change(c) for c in params.get("containers") or ()),
        pull_started_at=_epoch(params.get("pullStartedAt")),
        pull_stopped_at=_epoch(params.get("pullStoppedAt")),
        execution_stopped_at=_epoch(params.get("executionStoppedAt")),
    )


def container_change(params: Mapping[str, Any]) -> ContainerChange:
    """A ContainerStateChange, or SubmitContainerStateChange's own input."""
    name = params.get("containerName")
    if not name:
        raise InvalidParameterException("containerName is required.")
    status = params.get("status")
    if status is not None and status not in CONTAINER_STATUSES:
        raise InvalidParameterException(
            f"Container {name}: status {status!r} must be PENDING, RUNNING or STOPPED."
        )
    health = params.get("healthStatus")
    bindings = params.get("networkBindings")
    return ContainerChange(
        name=name,
        status=status,
        runtime_id=params.get("runtimeId"),
        exit_code=params.get("exitCode"),
        reason=params.get("reason"),
        network_bindings=tuple(dict(b) for b in bindings) if bindings is not None else None,
        health_status=health if health in HEALTH_STATUSES else None,
        image_digest=params.get("imageDigest"),
    )


def _epoch(value: Any) -> float | None:
    """A timestamp as the model accepts it: epoch seconds, or an ISO 8601 string."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


# The Task shape

_TIMESTAMPS = (
    "pullStartedAt",
    "pullStoppedAt",
    "startedAt",
    "stoppingAt",
    "stoppedAt",
    "executionStoppedAt",
    "connectivityAt",
)
_OPTIONAL = ("stopCode", "stoppedReason", "availabilityZone", "connectivity", "cpu", "memory")
_CONTAINER_FIELDS = (
    "containerArn",
    "name",
    "image",
    "imageDigest",
    "runtimeId",
    "lastStatus",
    "exitCode",
    "reason",
    "networkBindings",
    "healthStatus",
    "cpu",
    "memory",
    "memoryReservation",
)


def task_to_wire(task: Task, tags: Mapping[str, str] | None = None) -> Wire:
    doc = task.document
    wire: Wire = {
        "taskArn": task.arn,
        "clusterArn": task.cluster_arn,
        "taskDefinitionArn": task.task_definition_arn,
        "overrides": doc.get("overrides", {}),
        "lastStatus": task.last_status,
        "desiredStatus": task.desired_status,
        "containers": [_container_to_wire(task, c) for c in doc.get("containers", [])],
        "createdAt": task.created_at,
        "group": task.group,
        "launchType": task.launch_type,
        "version": doc.get("version", 1),
        "attachments": [],
        "healthStatus": task_health(doc.get("containers", [])),
        "enableExecuteCommand": bool(doc.get("enableExecuteCommand", False)),
    }
    if task.container_instance_arn:
        wire["containerInstanceArn"] = task.container_instance_arn
    if task.started_by is not None:
        wire["startedBy"] = task.started_by
    for name in (*_TIMESTAMPS, *_OPTIONAL):
        if doc.get(name) is not None:
            wire[name] = doc[name]
    if tags is not None:
        wire["tags"] = tags_to_wire(tags)
    return wire


def _container_to_wire(task: Task, container: Mapping[str, Any]) -> Wire:
    wire: Wire = {"taskArn": task.arn, "networkInterfaces": []}
    for name in _CONTAINER_FIELDS:
        if container.get(name) is not None:
            wire[name] = container[name]
    wire.setdefault("networkBindings", [])
    return wire


def task_health(containers: Sequence[Mapping[str, Any]]) -> str:
    """ECS's rule: UNHEALTHY if an essential container is; HEALTHY if every essential
    container with a health check is; otherwise UNKNOWN."""
    checked = [c for c in containers if c.get("essential", True) and c.get("hasHealthCheck")]
    health = [c.get("healthStatus", "UNKNOWN") for c in checked]
    if "UNHEALTHY" in health:
        return "UNHEALTHY"
    if health and all(h == "HEALTHY" for h in health):
        return "HEALTHY"
    return "UNKNOWN"
