"""The service reconciler: ``reconcile(snapshot) -> Plan``. Pure: the loop builds the
snapshot, places the starts with the scheduler and writes the plan.

Each call re-derives everything from the snapshot (tasks, STOPPED ones included), so it
is idempotent: calling it twice on the same snapshot gives the same plan, and a plan
lost half-written is simply made again. See README.md for the rules and references.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from dockyard.control.model import (
    HOST_LOST_STOP_CODE,
    Deployment,
    DeploymentUpdate,
    Plan,
    ServiceSnapshot,
    Start,
    Stop,
    TaskState,
    Throttle,
)
from dockyard.scheduler.model import Failure, Instance, Resources, RunningTask
from dockyard.scheduler.placement import default_strategies, select_for_scale_in

# Throttle: "the time between subsequent restart attempts is incrementally increased up
# to 15 minutes"; ECS gives no steps, so: from the 3rd consecutive start failure,
# 15 s doubling each time.
THROTTLE_AFTER = 3
THROTTLE_BASE_SECONDS = 15.0
THROTTLE_CAP_SECONDS = 15 * 60.0
# Circuit breaker: "minimum threshold of 3 and a maximum threshold of 200 ... 0.5 *
# desired task count".
BREAKER_MIN, BREAKER_MAX = 3, 200
FAILURE_STOP_CODES = frozenset({"TaskFailedToStart", "EssentialContainerExited"})
HEALTH_CHECK_FAILED = "Task failed container health checks"


class ServiceConfigError(ValueError):
    """A deploymentConfiguration ECS refuses (InvalidParameterException)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def validate_deployment_configuration(
    scheduling: str, minimum_healthy_percent: int | None, maximum_percent: int | None
) -> tuple[int, int]:
    """ECS's defaults filled in (REPLICA 100/200, DAEMON 0/100) and its rules checked;
    returns (minimumHealthyPercent, maximumPercent)."""
    daemon = scheduling == "DAEMON"
    low = minimum_healthy_percent if minimum_healthy_percent is not None else (0 if daemon else 100)
    high = maximum_percent if maximum_percent is not None else (100 if daemon else 200)
    if not 0 <= low <= 100:
        raise ServiceConfigError(
            f"deploymentConfiguration.minimumHealthyPercent must be between 0 and 100, not {low}"
        )
    if daemon and high != 100:
        raise ServiceConfigError(
            "deploymentConfiguration.maximumPercent must be 100 for a service with the "
            f"DAEMON scheduling strategy, not {high}"
        )
    if high < 100:
        raise ServiceConfigError(
            f"deploymentConfiguration.maximumPercent must be at least 100, not {high}"
        )
    return low, high


def replica_bounds(desired: int, minimum_percent: int, maximum_percent: int) -> tuple[int, int]:
    """(fewest healthy tasks, most tasks) during a deployment: the minimum rounds up, the
    maximum down. Where they leave no room to move (desired 1 at 50/150 gives 1 and 1)
    Dockyard allows one extra task rather than stall the deployment as ECS does."""
    low = -(-desired * minimum_percent // 100)
    high = desired * maximum_percent // 100
    if desired > 0 and low >= desired and high <= desired:
        high = desired + 1
    return low, high


def circuit_breaker_threshold(desired: int) -> int:
    return min(BREAKER_MAX, max(BREAKER_MIN, -(-desired // 2)))


def throttle_delay(consecutive_failures: int) -> float:
    if consecutive_failures < THROTTLE_AFTER:
        return 0.0
    step = THROTTLE_BASE_SECONDS * 2.0 ** (consecutive_failures - THROTTLE_AFTER)
    return min(THROTTLE_CAP_SECONDS, step)


# Service events, in ECS's words.


def task_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def steady_state_event(service: str) -> str:
    return f"(service {service}) has reached a steady state."


def started_event(service: str, task_arns: Sequence[str]) -> str:
    """For the loop, once it knows the ARNs of the tasks it started."""
    listed = " ".join(f"(task {task_id(a)})" for a in task_arns)
    return f"(service {service}) has started {len(task_arns)} tasks: {listed}."


def stopped_event(service: str, task_arns: Sequence[str]) -> str:
    listed = " ".join(f"(task {task_id(a)})" for a in task_arns)
    return f"(service {service}) has stopped {len(task_arns)} running tasks: {listed}."


def throttled_event(service: str) -> str:
    return f"(service {service}) is unable to consistently start tasks successfully."


_CLOSEST = {
    "RESOURCE:MEMORY": "has insufficient memory available.",
    "RESOURCE:CPU": "has insufficient CPU units available.",
    "RESOURCE:GPU": "has insufficient GPU units available.",
    "RESOURCE:PORTS": "is already using a port required by your task.",
    "ATTRIBUTE": "is missing an attribute required by your task.",
}


def unable_to_place_event(service: str, failure: Failure | None) -> str:
    """The event for a start the scheduler could not place; ``failure`` None means no
    candidate instance at all. Dockyard appends the closest instance's full detail."""
    head = f"(service {service}) was unable to place a task because no container instance"
    if failure is None:
        return f"{head} met all of its requirements. Reason: No Container Instances were found in your cluster."  # noqa: E501
    what = _CLOSEST.get(failure.reason, f"encountered error {failure.reason!r}.")
    return (
        f"{head} met all of its requirements. The closest matching (container-instance "
        f"{task_id(failure.arn)}) {what} For more information, see the Troubleshooting "
        f"section. {failure.detail}"
    ).rstrip()


# The reconciler.


class _Plan:
    """The plan being built; ``gone`` are tasks stopped by this plan."""

    def __init__(self, snap: ServiceSnapshot) -> None:
        self.snap = snap
        self.starts: list[Start] = []
        self.stops: list[Stop] = []
        self.gone: set[str] = set()
        self.updates: dict[str, DeploymentUpdate] = {}
        self.events: list[str] = []
        self.wake: list[float] = []

    def stop(self, task: TaskState, reason: str) -> None:
        if task.arn not in self.gone:
            self.gone.add(task.arn)
            self.stops.append(Stop(task.arn, reason))

    def update(self, deployment_id: str, **fields: Any) -> None:
        old = self.updates.get(deployment_id, DeploymentUpdate(deployment_id))
        self.updates[deployment_id] = replace(old, **fields)


def reconcile(snap: ServiceSnapshot) -> Plan:
    """What to start and stop now, the deployments' new states and the events to record."""
    service = snap.service
    plan = _Plan(snap)
    primary = next((d for d in snap.deployments if d.status == "PRIMARY"), None)
    if primary is None:  # nothing to run: everything goes
        for t in snap.tasks:
            if t.live:
                plan.stop(t, "Service has no primary deployment")
        return _finish(plan, Throttle(), None, settled=False, rollback=None)
    daemon = service.scheduling == "DAEMON"
    desired = len(snap.eligible_instances) if daemon else service.desired_count
    if primary.desired_count != desired:
        plan.update(primary.id, desired_count=desired)
    primary, rollback = _circuit_breaker(plan, primary, desired)
    throttle, throttled_until = _throttle(plan, primary)
    launch = primary.rollout_state != "FAILED" and throttled_until is None
    settled = (_daemons if daemon else _replicas)(plan, primary, launch)
    if settled and primary.rollout_state == "IN_PROGRESS":
        plan.update(primary.id, rollout_state="COMPLETED", rollout_reason=_completed(primary))
        plan.events.append(
            f"(service {service.name}) (deployment {primary.id}) deployment completed."
        )
    if settled:
        for d in snap.deployments:
            if d.status == "ACTIVE" and d.id != primary.id:
                plan.update(d.id, status="INACTIVE")
    return _finish(plan, throttle, throttled_until, settled=settled, rollback=rollback)


def _finish(
    plan: _Plan, throttle: Throttle, until: float | None, *, settled: bool, rollback: str | None
) -> Plan:
    snap = plan.snap
    if plan.stops:
        plan.events.append(stopped_event(snap.service.name, [s.task_arn for s in plan.stops]))
    if settled and not snap.steady:
        plan.events.append(steady_state_event(snap.service.name))
    wake = [w for w in plan.wake if w > snap.now]
    return Plan(
        start=tuple(plan.starts),
        stop=tuple(plan.stops),
        deployment_updates=tuple(plan.updates.values()),
        events=tuple(plan.events),
        rollback_to=rollback,
        throttle=throttle,
        throttle_until=until,
        steady=settled,
        wake_at=min(wake, default=None),
    )


def _completed(d: Deployment) -> str:
    return f"ECS deployment {d.id} completed."


def _failed(task: TaskState, lost: frozenset[str]) -> bool:
    """A task that counts against its task definition: it could not start, its
    essential container exited, or it failed its health check. Host loss is not, even
    once the instance is back or gone (its last health said nothing about the task)."""
    if not task.stopped or task.instance_arn in lost or task.stop_code == HOST_LOST_STOP_CODE:
        return False
    return task.stop_code in FAILURE_STOP_CODES or task.health == "UNHEALTHY"


def _circuit_breaker(
    plan: _Plan, primary: Deployment, desired: int
) -> tuple[Deployment, str | None]:
    """Counts the PRIMARY's consecutive failures (a task healthy now forgives those
    before it started) and trips at the threshold; with rollback, the last COMPLETED
    deployment becomes PRIMARY again. Returns the PRIMARY for the rest of the tick."""
    snap, name = plan.snap, plan.snap.service.name
    mine = [t for t in snap.tasks if t.deployment_id == primary.id]
    forgiven = max((t.started_at or 0.0 for t in mine if _healthy(t)), default=float("-inf"))
    failed = sum(1 for t in mine if _failed(t, snap.lost_instances) and _at(t) > forgiven)
    if failed != primary.failed_tasks:
        plan.update(primary.id, failed_tasks=failed)
    breaker = snap.service.circuit_breaker
    if not (breaker.enable and primary.rollout_state == "IN_PROGRESS"):
        return primary, None
    if failed < circuit_breaker_threshold(desired):
        return primary, None
    reason = "ECS deployment circuit breaker: tasks failed to start."
    plan.update(primary.id, rollout_state="FAILED", rollout_reason=reason)
    plan.events.append(
        f"(service {name}) (deployment {primary.id}) deployment failed: tasks failed to start."
    )
    completed = [
        d for d in snap.deployments if d.id != primary.id and d.rollout_state == "COMPLETED"
    ]
    if not breaker.rollback or not completed:
        return _with(primary, rollout_state="FAILED"), None
    last = max(completed, key=lambda d: (d.updated_at, d.created_at))
    back = f"ECS deployment circuit breaker: rolling back to deploymentId {last.id}."
    plan.update(primary.id, status="ACTIVE")
    plan.update(
        last.id, status="PRIMARY", rollout_state="IN_PROGRESS", rollout_reason=back,
        desired_count=desired, failed_tasks=0,
    )  # fmt: skip
    plan.events.append(f"(service {name}) rolling back to deployment {last.id}.")
    restored = _with(last, status="PRIMARY", rollout_state="IN_PROGRESS", desired_count=desired)
    return restored, last.id


def _with(d: Deployment, **fields: Any) -> Deployment:
    return replace(d, **fields)


def _at(task: TaskState) -> float:
    return task.stopped_at if task.stopped_at is not None else 0.0


def _throttle(plan: _Plan, primary: Deployment) -> tuple[Throttle, float | None]:
    """Consecutive start failures (PENDING -> STOPPED) of the PRIMARY's task definition
    since one of its tasks last reached RUNNING; a new task definition starts at 0."""
    snap = plan.snap
    definition = {d.id: d.task_definition_arn for d in snap.deployments}
    same = [t for t in snap.tasks if definition.get(t.deployment_id) == primary.task_definition_arn]
    ran = max((t.started_at for t in same if t.started_at is not None), default=float("-inf"))
    streak = sorted(
        _at(t)
        for t in same
        if t.started_at is None and _failed(t, snap.lost_instances) and _at(t) > ran
    )
    if len(streak) < THROTTLE_AFTER:
        return Throttle(len(streak)), None
    next_at = streak[-1] + throttle_delay(len(streak))
    if snap.throttle.consecutive_failures < THROTTLE_AFTER:
        plan.events.append(throttled_event(snap.service.name))
    throttle = Throttle(len(streak), next_at)
    if snap.now >= next_at:
        return throttle, None
    plan.wake.append(next_at)
    return throttle, next_at


def _healthy(task: TaskState) -> bool:
    """Counts towards minimumHealthyPercent: RUNNING and, with a health check, HEALTHY."""
    return task.running and task.health in (None, "HEALTHY")


def _free_stops(
    plan: _Plan, primary: Deployment, misplaced: Callable[[TaskState], str | None]
) -> None:
    """Stops that cost no healthy task: old tasks not healthy, PENDING tasks on DRAINING
    instances, tasks UNHEALTHY past the grace period, tasks where they may not be."""
    snap = plan.snap
    grace = snap.service.health_check_grace_seconds
    for t in snap.tasks:
        if not t.live:
            continue
        where = misplaced(t)
        if where is not None:
            plan.stop(t, where)
        elif t.instance_arn in snap.draining_instances and not t.running:
            plan.stop(t, "Container instance is DRAINING")
        elif t.running and t.health == "UNHEALTHY":
            if t.started_at is None or snap.now >= t.started_at + grace:
                plan.stop(t, HEALTH_CHECK_FAILED)
            else:  # ignored during the grace period; look again when it ends
                plan.wake.append(t.started_at + grace)
        elif t.deployment_id != primary.id and not _healthy(t):
            plan.stop(t, _scaling(primary))


def _scaling(primary: Deployment) -> str:
    return f"Scaling activity initiated by (deployment {primary.id})"


def _replicas(plan: _Plan, primary: Deployment, launch: bool) -> bool:
    """REPLICA: keep ``desired`` tasks of the PRIMARY off DRAINING instances; start within
    maximumPercent, stop the rest (old deployments, DRAINING) within
    minimumHealthyPercent. Returns whether the service is settled."""
    snap, service = plan.snap, plan.snap.service
    desired = service.desired_count
    low, high = replica_bounds(desired, service.min_healthy_percent, service.max_percent)
    _free_stops(plan, primary, lambda t: None)
    live = [t for t in snap.tasks if t.live and t.arn not in plan.gone]
    keep = [
        t for t in live
        if t.deployment_id == primary.id and t.instance_arn not in snap.draining_instances
    ]  # fmt: skip
    leave = [t for t in live if t not in keep]
    # Scale-in: the extra tasks, least useful first, then by the placement strategies.
    for t in _pick(snap, keep, len(keep) - desired):
        plan.stop(t, _scaling(primary))
    keep = [t for t in keep if t.arn not in plan.gone]
    # Start what is missing, as far as maximumPercent allows: every task not yet
    # STOPPED takes room, those being stopped included.
    occupied = sum(1 for t in snap.tasks if not t.stopped)
    count = min(desired - len(keep), high - occupied)
    if launch and count > 0:
        plan.starts.append(Start(primary.id, primary.task_definition_arn, count))
    # Stop the leavers while more than the minimum stay healthy. With a minimum of
    # 100% that waits for new tasks to be healthy: start first, then stop.
    healthy = sum(1 for t in live if _healthy(t) and t.arn not in plan.gone)
    if primary.rollout_state != "FAILED":  # a failed roll-out freezes
        for t in _pick(snap, leave, min(len(leave), healthy - low)):
            plan.stop(t, _scaling(primary))
    return (
        not plan.stops and not plan.starts and occupied == desired == len(keep)
        and all(_healthy(t) for t in keep)
    )  # fmt: skip


def _daemons(plan: _Plan, primary: Deployment, launch: bool) -> bool:
    """DAEMON: one PRIMARY task on every eligible instance and none elsewhere; an old
    task gives way (stop first, as maximumPercent is 100) within minimumHealthyPercent."""
    snap = plan.snap
    eligible = set(snap.eligible_instances)

    def misplaced(t: TaskState) -> str | None:
        if t.instance_arn in eligible:
            return None
        if t.instance_arn in snap.draining_instances:
            return "Container instance is DRAINING"
        return f"Container instance no longer satisfies the placement constraints of (service {snap.service.name})"  # noqa: E501

    _free_stops(plan, primary, misplaced)
    here: dict[str, list[TaskState]] = {}
    for t in snap.tasks:
        if t.live and t.arn not in plan.gone and t.instance_arn is not None:
            here.setdefault(t.instance_arn, []).append(t)
    for tasks in here.values():  # more than one: keep the most useful
        tasks.sort(key=lambda t: (t.deployment_id != primary.id, not _healthy(t), t.arn))
        for extra in tasks[1:]:
            plan.stop(extra, _scaling(primary))
    low = -(-len(eligible) * snap.service.min_healthy_percent // 100)
    healthy = sum(1 for ts in here.values() if _healthy(ts[0]))
    old = [ts[0] for ts in here.values() if ts[0].deployment_id != primary.id]
    if primary.rollout_state != "FAILED":
        for t in _pick(snap, old, min(len(old), healthy - low)):
            plan.stop(t, _scaling(primary))
    occupied = {t.instance_arn for t in snap.tasks if not t.stopped}
    for arn in snap.eligible_instances:
        if launch and arn not in occupied:
            plan.starts.append(Start(primary.id, primary.task_definition_arn, 1, arn))
    return (
        not plan.stops and not plan.starts and len(occupied) == len(eligible)
        and all(len(ts) == 1 and ts[0].deployment_id == primary.id and _healthy(ts[0])
                for ts in here.values())
    )  # fmt: skip


def _pick(snap: ServiceSnapshot, tasks: Sequence[TaskState], count: int) -> list[TaskState]:
    """``count`` tasks to stop: not yet RUNNING first, then not healthy, then those on
    DRAINING instances, then the healthy rest as the placement strategies choose."""
    if count <= 0:
        return []
    tiers: list[list[TaskState]] = [[], [], [], []]
    for t in tasks:
        rank = (
            0 if not t.running else 1 if not _healthy(t)
            else 2 if t.instance_arn in snap.draining_instances else 3
        )  # fmt: skip
        tiers[rank].append(t)
    rng = random.Random(snap.seed)
    strategies = snap.service.strategies or default_strategies(snap.service.group)
    chosen: list[TaskState] = []
    for tier in tiers:
        need = count - len(chosen)
        if need <= 0:
            break
        if len(tier) <= need:
            chosen.extend(sorted(tier, key=lambda t: t.arn))
            continue
        by_arn = {t.arn: t for t in tier}
        arns = select_for_scale_in(_hosted(snap, tier), need, strategies, rng)
        chosen.extend(by_arn[a] for a in arns)
    return chosen


def _hosted(
    snap: ServiceSnapshot, tasks: Iterable[TaskState]
) -> list[tuple[Instance, list[RunningTask]]]:
    grouped: dict[str, list[RunningTask]] = {}
    for t in sorted(tasks, key=lambda t: t.arn):
        grouped.setdefault(t.instance_arn or "", []).append(RunningTask(t.arn, t.cpu, t.memory))
    return [(_instance(snap, arn), ts) for arn, ts in sorted(grouped.items())]


def _instance(snap: ServiceSnapshot, arn: str) -> Instance:
    known = snap.instances.get(arn)
    return known if known is not None else Instance(arn, arn, Resources(), Resources())
