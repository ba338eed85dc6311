"""Properties of the placement engine, checked by Hypothesis against a brute-force
oracle written from the documented rules (not from the engine's indexes):

- it never overcommits CPU, memory, GPUs or host ports on any instance;
- it always honours status, agent, launch target, requiresAttributes and constraints;
- every choice is one the strategies rank best among all instances that fit then
  (exactness: the indexes never change the chosen instance's rank);
- it stops only when nothing fits, and then names an instance that was a candidate;
- the fast first-refusal check agrees with the full list of reasons;
- spread never leaves two values of its field more than one task apart when every
  instance fits; scale-in under spread always stops from a fullest value.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.scheduler.filters import Feasibility
from dockyard.scheduler.model import (
    AVAILABILITY_ZONE,
    Constraint,
    Instance,
    PlacementResult,
    RequiredAttribute,
    Resources,
    RunningTask,
    Strategy,
    TaskDemand,
)
from dockyard.scheduler.placement import place, select_for_scale_in

GROUP = "service:web"
ZONE = "ecs.availability-zone"
PORTS = [80, 443, 8080]

CONSTRAINTS = [
    Constraint.distinct_instance(),
    Constraint.member_of("attribute:ecs.instance-type =~ t3.*"),
    Constraint.member_of("attribute:ecs.availability-zone in [a, b]"),
    Constraint.member_of("runningTasksCount < 3"),
    Constraint.member_of("not task:group == other"),
]
STRATEGIES = [
    Strategy.binpack("cpu"),
    Strategy.binpack("memory"),
    Strategy.spread(AVAILABILITY_ZONE),
    Strategy.spread("attribute:ecs.instance-type"),
    Strategy.spread("instanceId"),
    Strategy.random(),
]


@st.composite
def instances(draw: st.DrawFn) -> Instance:
    free = Resources(
        cpu=draw(st.sampled_from([0, 256, 1024, 4096, 4096, 8192])),
        memory=draw(st.sampled_from([0, 256, 1024, 8192, 8192, 16384])),
        ports_tcp=frozenset(draw(st.sets(st.sampled_from(PORTS), max_size=2))),
        ports_udp=frozenset(draw(st.sets(st.just(53), max_size=1))),
        gpus=draw(st.integers(0, 2)),
    )
    attributes: dict[str, str | None] = {"ecs.instance-type": draw(st.sampled_from(["t3.a", "m5"]))}
    zone = draw(st.sampled_from(["a", "b", "c", None]))
    if zone is not None:
        attributes[ZONE] = zone
    if draw(st.booleans()):
        attributes["ecs.capability.task-eni"] = None
    groups = {GROUP: draw(st.integers(0, 2)), "other": draw(st.integers(0, 1))}
    return Instance(
        arn="",  # numbered by clusters()
        ec2_instance_id="",
        registered=free,
        remaining=free,
        status=draw(st.sampled_from(["ACTIVE"] * 10 + ["DRAINING", "INACTIVE"])),
        agent_connected=draw(st.sampled_from([True] * 10 + [False])),
        attributes=attributes,
        group_counts=groups,
        running_tasks_count=sum(groups.values()),
        launch_type=draw(st.sampled_from(["EC2"] * 10 + ["EXTERNAL"])),
    )


def clusters(size: st.SearchStrategy[Instance]) -> st.SearchStrategy[list[Instance]]:
    def number(found: list[Instance]) -> list[Instance]:
        return [
            replace(i, arn=f"arn:ci/{n}", ec2_instance_id=f"i-{n:03d}") for n, i in enumerate(found)
        ]

    return st.lists(size, min_size=1, max_size=12).map(number)


demands = st.builds(
    TaskDemand,
    cpu=st.sampled_from([0, 128, 256, 1024]),
    memory=st.sampled_from([0, 128, 256, 512, 2048]),
    # Mostly tasks that can share an instance, so that choices repeat and interact.
    ports_tcp=st.sampled_from([frozenset(), frozenset(), frozenset(), frozenset({80})]),
    ports_udp=st.sampled_from([frozenset(), frozenset(), frozenset(), frozenset({53})]),
    gpus=st.sampled_from([0, 0, 0, 1]),
    required_attributes=st.sampled_from([(), (), (RequiredAttribute("ecs.capability.task-eni"),)]),
    group=st.just(GROUP),
    launch_target=st.sampled_from([None, "EC2"]),
)


@dataclass
class Call:
    cluster: list[Instance]
    demand: TaskDemand
    count: int
    constraints: list[Constraint]
    strategies: list[Strategy]
    seed: int

    def run(self) -> PlacementResult:
        return place(
            self.demand,
            self.count,
            self.cluster,
            self.constraints,
            self.strategies,
            random.Random(self.seed),
        )


calls = st.builds(
    Call,
    cluster=clusters(instances()),
    demand=demands,
    count=st.integers(1, 20),
    constraints=st.lists(st.sampled_from(CONSTRAINTS), max_size=2, unique=True),
    strategies=st.lists(st.sampled_from(STRATEGIES), max_size=3),
    seed=st.integers(0, 2**32),
)


# Clusters where many tasks fit and strategies decide: exactness needs choices that
# repeat and interact (binpack ties, spread counts moving between values).
crowded = st.builds(
    Call,
    cluster=st.lists(
        st.builds(
            lambda zone, kind, cpu, memory, tasks: Instance(
                arn="",
                ec2_instance_id="",
                registered=Resources(cpu, memory),
                remaining=Resources(cpu, memory),
                attributes={ZONE: zone, "ecs.instance-type": kind},
                group_counts={GROUP: tasks},
            ),
            st.sampled_from(["a", "b", "c", None]),
            st.sampled_from(["t3.a", "t3.b", "m5"]),
            st.sampled_from([1024, 2048, 4096]),
            st.sampled_from([2048, 4096, 8192]),
            st.integers(0, 2),
        ),
        min_size=2,
        max_size=15,
    ).map(
        lambda found: [
            replace(i, arn=f"arn:ci/{n}", ec2_instance_id=f"i-{n:03d}") for n, i in enumerate(found)
        ]
    ),
    demand=st.builds(
        TaskDemand, cpu=st.just(256), memory=st.sampled_from([512, 1024]), group=st.just(GROUP)
    ),
    count=st.integers(1, 40),
    constraints=st.lists(st.sampled_from(CONSTRAINTS[1:]), max_size=1),
    strategies=st.lists(st.sampled_from(STRATEGIES), min_size=1, max_size=3),
    seed=st.integers(0, 2**32),
)


class Oracle:
    """The documented rules, evaluated naively over every instance at every step."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.candidates = [
            i
            for i in call.cluster
            if call.demand.launch_target is None or i.launch_type == call.demand.launch_target
        ]
        self.left = {i.arn: i.remaining for i in self.candidates}
        self.placed = Counter[str]()

    def fits(self, i: Instance) -> bool:
        demand, left = self.call.demand, self.left[i.arn]
        placed = self.placed[i.arn]
        now = replace(
            i,
            running_tasks_count=i.running_tasks_count + placed,
            task_groups=i.task_groups | {GROUP} if placed else i.task_groups,
        )
        return (
            i.status == "ACTIVE"
            and i.agent_connected
            and demand.cpu <= left.cpu
            and demand.memory <= left.memory
            and demand.gpus <= left.gpus
            and not demand.ports_tcp & left.ports_tcp
            and not demand.ports_udp & left.ports_udp
            and all(r.name in i.attributes for r in demand.required_attributes)
            and all(c.query.matches(now) for c in self.call.constraints if c.query is not None)
            and not (
                any(c.type == "distinctInstance" for c in self.call.constraints)
                and (placed or i.group_counts.get(GROUP, 0))
            )
        )

    def tasks(self, i: Instance) -> int:
        return i.group_counts.get(GROUP, 0) + self.placed[i.arn]

    def rank(self, i: Instance) -> tuple[int, ...]:
        key = []
        for s in self.call.strategies:
            if s.type == "random":
                break
            if s.type == "binpack":
                key.append(getattr(self.left[i.arn], s.field or ""))
            elif s.attribute is None:
                key.append(self.tasks(i))
            else:
                value = i.attributes.get(s.attribute)
                same = [j for j in self.candidates if j.attributes.get(s.attribute) == value]
                key.append(sum(self.tasks(j) for j in same))
        return tuple(key)

    def take(self, arn: str) -> None:
        demand, left = self.call.demand, self.left[arn]
        self.left[arn] = Resources(
            left.cpu - demand.cpu,
            left.memory - demand.memory,
            left.ports_tcp | demand.ports_tcp,
            left.ports_udp | demand.ports_udp,
            left.gpus - demand.gpus,
        )
        self.placed[arn] += 1


@settings(max_examples=300)
@given(st.one_of(calls, crowded))
def test_every_choice_fits_and_ranks_best(call: Call) -> None:
    check(call, call.run())


def check(call: Call, result: PlacementResult) -> None:
    """Every choice fits and ranks best; it stops only when nothing fits."""
    oracle = Oracle(call)
    by_arn = {i.arn: i for i in oracle.candidates}
    for arn in result.placements:
        fitting = [i for i in oracle.candidates if oracle.fits(i)]
        assert by_arn[arn] in fitting, "placed where it does not fit (or breaks a constraint)"
        assert oracle.rank(by_arn[arn]) == min(oracle.rank(i) for i in fitting)
        oracle.take(arn)
    if len(result.placements) < call.count and oracle.candidates:
        assert not any(oracle.fits(i) for i in oracle.candidates), "stopped while one fit"
        (failure,) = result.failures
        assert failure.arn in by_arn and failure.reason and failure.detail
    else:
        assert result.failures == ()


@settings(max_examples=200)
@given(calls)
def test_never_overcommits(call: Call) -> None:
    result = call.run()
    placed = Counter(result.placements)
    for i in call.cluster:
        n, d, free = placed[i.arn], call.demand, i.remaining
        assert n * d.cpu <= free.cpu or n == 0
        assert n * d.memory <= free.memory or n == 0
        assert n * d.gpus <= free.gpus or n == 0
        if d.ports_tcp or d.ports_udp:
            assert n <= 1
            assert n == 0 or not (d.ports_tcp & free.ports_tcp or d.ports_udp & free.ports_udp)


@settings(max_examples=200)
@given(calls)
def test_always_honours_constraints(call: Call) -> None:
    result = call.run()
    placed = Counter(result.placements)
    distinct = any(c.type == "distinctInstance" for c in call.constraints)
    for i in call.cluster:
        if not placed[i.arn]:
            continue
        assert i.status == "ACTIVE" and i.agent_connected
        assert call.demand.launch_target in (None, i.launch_type)
        assert all(r.name in i.attributes for r in call.demand.required_attributes)
        expressions = {c.expression: c.query for c in call.constraints if c.query is not None}
        if "runningTasksCount < 3" in expressions:
            del expressions["runningTasksCount < 3"]
            assert i.running_tasks_count + placed[i.arn] <= 3
        # The rest answer the same before and after: placing web tasks adds no "other".
        assert all(q.matches(i) for q in expressions.values())
        if distinct:
            assert placed[i.arn] == 1 and not i.group_counts.get(GROUP)


@given(instances(), demands, st.lists(st.sampled_from(CONSTRAINTS), max_size=3, unique=True))
def test_the_fast_first_refusal_agrees_with_the_full_list(
    instance: Instance, demand: TaskDemand, constraints: list[Constraint]
) -> None:
    feasibility = Feasibility(demand, constraints)
    reasons = feasibility.refusals(instance, instance.remaining, 0)
    assert feasibility.refusal(instance) == (reasons[0] if reasons else None)


roomy = st.builds(
    lambda zone: Instance(
        arn="",
        ec2_instance_id="",
        registered=Resources(1 << 20, 1 << 20),
        remaining=Resources(1 << 20, 1 << 20),
        attributes={ZONE: zone},
    ),
    st.sampled_from(["a", "b", "c", "d"]),
)


@given(
    clusters(roomy),
    st.integers(0, 60),
    st.lists(st.sampled_from(STRATEGIES), max_size=2),
    st.integers(0, 2**32),
)
def test_spread_keeps_values_within_one_task(
    cluster: list[Instance], count: int, then: list[Strategy], seed: int
) -> None:
    spread = [Strategy.spread(AVAILABILITY_ZONE), *then]
    result = place(
        TaskDemand(cpu=1, memory=1, group=GROUP), count, cluster, [], spread, random.Random(seed)
    )
    assert len(result.placements) == count
    zone_of = {i.arn: i.attributes[ZONE] for i in cluster}
    per_zone = Counter(zone_of[a] for a in result.placements)
    counts = [per_zone[z] for z in set(zone_of.values())]
    assert max(counts) - min(counts) <= 1


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 4)), min_size=1, max_size=6
    ),
    st.integers(0, 12),
    st.integers(0, 2**32),
)
def test_scale_in_under_spread_stops_from_a_fullest_zone(
    layout: Sequence[tuple[str, int]], count: int, seed: int
) -> None:
    hosted = [
        (
            Instance(f"arn:ci/{n}", f"i-{n}", Resources(), Resources(), attributes={ZONE: zone}),
            [RunningTask(f"t-{n}-{k}") for k in range(tasks)],
        )
        for n, (zone, tasks) in enumerate(layout)
    ]
    zone_of = {t.arn: i.attributes[ZONE] for i, ts in hosted for t in ts}
    stopped = select_for_scale_in(
        hosted, count, [Strategy.spread(AVAILABILITY_ZONE)], random.Random(seed)
    )
    assert len(stopped) == len(set(stopped)) == min(count, len(zone_of))
    per_zone = Counter(zone_of.values())
    for arn in stopped:
        assert per_zone[zone_of[arn]] == max(per_zone.values())
        per_zone[zone_of[arn]] -= 1
