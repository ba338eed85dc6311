"""A service's plan, written to the store (``execute``), and a deleted service's tasks
stopped (``drain``).

The order matters:

1. the service's own row first (deployment updates, a rollback's task definition, the
   throttle and steady state), under its row lock and only if nothing wrote the
   service since it was read: a plan made on a stale read is dropped whole and made
   again (``Outcome.stale``), so an UpdateService in between is never undone;
2. the plan's events;
3. stops: desired STOPPED with stop code ServiceSchedulerInitiated (STOPPED at once
   when no agent has the task, as StopTask does);
4. starts, through the placement engine as RunTask (REPLICA: the service's
   constraints and strategies) and StartTask (DAEMON: the instance the plan names)
   place them; what cannot be placed becomes the "unable to place a task" event;
5. the agents of the instances that got starts or stops are woken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dockyard.api.context import RequestContext
from dockyard.api.errors import InvalidParameterException
from dockyard.control.model import DeploymentUpdate, Plan, Start, Stop
from dockyard.control.services import started_event, unable_to_place_event
from dockyard.control.snapshot import ServiceRead, definition_constraints, service_demand
from dockyard.ecs.task_demand import task_resources
from dockyard.ecs.task_lifecycle import stop
from dockyard.ecs.task_maker import NO_OVERRIDES, TaskMaker
from dockyard.ecs.task_placement import run_placement, start_placement
from dockyard.scheduler.model import Failure, combine_constraints
from dockyard.store.models import Cluster, Service, ServiceDeployment, Task, TaskDefinition

STOP_CODE = "ServiceSchedulerInitiated"
MANAGED_SERVICE_TAG = "aws:ecs:serviceName"
MANAGED_CLUSTER_TAG = "aws:ecs:clusterName"


@dataclass
class Outcome:
    """What executing a plan did. ``stale``: nothing was written, read again and
    re-plan. ``settled_now``: some stops took effect at once (STOPPED), so the next
    plan differs and should be made without waiting for a report."""

    stale: bool = False
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    settled_now: bool = False


def execute(ctx: RequestContext, read: ServiceRead, plan: Plan) -> Outcome:
    service = read.service
    if not _write_service(ctx, read, plan):
        return Outcome(stale=True)
    if plan.start and not _state_written(plan, read) and _moved_on(ctx, service):
        return Outcome(stale=True)  # the plan's starts were made for an older service
    ctx.store.services.add_events(service.arn, plan.events, ctx.now)
    outcome = Outcome()
    touched = _stop(ctx, read, plan.stop, outcome)
    if plan.start:
        touched |= _start(ctx, read, plan.start, outcome)
    ctx.agents.notify(sorted(touched))
    return outcome


def drain(ctx: RequestContext, read: ServiceRead) -> bool:
    """A DRAINING service (DeleteService): stop every task; once none is left that is
    not STOPPED the service becomes INACTIVE. Returns whether it did."""
    primary = next((d for d in read.deployments if d.status == "PRIMARY"), None)
    reason = f"Scaling activity initiated by (deployment {primary.id})" if primary else (
        "Service deleted"
    )  # fmt: skip
    live = [t for t in read.tasks.values() if t.last_status != "STOPPED"]
    outcome = Outcome()
    touched = _stop(ctx, read, [Stop(t.arn, reason) for t in live], outcome)
    ctx.agents.notify(sorted(touched))
    left = ctx.store.tasks.get_many(t.arn for t in live)
    if any(t.last_status != "STOPPED" for t in left.values()):
        return False

    def inactive(
        current: Service, _: Sequence[ServiceDeployment]
    ) -> tuple[Service, list[ServiceDeployment]] | None:
        if current.status != "DRAINING":
            return None
        return replace(current, status="INACTIVE", updated_at=ctx.now), []

    done = ctx.store.services.update(read.service.arn, inactive)
    return done is not None and done[0].status == "INACTIVE"


# 1. The service's row


def _state(plan: Plan) -> dict[str, Any]:
    return {
        "throttle": {
            "consecutiveFailures": plan.throttle.consecutive_failures,
            "nextAttemptAt": plan.throttle.next_attempt_at,
        },
        "steady": plan.steady,
    }


def _state_written(plan: Plan, read: ServiceRead) -> bool:
    return bool(plan.deployment_updates or plan.rollback_to) or _changed_state(plan, read)


def _changed_state(plan: Plan, read: ServiceRead) -> bool:
    state = read.service.state
    return any(state.get(k) != v for k, v in _state(plan).items())


def _write_service(ctx: RequestContext, read: ServiceRead, plan: Plan) -> bool:
    """False when the service changed since it was read (or is gone): nothing written."""
    service, now = read.service, ctx.now
    by_id = {d.id: d for d in read.deployments}
    changed = [_updated(by_id[u.deployment_id], u, now) for u in plan.deployment_updates]
    primary = next((d for d in changed if d.status == "PRIMARY"), None)
    primary = primary or next((d for d in read.deployments if d.status == "PRIMARY"), None)
    if primary is not None and "startedAt" not in primary.document:
        started = replace(primary, document={**primary.document, "startedAt": now})
        changed = [d for d in changed if d.id != primary.id] + [started]
    document = service.document
    if plan.rollback_to is not None:
        target = by_id[plan.rollback_to]
        document = {**document, "taskDefinition": target.task_definition_arn}
    if not changed and not plan.rollback_to and not _changed_state(plan, read):
        return True
    state = {**service.state, **_state(plan)}
    stale = False

    def write(
        current: Service, _: Sequence[ServiceDeployment]
    ) -> tuple[Service, list[ServiceDeployment]] | None:
        nonlocal stale
        if current.version != service.version:
            stale = True
            return None
        return replace(current, document=document, state=state), changed

    done = ctx.store.services.update(service.arn, write)
    return done is not None and not stale


def _updated(d: ServiceDeployment, u: DeploymentUpdate, now: float) -> ServiceDeployment:
    fields = {
        name: value
        for name in ("status", "rollout_state", "rollout_reason", "failed_tasks", "desired_count")
        if (value := getattr(u, name)) is not None
    }
    document = dict(d.document)
    if u.rollout_state in ("COMPLETED", "FAILED"):
        document["finishedAt"] = now
    elif u.rollout_state == "IN_PROGRESS":  # a rollback restored it
        document.pop("finishedAt", None)
    return replace(d, **fields, updated_at=now, document=document)


def _moved_on(ctx: RequestContext, service: Service) -> bool:
    current = ctx.store.services.get(service.arn)
    return current is None or current.version != service.version


# 3. Stops


def _stop(
    ctx: RequestContext, read: ServiceRead, stops: Sequence[Stop], outcome: Outcome
) -> set[str]:
    """Desired STOPPED; the instances whose agents must hear of it."""
    if not stops:
        return set()
    reasons = {s.task_arn: s.reason for s in stops}
    lost = read.snapshot.lost_instances

    def stopping(task: Task) -> Task | None:
        # No agent has it, or none is left to stop it: STOPPED now.
        at_once = task.picked_up_at is None or task.container_instance_arn in lost
        return stop(task, reasons[task.arn], STOP_CODE, ctx.now, at_once=at_once)

    changed = ctx.store.tasks.update(reasons, stopping)
    outcome.stopped += [after.arn for _, after in changed]
    outcome.settled_now |= any(after.last_status == "STOPPED" for _, after in changed)
    return {a.container_instance_arn for _, a in changed if a.container_instance_arn}


# 4. Starts


def _start(
    ctx: RequestContext, read: ServiceRead, starts: Sequence[Start], outcome: Outcome
) -> set[str]:
    service = read.service
    cluster = _cluster(ctx, service)
    if cluster is None:
        return set()
    placed: list[Task] = []
    failures: list[Failure | None] = []
    daemons: dict[str, list[str]] = {}
    for start in starts:
        definition = read.definitions.get(start.task_definition_arn)
        if definition is None:
            _event_once(ctx, service, _missing_definition(service, start.task_definition_arn))
            continue
        if start.instance_arn is not None:  # DAEMON: grouped per deployment below
            daemons.setdefault(start.deployment_id, []).append(start.instance_arn)
            continue
        new, failed = _place(ctx, read, cluster, start, definition)
        placed += new
        failures += failed
    for deployment_id, instance_arns in daemons.items():
        start = next(s for s in starts if s.deployment_id == deployment_id)
        definition = read.definitions[start.task_definition_arn]
        new, failed = _place(ctx, read, cluster, start, definition, instance_arns)
        placed += new
        failures += failed
    if placed:
        tags = _tags(ctx, service, cluster)
        for task in placed:
            definition = read.definitions[task.task_definition_arn]
            ctx.store.put_tags(task.arn, {**tags(definition)})
        message = started_event(service.name, [t.arn for t in placed])
        ctx.store.services.add_events(service.arn, [message], ctx.now)
    if failures:
        _event_once(ctx, service, unable_to_place_event(service.name, failures[0]))
    outcome.started += [t.arn for t in placed]
    return {t.container_instance_arn for t in placed if t.container_instance_arn}


def _place(
    ctx: RequestContext,
    read: ServiceRead,
    cluster: Cluster,
    start: Start,
    definition: TaskDefinition,
    instance_arns: Sequence[str] | None = None,
) -> tuple[list[Task], list[Failure | None]]:
    """Place a Start (or a DAEMON deployment's Starts); the failures to report, None
    meaning there was no instance at all."""
    service = read.service
    group = f"service:{service.name}"
    demand = service_demand(definition, group)
    constraints = combine_constraints(definition_constraints(definition), read.constraints)
    resources = task_resources(definition.document, NO_OVERRIDES)
    launch_type = service.document.get("launchType") or "EC2"
    execute_command = bool(service.document.get("enableExecuteCommand"))

    new_task = TaskMaker(
        ctx, cluster, definition, resources, launch_type,
        group=group, started_by=start.deployment_id, enable_execute_command=execute_command,
    )  # fmt: skip
    if instance_arns is not None:
        new, failed = start_placement(
            ctx, cluster.arn, demand, constraints, instance_arns, new_task
        )
        return new, list(failed)
    try:
        new, failed = run_placement(
            ctx, cluster.arn, demand, start.count, constraints, read.strategies, new_task
        )
    except InvalidParameterException:  # no instance at all in the cluster
        return [], [None]
    if len(new) < start.count:
        return new, list(failed) or [None]
    return new, []


def _cluster(ctx: RequestContext, service: Service) -> Cluster | None:
    name = service.cluster_arn.rpartition("/")[2]
    return ctx.store.get_cluster(service.account_id, service.region, name)


def _tags(
    ctx: RequestContext, service: Service, cluster: Cluster
) -> Callable[[TaskDefinition], dict[str, str]]:
    """A new task's tags: propagated from the service or its task definition, and ECS's
    managed tags when enableECSManagedTags."""
    doc = service.document
    own: dict[str, str] = {}
    if doc.get("propagateTags") == "SERVICE":
        own = ctx.store.get_tags(service.arn)
    if doc.get("enableECSManagedTags"):
        own = {**own, MANAGED_SERVICE_TAG: service.name, MANAGED_CLUSTER_TAG: cluster.name}
    by_definition: dict[str, dict[str, str]] = {}

    def tags(definition: TaskDefinition) -> dict[str, str]:
        if doc.get("propagateTags") != "TASK_DEFINITION":
            return own
        if definition.arn not in by_definition:
            by_definition[definition.arn] = {**ctx.store.get_tags(definition.arn), **own}
        return by_definition[definition.arn]

    return tags


# Events


def _missing_definition(service: Service, arn: str) -> str:
    return (
        f"(service {service.name}) was unable to start tasks: task definition {arn} no "
        "longer exists; update the service to a registered revision."
    )


def _event_once(ctx: RequestContext, service: Service, message: str) -> None:
    """Record ``message`` unless it is already the service's newest event: a start that
    cannot be placed is retried on every pass, and one event says it."""
    newest = ctx.store.services.events(service.arn, limit=1)
    if newest and newest[0].message == message:
        return
    ctx.store.services.add_events(service.arn, [message], ctx.now)
