"""The store, read as one service's ``ServiceSnapshot`` (``read_service``).

What the reconciler needs and where it comes from:

- the spec: ``Service.document`` (the API's normalised CreateService/UpdateService
  fields), with the deployment configuration defaulted as the API validated it;
- deployments: every one that is not INACTIVE, plus the newest COMPLETED INACTIVE one,
  the circuit breaker's rollback target when no live deployment completed;
- tasks: the group's unstopped tasks and the STOPPED ones of the live deployments
  (``store.tasks.of_group``); health from the essential containers with a health check;
- instances: the placement engine's snapshot of the cluster (``placement_snapshot``),
  so scale-in, DAEMON eligibility and the starts all see instances the same way;
- lost instances: agent-managed instances silent longer than the lost-host grace
  (``instance_health.is_lost``), whose stopped tasks are no failures;
- throttle and steady: ``Service.state``, as the last plan left it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from dockyard.control.instance_health import is_lost
from dockyard.control.model import (
    CircuitBreaker,
    Deployment,
    DeploymentStatus,
    Health,
    RolloutState,
    Scheduling,
    ServiceSnapshot,
    ServiceSpec,
    TaskState,
    Throttle,
)
from dockyard.control.services import validate_deployment_configuration
from dockyard.ecs import arns
from dockyard.ecs.placement_snapshot import needs, snapshot
from dockyard.ecs.task_demand import placement_demand, task_resources
from dockyard.ecs.task_maker import NO_OVERRIDES
from dockyard.scheduler.filters import CPU, DISTINCT_INSTANCE, GPU, MEMORY, PORTS, Feasibility
from dockyard.scheduler.model import (
    Constraint,
    Instance,
    Strategy,
    TaskDemand,
    combine_constraints,
    parse_constraints,
    parse_strategies,
)
from dockyard.scheduler.placement import default_strategies
from dockyard.store.models import (
    ContainerInstance,
    Service,
    ServiceDeployment,
    Task,
    TaskDefinition,
)
from dockyard.store.store import Store

# Refusals that do not make an instance ineligible for a DAEMON task it already holds:
# that task's own resources (and its group) are what the instance lacks.
_HELD = frozenset({CPU, MEMORY, GPU, PORTS, DISTINCT_INSTANCE})
_INSTANCE_PAGE = 1000


@dataclass(frozen=True)
class ServiceRead:
    """One service as read at ``snapshot.now``, with what executing its plan needs."""

    service: Service
    deployments: tuple[ServiceDeployment, ...]  # all of them, newest first
    snapshot: ServiceSnapshot
    tasks: Mapping[str, Task]  # by ARN: the tasks in the snapshot
    definitions: Mapping[str, TaskDefinition]  # by ARN: those of the live deployments
    constraints: tuple[Constraint, ...]  # the service's own (task definitions add theirs)
    strategies: tuple[Strategy, ...]  # never empty: the service default filled in


def read_service(
    store: Store,
    service: Service,
    deployments: Sequence[ServiceDeployment],
    *,
    now: float,
    agent_timeout: float,
    lost_host_grace: float,
    watching_since: float = 0.0,
) -> ServiceRead:
    """``service`` and its ``deployments`` (read together) and the rest from the store.
    ``watching_since``: when the server started (see ``instance_health.is_lost``)."""
    doc = service.document
    group = f"service:{service.name}"
    constraints = parse_constraints(doc.get("placementConstraints"))
    strategies = parse_strategies(doc.get("placementStrategy")) or default_strategies(group)
    spec = service_spec(service, constraints, strategies)
    kept = _kept(deployments)
    definitions = {}
    for d in kept:
        found = task_definition(store, d.task_definition_arn)
        if found is not None:
            definitions[found.arn] = found
    live = [d.id for d in kept if d.status != "INACTIVE"]
    ours = {d.id for d in deployments}  # a RunTask may name the group too: not ours
    grouped = store.tasks.of_group(service.cluster_arn, group, stopped_of=live)
    tasks = [t for t in grouped if t.started_by in ours]
    primary = next((d for d in kept if d.status == "PRIMARY"), None)
    definition = definitions.get(primary.task_definition_arn) if primary else None
    demand = service_demand(definition, group) if definition else TaskDemand(group=group)
    all_constraints = _with_definition(definition, constraints)
    cluster = snapshot(
        store,
        service.cluster_arn,
        needs(demand, all_constraints, strategies),
        now=now,
        agent_timeout=agent_timeout,
    )
    rows = _instance_rows(store, service.cluster_arn)
    hosting = {t.container_instance_arn for t in tasks if t.container_instance_arn}
    instances = {i.arn: i for i in cluster.instances if i.arn in hosting}
    holding = {t.container_instance_arn for t in tasks if t.last_status != "STOPPED"}
    eligible: tuple[str, ...] = ()
    if spec.scheduling == "DAEMON":  # a missing definition: its starts fail, loudly
        feasibility = Feasibility(demand, all_constraints)
        eligible = tuple(
            i.arn for i in cluster.instances if _eligible(feasibility, i, i.arn in holding)
        )
    state = service.state
    throttle = state.get("throttle") or {}
    snap = ServiceSnapshot(
        service=spec,
        deployments=tuple(_deployment(d) for d in kept),
        tasks=tuple(task_state(t) for t in tasks),
        now=now,
        instances=instances,
        eligible_instances=eligible,
        draining_instances=frozenset(i.arn for i in rows.values() if i.status == "DRAINING"),
        lost_instances=frozenset(
            arn
            for arn in hosting
            if (row := rows.get(arn)) is not None
            and is_lost(row, now, lost_host_grace, watching_since=watching_since)
        ),
        throttle=Throttle(
            int(throttle.get("consecutiveFailures") or 0), throttle.get("nextAttemptAt")
        ),
        steady=bool(state.get("steady", False)),
        seed=service.version,
    )
    return ServiceRead(
        service=service,
        deployments=tuple(deployments),
        snapshot=snap,
        tasks={t.arn: t for t in tasks},
        definitions=definitions,
        constraints=constraints,
        strategies=strategies,
    )


def service_spec(
    service: Service, constraints: tuple[Constraint, ...], strategies: tuple[Strategy, ...]
) -> ServiceSpec:
    doc = service.document
    scheduling: Scheduling = "DAEMON" if doc.get("schedulingStrategy") == "DAEMON" else "REPLICA"
    config = doc.get("deploymentConfiguration") or {}
    low, high = validate_deployment_configuration(
        scheduling, config.get("minimumHealthyPercent"), config.get("maximumPercent")
    )
    breaker = config.get("deploymentCircuitBreaker") or {}
    return ServiceSpec(
        arn=service.arn,
        name=service.name,
        task_definition_arn=str(doc.get("taskDefinition", "")),
        desired_count=int(doc.get("desiredCount") or 0),
        scheduling=scheduling,
        min_healthy_percent=low,
        max_percent=high,
        circuit_breaker=CircuitBreaker(
            enable=bool(breaker.get("enable")), rollback=bool(breaker.get("rollback"))
        ),
        health_check_grace_seconds=int(doc.get("healthCheckGracePeriodSeconds") or 0),
        constraints=constraints,
        strategies=strategies,
        # Like RunTask: every Dockyard instance runs EC2 and EXTERNAL tasks alike.
        launch_target=None,
    )


def service_demand(definition: TaskDefinition, group: str) -> TaskDemand:
    resources = task_resources(definition.document, NO_OVERRIDES)
    return placement_demand(resources, definition.document, definition.family, group)


def definition_constraints(definition: TaskDefinition) -> tuple[Constraint, ...]:
    return parse_constraints(
        definition.document.get("placementConstraints"),
        "taskDefinition.placementConstraints",
        in_task_definition=True,
    )


def _with_definition(
    definition: TaskDefinition | None, constraints: tuple[Constraint, ...]
) -> tuple[Constraint, ...]:
    if definition is None:
        return constraints
    return combine_constraints(definition_constraints(definition), constraints)


def task_definition(store: Store, arn: str) -> TaskDefinition | None:
    parsed = arns.parse(arn)
    if parsed is None or parsed.kind != "task-definition":
        return None
    family, _, revision = parsed.resource.rpartition(":")
    if not revision.isdigit():
        return None
    return store.get_task_definition(parsed.account_id, parsed.region, family, int(revision))


def task_state(task: Task) -> TaskState:
    doc = task.document
    return TaskState(
        arn=task.arn,
        deployment_id=task.started_by or "",
        instance_arn=task.container_instance_arn,
        last_status=task.last_status,
        desired_status=task.desired_status,
        health=health(doc.get("containers") or []),
        started_at=doc.get("startedAt"),
        stopped_at=doc.get("stoppedAt"),
        stop_code=doc.get("stopCode"),
        cpu=task.resources.cpu,
        memory=task.resources.memory,
    )


def health(containers: Sequence[Mapping[str, Any]]) -> Health | None:
    """ECS's task health (UNHEALTHY if an essential container is, HEALTHY if all that are
    checked are, else UNKNOWN); None when no essential container has a health check."""
    checked = [c for c in containers if c.get("essential", True) and c.get("hasHealthCheck")]
    if not checked:
        return None
    states = [c.get("healthStatus") or "UNKNOWN" for c in checked]
    if "UNHEALTHY" in states:
        return "UNHEALTHY"
    if all(s == "HEALTHY" for s in states):
        return "HEALTHY"
    return "UNKNOWN"


def _kept(deployments: Sequence[ServiceDeployment]) -> list[ServiceDeployment]:
    """The live deployments and the newest COMPLETED INACTIVE one (rollback target)."""
    live = [d for d in deployments if d.status != "INACTIVE"]
    done = [d for d in deployments if d.status == "INACTIVE" and d.rollout_state == "COMPLETED"]
    if done:
        live.append(max(done, key=lambda d: (d.updated_at, d.created_at)))
    return live


def _deployment(d: ServiceDeployment) -> Deployment:
    return Deployment(
        id=d.id,
        status=cast(DeploymentStatus, d.status),  # the store writes only these
        task_definition_arn=d.task_definition_arn,
        desired_count=d.desired_count,
        rollout_state=cast(RolloutState, d.rollout_state),
        rollout_reason=d.rollout_reason,
        failed_tasks=d.failed_tasks,
        created_at=d.created_at,
        updated_at=d.updated_at,
    )


def _eligible(feasibility: Feasibility, instance: Instance, holds_one: bool) -> bool:
    """A DAEMON may run here: ACTIVE, agent connected, the attributes and constraints
    satisfied, and room for the task unless it already holds one of the service's."""
    reasons = feasibility.refusals(instance, instance.remaining, 0)
    if holds_one:
        reasons = [r for r in reasons if r not in _HELD]
    return not reasons


def _instance_rows(store: Store, cluster_arn: str) -> dict[str, ContainerInstance]:
    """The cluster's instances that are not INACTIVE, by ARN."""
    found: dict[str, ContainerInstance] = {}
    after: str | None = None
    while True:
        page = store.list_container_instances(
            cluster_arn, status=None, after=after, limit=_INSTANCE_PAGE
        )
        found.update((i.arn, i) for i in page.items)
        if page.next_key is None:
            return found
        after = page.next_key
