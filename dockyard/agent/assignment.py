"""What the control plane sends the agent (``Assignment``) and what it reports (``TaskReport``).

The wire form of an assignment is Dockyard's own (the agent channel); reports are
shaped as the input of ECS SubmitTaskStateChange so the control plane can validate them
against botocore's model. ``ContainerDef`` is the engine's typed view of one container
definition: only what ordering and stopping need; ``docker_spec.py`` reads the rest of
the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from typing import Any

from dockyard.agent.status import ContainerStatus, HealthStatus, TaskStatus

# The awsvpc task's network owner, named as the ECS agent names it.
PAUSE_CONTAINER = "~internal~ecs~pause"


class AssignmentError(ValueError):
    """A malformed assignment; the message names the field."""


class Condition(StrEnum):
    """A ``dependsOn`` condition."""

    START = "START"  # the dependency has started
    COMPLETE = "COMPLETE"  # the dependency has exited
    SUCCESS = "SUCCESS"  # the dependency has exited 0
    HEALTHY = "HEALTHY"  # the dependency's health check passed


@dataclass(frozen=True)
class Dependency:
    container: str
    condition: Condition


@dataclass(frozen=True)
class ContainerDef:
    name: str
    image: str
    essential: bool = True
    depends_on: tuple[Dependency, ...] = ()
    # Containers that must exist before this one is created (links, volumesFrom, pause).
    needs_created: tuple[str, ...] = ()
    stop_timeout: float | None = None  # seconds; None: ECS_CONTAINER_STOP_TIMEOUT
    start_timeout: float | None = None  # seconds to meet a condition on this container
    health_check: bool = False
    internal: bool = False  # added by the agent (pause): not reported

    @classmethod
    def from_wire(cls, doc: Mapping[str, Any], where: str) -> ContainerDef:
        name = _string(doc, "name", where)
        links = tuple(str(link).split(":")[0] for link in doc.get("links") or ())
        sources = tuple(
            _string(v, "sourceContainer", f"{where}.volumesFrom")
            for v in doc.get("volumesFrom") or ()
        )
        depends_on: list[Dependency] = []
        for i, item in enumerate(doc.get("dependsOn") or ()):
            at = f"{where}.dependsOn[{i}]"
            try:
                condition = Condition(_string(item, "condition", at))
            except ValueError:
                raise AssignmentError(
                    f"{at}.condition: expected one of {list(Condition)}"
                ) from None
            depends_on.append(Dependency(_string(item, "containerName", at), condition))
        # Docker refuses to start a container linked to one that is not running.
        implicit = [Dependency(link, Condition.START) for link in links]
        return cls(
            name=name,
            image=_string(doc, "image", where),
            essential=bool(doc.get("essential", True)),
            depends_on=_unique((*depends_on, *implicit)),
            needs_created=tuple(dict.fromkeys((*links, *sources))),
            stop_timeout=_seconds(doc.get("stopTimeout"), f"{where}.stopTimeout"),
            start_timeout=_seconds(doc.get("startTimeout"), f"{where}.startTimeout"),
            health_check=bool(doc.get("healthCheck")),
        )


@dataclass(frozen=True)
class Assignment:
    """One task the control plane wants on this instance. ``definition`` is the task
    definition document and ``overrides`` RunTask's; both are read-only."""

    task_arn: str
    cluster_arn: str
    family: str
    revision: int
    desired_status: TaskStatus  # RUNNING or STOPPED
    definition: Mapping[str, Any]
    overrides: Mapping[str, Any] = field(default_factory=dict)
    started_by: str | None = None

    @classmethod
    def from_wire(cls, doc: Mapping[str, Any]) -> Assignment:
        if not isinstance(doc, Mapping):
            raise AssignmentError("assignment: expected an object")
        desired = TaskStatus.from_wire(_string(doc, "desiredStatus", "assignment"))
        if desired not in (TaskStatus.RUNNING, TaskStatus.STOPPED):
            raise AssignmentError("assignment.desiredStatus: expected RUNNING or STOPPED")
        definition = doc.get("taskDefinition")
        if not isinstance(definition, Mapping):
            raise AssignmentError("assignment.taskDefinition: expected an object")
        revision = doc.get("revision")
        if type(revision) is not int:
            raise AssignmentError("assignment.revision: expected an integer")
        assignment = cls(
            task_arn=_string(doc, "taskArn", "assignment"),
            cluster_arn=_string(doc, "clusterArn", "assignment"),
            family=_string(doc, "family", "assignment"),
            revision=revision,
            desired_status=desired,
            definition=dict(definition),
            overrides=dict(doc.get("overrides") or {}),
            started_by=doc.get("startedBy"),
        )
        _ = assignment.containers  # parse the container definitions now, at the edge
        return assignment

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "taskArn": self.task_arn,
            "clusterArn": self.cluster_arn,
            "family": self.family,
            "revision": self.revision,
            "desiredStatus": self.desired_status.wire,
            "taskDefinition": dict(self.definition),
            "overrides": dict(self.overrides),
        }
        if self.started_by is not None:
            wire["startedBy"] = self.started_by
        return wire

    @property
    def network_mode(self) -> str:
        return str(self.definition.get("networkMode") or "bridge")

    @cached_property
    def containers(self) -> tuple[ContainerDef, ...]:
        """The containers the engine runs, in definition order; an awsvpc task's pause
        container first, which every other container needs created and started."""
        docs = self.definition.get("containerDefinitions")
        if not isinstance(docs, list) or not docs:
            raise AssignmentError("taskDefinition.containerDefinitions: expected a non-empty list")
        defs = [ContainerDef.from_wire(d, f"containerDefinitions[{i}]") for i, d in enumerate(docs)]
        if self.network_mode != "awsvpc":
            return tuple(defs)
        pause = ContainerDef(name=PAUSE_CONTAINER, image="", internal=True)
        joined = [
            replace(
                d,
                depends_on=(Dependency(PAUSE_CONTAINER, Condition.START), *d.depends_on),
                needs_created=(PAUSE_CONTAINER, *d.needs_created),
            )
            for d in defs
        ]
        return (pause, *joined)


@dataclass(frozen=True)
class ContainerReport:
    name: str
    runtime_id: str | None
    last_status: ContainerStatus
    exit_code: int | None = None
    reason: str | None = None
    network_bindings: tuple[Mapping[str, Any], ...] = ()  # ECS NetworkBinding objects
    health_status: HealthStatus | None = None  # None: no health check

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"containerName": self.name, "status": self.last_status.wire}
        optional = {
            "runtimeId": self.runtime_id,
            "exitCode": self.exit_code,
            "reason": self.reason,
            "healthStatus": self.health_status.value if self.health_status else None,
        }
        wire.update({key: value for key, value in optional.items() if value is not None})
        if self.network_bindings:
            wire["networkBindings"] = [dict(binding) for binding in self.network_bindings]
        return wire


@dataclass(frozen=True)
class TaskReport:
    task_arn: str
    last_status: TaskStatus
    stop_code: str | None = None
    stopped_reason: str | None = None
    pull_started_at: float | None = None  # epoch seconds
    pull_stopped_at: float | None = None
    execution_stopped_at: float | None = None
    containers: tuple[ContainerReport, ...] = ()
    cluster_arn: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """SubmitTaskStateChange's input. ``stopCode`` and the containers' ``healthStatus``
        are Dockyard's additions (the real service works them out itself); botocore's
        model ignores members it does not know."""
        wire: dict[str, Any] = {
            "task": self.task_arn,
            "status": self.last_status.wire,
            "containers": [container.to_wire() for container in self.containers],
        }
        optional = {
            "cluster": self.cluster_arn,
            "reason": self.stopped_reason,
            "stopCode": self.stop_code,
            "pullStartedAt": self.pull_started_at,
            "pullStoppedAt": self.pull_stopped_at,
            "executionStoppedAt": self.execution_stopped_at,
        }
        wire.update({key: value for key, value in optional.items() if value is not None})
        return wire


def _string(doc: Any, key: str, where: str) -> str:
    value = doc.get(key) if isinstance(doc, Mapping) else None
    if not isinstance(value, str) or not value:
        raise AssignmentError(f"{where}.{key}: expected a non-empty string")
    return value


def _seconds(value: Any, where: str) -> float | None:
    if value is None or value == 0:
        return None
    if type(value) not in (int, float) or value < 0:
        raise AssignmentError(f"{where}: expected a positive number of seconds")
    return float(value)


def _unique(dependencies: tuple[Dependency, ...]) -> tuple[Dependency, ...]:
    """The first condition named for each container wins (an explicit one over a link)."""
    seen: dict[str, Dependency] = {}
    for dependency in dependencies:
        seen.setdefault(dependency.container, dependency)
    return tuple(seen.values())
