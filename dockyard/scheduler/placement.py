"""The placement pipeline: which instances get ``count`` tasks of one demand, and which
tasks scale-in stops. Pure: a snapshot and an rng in, a plan out; the caller writes it
(and the store re-checks every choice, so a stale snapshot never overcommits a host).

``place`` follows "How Amazon ECS places tasks": find the instances that satisfy the
task's CPU, GPU, memory and port needs, then those that satisfy the placement
constraints, then order them by the placement strategies and place. See README.md.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from dockyard.scheduler.filters import Feasibility
from dockyard.scheduler.model import (
    AVAILABILITY_ZONE,
    Constraint,
    Instance,
    PlacementResult,
    Resources,
    RunningTask,
    Strategy,
    TaskDemand,
)
from dockyard.scheduler.strategies import Ranking, stop_order

# "For tasks running as part of an Amazon ECS service, the task placement strategy is
# spread using the attribute:ecs.availability-zone"; within a zone the service
# scheduler favours "container instances with the fewest number of running tasks for
# this service" (and stops from those with the most), hence the instance spread.
DEFAULT_SERVICE_STRATEGIES = (Strategy.spread(AVAILABILITY_ZONE), Strategy.spread("instanceId"))
# Standalone tasks have no documented default: with no strategy, a uniform draw.
DEFAULT_TASK_STRATEGIES: tuple[Strategy, ...] = ()


def default_strategies(group: str) -> tuple[Strategy, ...]:
    """The strategies for a call that gave none: a service's tasks (group service:NAME)
    spread over zones, standalone tasks are placed at random."""
    return DEFAULT_SERVICE_STRATEGIES if group.startswith("service:") else DEFAULT_TASK_STRATEGIES


def place(
    demand: TaskDemand,
    count: int,
    instances: Sequence[Instance],
    constraints: Sequence[Constraint],
    strategies: Sequence[Strategy],
    rng: random.Random,
) -> PlacementResult:
    """Place ``count`` tasks one at a time, each on the best instance that still fits.

    Constraints bind (an instance that fails one is never chosen); strategies only
    order. After each placement the chosen instance is charged the demand and checked
    again, so no instance is given more than it has. When a task fits nowhere, placing
    stops and the failure names the closest instance (``Feasibility.closest``).
    """
    # Candidates: only instances of the task's launch type or capacity provider count.
    candidates = [i for i in instances if i.serves(demand.launch_target)]
    if count <= 0 or not candidates:
        return PlacementResult((), ())
    # Filters, binding: status, agent, resources, requiresAttributes, constraints. An
    # instance's attributes are fixed within a call, so each is evaluated once here.
    feasibility = Feasibility(demand, constraints)
    fitting = [k for k, c in enumerate(candidates) if feasibility.refusal(c) is None]
    # Strategies, best effort, in the user's order: an index over the fitting instances
    # that stays current as tasks land, so a placement costs O(log n), not O(n).
    ranking = Ranking(strategies, candidates, fitting, demand.group, rng)
    # Place: take the best, charge it, re-check only it (nothing else changed).
    left = [c.remaining for c in candidates]
    placed = [0] * len(candidates)
    chosen: list[str] = []
    for _ in range(count):
        k = ranking.best()
        if k is None:
            failure = feasibility.closest(candidates, left, placed)
            return PlacementResult(tuple(chosen), (failure,))
        left[k] = charge(left[k], demand)
        placed[k] += 1
        ranking.placed(k, left[k], feasibility.refit(candidates[k], left[k], placed[k]))
        chosen.append(candidates[k].arn)
    return PlacementResult(tuple(chosen), ())


def charge(left: Resources, demand: TaskDemand) -> Resources:
    """What an instance has left once it holds one more task of ``demand``."""
    return Resources(
        cpu=left.cpu - demand.cpu,
        memory=left.memory - demand.memory,
        ports_tcp=left.ports_tcp | demand.ports_tcp,
        ports_udp=left.ports_udp | demand.ports_udp,
        gpus=left.gpus - demand.gpus,
    )


def select_for_scale_in(
    tasks_by_instance: Sequence[tuple[Instance, Sequence[RunningTask]]],
    count: int,
    strategies: Sequence[Strategy],
    rng: random.Random,
) -> list[str]:
    """The ARNs of ``count`` tasks to stop, in the order they were chosen (all of them
    when there are fewer). ``tasks_by_instance``: the service's (or group's) running
    tasks on each instance. The strategies are the ones that placed them:

    - binpack: "The container instance that has the most available resources left
      after task termination has that task terminated";
    - spread: "Amazon ECS selects tasks to terminate that maintain a balance across
      Availability Zones" (any spread field: stop where the group has the most);
      with spread(attribute:ecs.availability-zone) alone, "within an Availability
      Zone, tasks are selected at random";
    - random, and ties after the last strategy: a uniform draw.
    """
    return stop_order(tasks_by_instance, count, strategies, rng)
