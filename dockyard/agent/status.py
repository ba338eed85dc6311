"""Ordered lifecycle enums: a container's and a task's status, known or desired.

Both are ``IntEnum`` so ``<`` means "earlier in the lifecycle". Known status comes from
the runtime and desired status from the control plane; the engine moves each only
forward (``advance``), as the ECS agent does, so a late or repeated observation can
never send a task back.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import TypeVar

_S = TypeVar("_S", "ContainerStatus", "TaskStatus")


class ContainerStatus(IntEnum):
    NONE = 0
    PULLED = 1
    CREATED = 2
    RUNNING = 3
    STOPPED = 4

    @property
    def wire(self) -> str:
        """A container's ``lastStatus`` in ECS: only PENDING, RUNNING and STOPPED exist."""
        if self is ContainerStatus.RUNNING or self is ContainerStatus.STOPPED:
            return self.name
        return "PENDING"

    @property
    def terminal(self) -> bool:
        return self is ContainerStatus.STOPPED

    @classmethod
    def from_runtime(cls, state: str) -> ContainerStatus:
        """Docker's ``State.Status`` as a known status."""
        if state == "created":
            return cls.CREATED
        if state in ("running", "paused", "restarting"):
            return cls.RUNNING
        return cls.STOPPED  # exited, dead, removing

    @classmethod
    def desired_for(cls, task_desired: TaskStatus) -> ContainerStatus:
        """A container wants what its task wants: to run, or to be stopped."""
        return cls.STOPPED if task_desired >= TaskStatus.STOPPING else cls.RUNNING


class TaskStatus(IntEnum):
    """ECS's task ``lastStatus`` values, in lifecycle order.

    The agent reports PROVISIONING (awsvpc: the pause container is being set up),
    PENDING, RUNNING, STOPPING, DEPROVISIONING (awsvpc: the pause container outlives
    the task's containers) and STOPPED. ACTIVATING and DEACTIVATING belong to the
    control plane (load balancer registration), which may add them between.
    """

    PROVISIONING = 0
    PENDING = 1
    ACTIVATING = 2
    RUNNING = 3
    DEACTIVATING = 4
    STOPPING = 5
    DEPROVISIONING = 6
    STOPPED = 7

    @property
    def wire(self) -> str:
        return self.name

    @property
    def terminal(self) -> bool:
        return self is TaskStatus.STOPPED

    @classmethod
    def from_wire(cls, value: str) -> TaskStatus:
        try:
            return cls[value]
        except KeyError:
            expected = ", ".join(status.name for status in cls)
            raise ValueError(f"unknown task status {value!r}: expected one of {expected}") from None


class StopCode(StrEnum):
    """ECS's task ``stopCode`` values; the agent itself decides only the first two."""

    TASK_FAILED_TO_START = "TaskFailedToStart"
    ESSENTIAL_CONTAINER_EXITED = "EssentialContainerExited"
    USER_INITIATED = "UserInitiated"
    SERVICE_SCHEDULER_INITIATED = "ServiceSchedulerInitiated"
    SPOT_INTERRUPTION = "SpotInterruption"
    TERMINATION_NOTICE = "TerminationNotice"


class HealthStatus(StrEnum):
    """A container's ``healthStatus`` in ECS."""

    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def from_runtime(cls, health: str) -> HealthStatus:
        """Docker's ``State.Health.Status`` (starting | healthy | unhealthy)."""
        if health == "healthy":
            return cls.HEALTHY
        if health == "unhealthy":
            return cls.UNHEALTHY
        return cls.UNKNOWN


def advance(current: _S, observed: _S) -> _S:
    """The later of two statuses: statuses move only forward."""
    return observed if observed > current else current
