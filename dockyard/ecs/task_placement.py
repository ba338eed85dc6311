"""RunTask's and StartTask's placement: the engine (``dockyard.scheduler``) on a fresh
snapshot of the cluster, then the store's write, which re-checks every choice.

RunTask: the engine chooses among all the cluster's instances with the call's
strategies (by default: random for standalone tasks, the service default for a
``service:`` group) and the constraints of the task definition and the call.

Calls read, choose and write one at a time per cluster in this process
(``cluster_lock``, as Nomad applies plans one at a time; calls alike that wait for it
are placed together, ``placement_batch``), so concurrent calls never choose from a
snapshot that misses another's placements. The read is cheap when only this process's
placements changed the cluster since the last one (``placement_snapshot.current``).
A race can still be lost to another server process on the same database: then the
store refuses the task and the engine runs again on a new snapshot for the tasks
still to place, up to ``ATTEMPTS`` times. A lost race costs a retry, never an
overcommit.

StartTask: the caller is the scheduler. Each named instance gets one task if it can
hold it: status, agent, resources, requiresAttributes and the task definition's
memberOf constraints are checked as for RunTask (the task definition's constraints
bind wherever the task goes); there are no strategies to apply and no retry, as the
instance was the caller's choice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from dockyard.api.context import RequestContext
from dockyard.api.errors import InvalidParameterException
from dockyard.ecs import placement_batch, placement_snapshot
from dockyard.ecs.placement_batch import Call, NewTask, submit
from dockyard.ecs.placement_journal import journal
from dockyard.ecs.placement_snapshot import (
    ZONE,
    ClusterSnapshot,
    Needs,
    cluster_lock,
    needs,
    snapshot,
)
from dockyard.ecs.task_shapes import RunRequest
from dockyard.scheduler.filters import Feasibility
from dockyard.scheduler.model import (
    Constraint,
    Failure,
    Instance,
    PlacementInputError,
    Strategy,
    TaskDemand,
    combine_constraints,
    parse_constraints,
    parse_strategies,
)
from dockyard.scheduler.placement import charge, default_strategies
from dockyard.store.models import Task

ATTEMPTS = 5  # engine runs per RunTask: the first, and retries after lost races
NO_INSTANCES = "No Container Instances were found in your cluster."  # ECS's words


def constraints_and_strategies(
    definition: Mapping[str, Any], request: RunRequest, group: str
) -> tuple[tuple[Constraint, ...], tuple[Strategy, ...]]:
    """The call's placement input, parsed; an error names the field at fault."""
    try:
        own = parse_constraints(
            definition.get("placementConstraints"),
            "taskDefinition.placementConstraints",
            in_task_definition=True,
        )
        constraints = combine_constraints(own, parse_constraints(request.placement_constraints))
        strategies = parse_strategies(request.placement_strategy)
    except PlacementInputError as error:
        raise InvalidParameterException(error.message) from None
    return constraints, strategies or default_strategies(group)


def run_placement(
    ctx: RequestContext,
    cluster_arn: str,
    demand: TaskDemand,
    count: int,
    constraints: Sequence[Constraint],
    strategies: Sequence[Strategy],
    new_task: NewTask,
) -> tuple[list[Task], list[Failure]]:
    """Place and write up to ``count`` tasks; what could not be placed is explained in
    the failures (the closest instance's refusal, or the race lost last)."""
    placed: list[Task] = []
    failures: list[Failure] = []
    for attempt in range(ATTEMPTS):
        call = Call(
            demand,
            tuple(constraints),
            tuple(strategies),
            count - len(placed),
            new_task,
            ctx.now,
            ctx.agents.timeout,
        )
        submit(ctx.store, cluster_arn, call)
        if call.empty:
            if attempt == 0:
                raise InvalidParameterException(NO_INSTANCES)
            break  # they went away meanwhile: report what the last attempt saw
        placed += call.placed
        failures = [*call.failures, *(_raced(task, reason) for task, reason in call.refused)]
        if not call.refused:
            break
    return placed, failures


def start_placement(
    ctx: RequestContext,
    cluster_arn: str,
    demand: TaskDemand,
    constraints: Sequence[Constraint],
    instance_arns: Sequence[str],
    new_task: NewTask,
) -> tuple[list[Task], list[Failure]]:
    """One task on each of ``instance_arns`` (registered, not INACTIVE) that can take it."""
    feasibility = Feasibility(demand, constraints)
    written = journal(cluster_arn)
    placed_on: Counter[str] = Counter()
    new: list[Task] = []
    failures: list[Failure] = []
    mark = written.mark()
    cluster = _snapshot(ctx, cluster_arn, needs(demand, constraints, ()), set(instance_arns))
    with cluster_lock(cluster_arn):
        instances = written.catch_up(
            cluster.instances, cluster.versions, cluster.index, mark, demand.group
        )
        left = [i.remaining for i in instances]
        for arn in instance_arns:
            k = cluster.index.get(arn)
            if k is None:  # deregistered since the caller resolved it
                failures.append(Failure(arn, "MISSING", "The instance is no longer registered."))
                continue
            instance = instances[k]
            reasons = feasibility.refusals(instance, left[k], placed_on[arn])
            if reasons:
                lacked = feasibility.explain(reasons, instance, left[k], placed_on[arn])
                detail = f"Container instance {instance.ec2_instance_id}: {lacked}."
                failures.append(Failure(arn, reasons[0], detail))
                continue
            left[k] = charge(left[k], demand)
            placed_on[arn] += 1
            new.append(new_task(arn, _zone(instance)))
        done = ctx.store.tasks.place(new)
        written.record(done)
    return done.placed, [*failures, *(_raced(task, reason) for task, reason in done.refused)]


def forget() -> None:
    """Drop what placement keeps between calls: after a wipe it is of another world."""
    placement_batch.forget()
    placement_snapshot.forget()


def _snapshot(
    ctx: RequestContext,
    cluster_arn: str,
    wanted: Needs,
    instance_arns: Collection[str] | None = None,
) -> ClusterSnapshot:
    return snapshot(
        ctx.store,
        cluster_arn,
        wanted,
        now=ctx.now,
        agent_timeout=ctx.agents.timeout,
        instance_arns=instance_arns,
    )


def _zone(instance: Instance) -> str | None:
    return instance.attributes.get(ZONE)


def _raced(task: Task, reason: str) -> Failure:
    """A choice the store refused: the instance changed after the snapshot was read."""
    if reason == "INACTIVE":
        detail = "The instance stopped taking tasks (deregistered or DRAINING) meanwhile."
    elif reason == "DistinctInstance":
        detail = f"A concurrent placement put a task of group {task.group} there meanwhile."
    else:
        detail = "A concurrent placement took the resources this task was to use."
    return Failure(task.container_instance_arn or "", reason, detail)
