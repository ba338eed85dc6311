"""Placement throughput. Part (a): the engine alone, no API, no store.

    .venv/bin/python bench/placement/run.py [--instances 5000] [--tasks 50000]
                                            [--batch 0] [--repeat 3] [--seed 1] [--index]

Parts (b) and (c), RunTask through the HTTP API on SQLite, PostgreSQL and moto server
(``api_load.py``), on the same cluster and with the same task, strategies and constraint:

    .venv/bin/python bench/placement/run.py --api [--instances 5000] [--tasks 3000]
                                            [--clients 8] [--moto-instances 5000]
                                            [--rounds 3]

Builds a cluster of ``--instances`` container instances over three availability zones
with mixed sizes (t3.medium, m5.large, m5.xlarge, m5.2xlarge; a third of them already
part used) and places ``--tasks`` tasks of one service with
spread(attribute:ecs.availability-zone) + binpack(memory) and a memberOf constraint
that rules out the t3 instances. ``--batch 0`` places them in one call; ``--batch 10``
in calls of 10 as RunTask would, each call starting from the snapshot the previous
calls left (the snapshot update is not timed: the store does that part); with
``--index`` those calls go through ``PlacementIndex`` as RunTask's do, kept between
calls and told which instances changed. Every run is checked: no instance
overcommitted, the constraint held, zones within one task.

Prints placements per second for each run and the median, against the goal (20,000/s
with exact semantics: every task goes to an instance the strategies rank best).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script

from dockyard.scheduler.index import PlacementIndex
from dockyard.scheduler.model import (
    AVAILABILITY_ZONE,
    Constraint,
    Instance,
    Resources,
    Strategy,
    TaskDemand,
)
from dockyard.scheduler.placement import charge, place

GOAL = 20_000
TASKS = 50_000  # part (a)
API_TASKS = 3_000  # parts (b), (c): 300 RunTask calls per backend
ZONES = ("eu-west-1a", "eu-west-1b", "eu-west-1c")
# (type, CPU units, MiB) as the ECS agent registers them.
SIZES = (
    ("t3.medium", 2048, 3943),
    ("m5.large", 2048, 7680),
    ("m5.xlarge", 4096, 15708),
    ("m5.2xlarge", 8192, 31577),
)
GROUP = "service:bench"
DEMAND = TaskDemand(cpu=128, memory=512, group=GROUP, family="bench")
CONSTRAINTS = (
    Constraint.member_of("attribute:ecs.instance-type !~ t3.* and agentConnected == true"),
)
STRATEGIES = (Strategy.spread(AVAILABILITY_ZONE), Strategy.binpack("memory"))


def cluster(size: int, rng: random.Random) -> list[Instance]:
    instances = []
    for n in range(size):
        kind, cpu, memory = rng.choice(SIZES)
        used = rng.choice((0, 0, 0.25, 0.5))  # a third start part used
        registered = Resources(cpu, memory, frozenset({22, 2375, 2376, 51678, 51679}))
        remaining = replace(registered, cpu=int(cpu * (1 - used)), memory=int(memory * (1 - used)))
        instances.append(
            Instance(
                arn=f"arn:aws:ecs:eu-west-1:000000000000:container-instance/bench/{n:05d}",
                ec2_instance_id=f"i-{n:017x}",
                registered=registered,
                remaining=remaining,
                agent_version="1.80.0",
                attributes={
                    "ecs.availability-zone": ZONES[n % 3],
                    "ecs.instance-type": kind,
                    "ecs.os-type": "linux",
                    "ecs.capability.docker-remote-api.1.44": None,
                },
                running_tasks_count=4 if used else 0,
                group_counts={"service:other": 4} if used else {},
            )
        )
    return instances


def run(
    instances: list[Instance], tasks: int, batch: int, seed: int, indexed: bool = False
) -> tuple[float, list[str]]:
    """Seconds spent in ``place`` (or the index) and the placements, in order."""
    rng = random.Random(seed)
    if batch <= 0:
        started = time.perf_counter()
        result = place(DEMAND, tasks, instances, CONSTRAINTS, STRATEGIES, rng)
        return time.perf_counter() - started, list(result.placements)
    snapshot = list(instances)
    at = {i.arn: k for k, i in enumerate(instances)}
    index = PlacementIndex(DEMAND, CONSTRAINTS, STRATEGIES) if indexed else None
    changed: set[int] | None = None  # the first sync takes them all
    placed: list[str] = []
    spent = 0.0
    while len(placed) < tasks:
        count = min(batch, tasks - len(placed))
        started = time.perf_counter()
        if index is not None:
            index.sync(snapshot, changed)
            result = index.place(count, rng)
        else:
            result = place(DEMAND, count, snapshot, CONSTRAINTS, STRATEGIES, rng)
        spent += time.perf_counter() - started
        if not result.placements:
            break
        changed = set()
        for arn in result.placements:  # what the store would write back
            k = at[arn]
            i = snapshot[k]
            counts = {**i.group_counts, GROUP: i.group_counts.get(GROUP, 0) + 1}
            snapshot[k] = replace(
                i,
                remaining=charge(i.remaining, DEMAND),
                running_tasks_count=i.running_tasks_count + 1,
                group_counts=counts,
                task_groups=i.task_groups | {GROUP},
            )
            changed.add(k)
        placed += result.placements
    return spent, placed


def check(instances: list[Instance], placed: list[str], tasks: int) -> None:
    by_arn = {i.arn: i for i in instances}
    per_instance = Counter(placed)
    assert len(placed) == tasks, f"placed {len(placed)} of {tasks}"
    for arn, n in per_instance.items():
        i = by_arn[arn]
        assert n * DEMAND.cpu <= i.remaining.cpu and n * DEMAND.memory <= i.remaining.memory
        assert not i.attributes["ecs.instance-type"].startswith("t3")  # type: ignore[union-attr]
    zones = Counter(by_arn[arn].attributes["ecs.availability-zone"] for arn in placed)
    assert max(zones.values()) - min(zones.values()) <= 1, zones


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--tasks", type=int, default=TASKS, help=f"--api: {API_TASKS}")
    parser.add_argument("--batch", type=int, default=0, help="tasks per call; 0: one call")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--index", action="store_true", help="--batch N: through PlacementIndex, as RunTask"
    )
    parser.add_argument("--api", action="store_true", help="parts (b) and (c): RunTask via HTTP")
    parser.add_argument("--clients", type=int, default=8, help="--api: concurrent clients")
    parser.add_argument("--moto-instances", type=int, help="--api: default --instances")
    parser.add_argument("--rounds", type=int, default=3, help="--api: loads per backend")
    args = parser.parse_args()

    instances = cluster(args.instances, random.Random(args.seed))
    if args.api:
        from api_load import run_api, run_task_params  # beside this file: boto3, moto, PG

        strategies = [{"type": s.type, "field": s.field or ""} for s in STRATEGIES]
        params = run_task_params(CONSTRAINTS[0].expression or "", strategies)
        tasks = args.tasks if args.tasks != TASKS else API_TASKS
        run_api(
            instances,
            params,
            DEMAND.cpu,
            DEMAND.memory,
            tasks,
            args.clients,
            args.moto_instances or args.instances,
            args.rounds,
        )
        return
    shape = "one call" if args.batch <= 0 else f"calls of {args.batch}"
    if args.batch > 0 and args.index:
        shape += " (PlacementIndex)"
    print(
        f"placement engine: {args.instances} instances in {len(ZONES)} zones, "
        f"{args.tasks} tasks in {shape}, spread(zone) + binpack(memory) + memberOf"
    )
    rates = []
    for attempt in range(args.repeat):
        seconds, placed = run(instances, args.tasks, args.batch, args.seed + attempt, args.index)
        check(instances, placed, args.tasks)
        rates.append(len(placed) / seconds)
        print(f"  run {attempt + 1}: {len(placed)} placed in {seconds:.2f} s = {rates[-1]:,.0f}/s")
    median = statistics.median(rates)
    if args.batch > 0:  # the goal is the engine's own pace; this shows a call's fixed cost
        per_call = 1000 * args.batch / median
        print(f"median {median:,.0f} placements/s, {per_call:.1f} ms per call of {args.batch}")
        return
    verdict = "meets" if median >= GOAL else "misses"
    print(f"median {median:,.0f} placements/s ({verdict} the {GOAL:,}/s goal)")


if __name__ == "__main__":
    main()
