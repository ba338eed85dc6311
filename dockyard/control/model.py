"""What a service reconciler reads and returns: frozen snapshots in, a frozen plan out.

The loop builds a ``ServiceSnapshot`` from the store (the service, its deployments, its
tasks including recently STOPPED ones, the instances that matter, the clock) and hands
it to ``services.reconcile``; it writes the ``Plan`` back. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from dockyard.scheduler.model import Constraint, Instance, Strategy

Scheduling = Literal["REPLICA", "DAEMON"]
DeploymentStatus = Literal["PRIMARY", "ACTIVE", "INACTIVE"]
RolloutState = Literal["IN_PROGRESS", "COMPLETED", "FAILED"]
Health = Literal["HEALTHY", "UNHEALTHY", "UNKNOWN"]

# The stop code of a task given up because its host was lost (instance_health.py).
HOST_LOST_STOP_CODE = "InfrastructureHealth"
# Stops that say nothing about the task definition: they never count as failures for
# the circuit breaker or the throttle.
NOT_A_FAILURE = frozenset(
    {"UserInitiated", "ServiceSchedulerInitiated", "SpotInterruption", HOST_LOST_STOP_CODE}
)


@dataclass(frozen=True)
class CircuitBreaker:
    enable: bool = False
    rollback: bool = False


@dataclass(frozen=True)
class ServiceSpec:
    """The service as the user configured it. ``min_healthy_percent`` and ``max_percent``
    are already validated and defaulted (``services.validate_deployment_configuration``).
    ``strategies`` empty means the service default (spread over zones, then instances)."""

    arn: str
    name: str
    task_definition_arn: str
    desired_count: int = 0
    scheduling: Scheduling = "REPLICA"
    min_healthy_percent: int = 100
    max_percent: int = 200
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    health_check_grace_seconds: int = 0
    constraints: tuple[Constraint, ...] = ()
    strategies: tuple[Strategy, ...] = ()
    launch_target: str | None = None  # EC2, EXTERNAL or a capacity provider; see Instance.serves

    @property
    def group(self) -> str:
        return f"service:{self.name}"


@dataclass(frozen=True)
class Deployment:
    """An ECS deployment: one task definition the service runs (PRIMARY: the one it is
    moving to; ACTIVE: older ones still draining; INACTIVE: done with)."""

    id: str  # ecs-svc/NNNN
    status: DeploymentStatus
    task_definition_arn: str
    desired_count: int
    rollout_state: RolloutState = "IN_PROGRESS"
    rollout_reason: str = ""
    failed_tasks: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True)
class TaskState:
    """One task of the service. ``health`` is None when no essential container has a
    health check. ``started_at`` is when it reached RUNNING (None: never did);
    ``cpu``/``memory`` are what it holds on its instance (for binpack scale-in)."""

    arn: str
    deployment_id: str
    instance_arn: str | None
    last_status: str  # PROVISIONING, PENDING, ACTIVATING, RUNNING, ..., STOPPED
    desired_status: str = "RUNNING"  # RUNNING or STOPPED
    health: Health | None = None
    started_at: float | None = None
    stopped_at: float | None = None
    stop_code: str | None = None
    cpu: int = 0
    memory: int = 0

    @property
    def stopped(self) -> bool:
        return self.last_status == "STOPPED"

    @property
    def live(self) -> bool:
        """Not stopped and not asked to stop: the service still counts on it."""
        return not self.stopped and self.desired_status == "RUNNING"

    @property
    def running(self) -> bool:
        return self.last_status == "RUNNING" and self.desired_status == "RUNNING"


@dataclass(frozen=True)
class Throttle:
    """What the last plan recorded about start failures of the PRIMARY's task definition
    (kept so the throttle event is emitted once, when throttling begins)."""

    consecutive_failures: int = 0
    next_attempt_at: float | None = None


@dataclass(frozen=True)
class ServiceSnapshot:
    """A consistent view of one service at ``now``.

    - ``tasks``: every task of every PRIMARY/ACTIVE deployment, STOPPED ones included
      for as long as their deployment is not INACTIVE (failure counts are derived from
      them, so dropping them early forgives failures);
    - ``instances``: the scheduler's view of every instance hosting a task of the
      service (remaining resources, attributes), for scale-in; a missing one is treated
      as an instance with nothing free and no attributes;
    - ``eligible_instances`` (DAEMON): ACTIVE, connected instances of the launch target
      that satisfy the constraints; ``draining_instances``: DRAINING ones;
      ``lost_instances``: instances whose agent was lost (tasks there stopped by the
      loop are replaced, never counted as failures);
    - ``steady``: whether the last plan said steady state (events fire on the change);
    - ``seed``: for the uniform draws among tied scale-in candidates.
    """

    service: ServiceSpec
    deployments: tuple[Deployment, ...]
    tasks: tuple[TaskState, ...]
    now: float
    instances: Mapping[str, Instance] = field(default_factory=dict)
    eligible_instances: tuple[str, ...] = ()
    draining_instances: frozenset[str] = frozenset()
    lost_instances: frozenset[str] = frozenset()
    throttle: Throttle = Throttle()
    steady: bool = False
    seed: int = 0


@dataclass(frozen=True)
class Start:
    """Start ``count`` tasks of a deployment; DAEMON plans name the instance."""

    deployment_id: str
    task_definition_arn: str
    count: int = 1
    instance_arn: str | None = None


@dataclass(frozen=True)
class Stop:
    task_arn: str
    reason: str  # stoppedReason; the stop code is ServiceSchedulerInitiated


@dataclass(frozen=True)
class DeploymentUpdate:
    """Fields of one deployment to change; None leaves a field as it is."""

    deployment_id: str
    status: DeploymentStatus | None = None
    rollout_state: RolloutState | None = None
    rollout_reason: str | None = None
    failed_tasks: int | None = None
    desired_count: int | None = None


@dataclass(frozen=True)
class Plan:
    """What to do now. ``rollback_to``: the deployment the circuit breaker restored (the
    service's task definition becomes its one). ``throttle_until``: no task of the
    PRIMARY starts before then. ``wake_at``: the earliest time at which the passing of
    time alone changes the plan (end of throttle or of a grace period); None: only a
    change in the snapshot does."""

    start: tuple[Start, ...] = ()
    stop: tuple[Stop, ...] = ()
    deployment_updates: tuple[DeploymentUpdate, ...] = ()
    events: tuple[str, ...] = ()
    rollback_to: str | None = None
    throttle: Throttle = Throttle()
    throttle_until: float | None = None
    steady: bool = False
    wake_at: float | None = None

    @property
    def start_count(self) -> int:
        return sum(s.count for s in self.start)
