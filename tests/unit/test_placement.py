"""Placement stories, table-driven in the manner of Kubernetes' scheduler plugin tests:
a cluster, a task, constraints and strategies in; where the tasks went and why the rest
did not, out. ``instance()`` is the fixture factory (Nomad's ``mock.Node()``)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from dockyard.scheduler.model import (
    AVAILABILITY_ZONE,
    Constraint,
    Instance,
    PlacementInputError,
    PlacementResult,
    RequiredAttribute,
    Resources,
    RunningTask,
    Strategy,
    TaskDemand,
    combine_constraints,
    parse_constraints,
    parse_required_attributes,
    parse_strategies,
)
from dockyard.scheduler.placement import (
    DEFAULT_SERVICE_STRATEGIES,
    default_strategies,
    place,
    select_for_scale_in,
)
from dockyard.scheduler.strategies import effective

ZONE = "ecs.availability-zone"
TYPE = "ecs.instance-type"


def instance(
    name: str,
    zone: str = "eu-west-1a",
    *,
    cpu: int = 2048,
    memory: int = 4096,
    gpus: int = 0,
    ports: Sequence[int] = (),
    ports_udp: Sequence[int] = (),
    kind: str = "t3.medium",
    attributes: Mapping[str, str | None] | None = None,
    groups: Mapping[str, int] | None = None,
    **fields: object,
) -> Instance:
    """An instance named ``name`` (ARN arn:...:container-instance/NAME, EC2 id i-NAME)
    with ``cpu``/``memory``/``gpus`` free and ``ports`` already taken."""
    free = Resources(cpu, memory, frozenset(ports), frozenset(ports_udp), gpus)
    tasks = dict(groups or {})
    return Instance(
        arn=arn(name),
        ec2_instance_id=f"i-{name}",
        registered=Resources(cpu, memory, gpus=gpus),
        remaining=free,
        attributes={ZONE: zone, TYPE: kind, **(attributes or {})},
        group_counts=tasks,
        running_tasks_count=sum(tasks.values()),
        **fields,  # type: ignore[arg-type]
    )


def arn(name: str) -> str:
    return f"arn:aws:ecs:eu-west-1:000000000000:container-instance/default/{name}"


def task(**fields: object) -> TaskDemand:
    defaults: dict[str, object] = {"cpu": 128, "memory": 256, "group": "service:web"}
    return TaskDemand(**{**defaults, **fields})  # type: ignore[arg-type]


THREE_ZONES = [
    instance("a", "eu-west-1a"),
    instance("b", "eu-west-1b"),
    instance("c", "eu-west-1c"),
]


@dataclass
class Story:
    name: str
    instances: list[Instance]
    demand: TaskDemand
    count: int
    constraints: tuple[Constraint, ...] = ()
    strategies: tuple[Strategy, ...] = ()
    # Tasks per instance name (or exact order when `order` is set); failure reason,
    # the instance it names, and words its detail must contain.
    placed: Mapping[str, int] = field(default_factory=dict)
    order: Sequence[str] | None = None
    reason: str | None = None
    closest: str | None = None
    detail: Sequence[str] = ()


def names(result: PlacementResult) -> list[str]:
    return [a.rsplit("/", 1)[1] for a in result.placements]


STORIES = [
    Story(
        "service default spreads six tasks two per zone",
        THREE_ZONES,
        task(),
        6,
        strategies=DEFAULT_SERVICE_STRATEGIES,
        placed={"a": 2, "b": 2, "c": 2},
    ),
    Story(
        "spread counts the group's tasks already running",
        [
            instance("a", "eu-west-1a", groups={"service:web": 2}),
            instance("b", "eu-west-1b", groups={"service:other": 5}),
            instance("c", "eu-west-1c"),
        ],
        task(),
        4,
        strategies=(Strategy.spread(f"attribute:{ZONE}"),),
        placed={"b": 2, "c": 2},
    ),
    Story(
        "spread over instanceId evens out the instances",
        [instance("a"), instance("b"), instance("c", groups={"service:web": 1})],
        task(),
        5,
        strategies=(Strategy.spread("instanceId"),),
        placed={"a": 2, "b": 2, "c": 1},
    ),
    Story(
        "spread then binpack: zones even, fullest instance first within a zone",
        [
            instance("a-big", "eu-west-1a", memory=8192),
            instance("a-small", "eu-west-1a", memory=1024),
            instance("b-big", "eu-west-1b", memory=8192),
            instance("b-small", "eu-west-1b", memory=2048),
        ],
        task(memory=512),
        4,
        strategies=(Strategy.spread(f"attribute:{ZONE}"), Strategy.binpack("memory")),
        placed={"a-small": 2, "b-small": 2},
    ),
    Story(
        "binpack on memory fills the fullest instance first",
        [
            instance("roomy", memory=4096),
            instance("full", memory=1024),
            instance("mid", memory=2048),
        ],
        task(memory=512),
        5,
        strategies=(Strategy.binpack("memory"),),
        order=["full", "full", "mid", "mid", "mid"],
    ),
    Story(
        "binpack on cpu ignores memory",
        [
            instance("lots-of-cpu", cpu=4096, memory=512),
            instance("little-cpu", cpu=512, memory=8192),
        ],
        task(cpu=256, memory=128),
        3,
        strategies=(Strategy.binpack("cpu"),),
        order=["little-cpu", "little-cpu", "lots-of-cpu"],
    ),
    Story(
        "distinctInstance places one per instance and reports the fourth",
        THREE_ZONES,
        task(),
        4,
        constraints=(Constraint.distinct_instance(),),
        placed={"a": 1, "b": 1, "c": 1},
        reason="DistinctInstance",
        detail=["already runs a task of group service:web"],
    ),
    Story(
        "distinctInstance skips an instance already running the group",
        [instance("busy", groups={"service:web": 1}), instance("free")],
        task(),
        1,
        constraints=(Constraint.distinct_instance(),),
        placed={"free": 1},
    ),
    Story(
        "memberOf with the issue's expression places only there",
        [
            instance("t3-a", "eu-west-1a", kind="t3.micro"),
            instance("t3-b", "eu-west-1b", kind="t3.large"),
            instance("t3-c", "eu-west-1c", kind="t3.micro"),
            instance("m5-a", "eu-west-1a", kind="m5.large"),
        ],
        task(),
        6,
        constraints=(
            Constraint.member_of(
                f"attribute:{TYPE} =~ t3.* and attribute:{ZONE} in [eu-west-1a, eu-west-1b]"
            ),
        ),
        strategies=DEFAULT_SERVICE_STRATEGIES,
        placed={"t3-a": 3, "t3-b": 3},
    ),
    Story(
        "memberOf on runningTasksCount sees this call's placements",
        [instance("a"), instance("b")],
        task(),
        5,
        constraints=(Constraint.member_of("runningTasksCount < 2"),),
        placed={"a": 2, "b": 2},
        reason="MemberOf",
        detail=["does not match memberOf(runningTasksCount < 2)"],
    ),
    Story(
        "memberOf on task:group follows the databases",
        [instance("db", groups={"databases": 1}), instance("web", groups={"service:web": 1})],
        task(),
        2,
        constraints=(Constraint.member_of("task:group == databases"),),
        placed={"db": 2},
    ),
    Story(
        "a task bigger than any instance fails on memory, naming the closest",
        [
            instance("small", memory=1024),
            instance("large", memory=6144),
            instance("mid", memory=2048),
        ],
        task(memory=8192),
        1,
        reason="RESOURCE:MEMORY",
        closest="large",
        detail=["i-large", "6144 MiB of memory left", "needs 8192"],
    ),
    Story(
        "too much cpu fails on CPU",
        [instance("a", cpu=1024)],
        task(cpu=2048),
        1,
        reason="RESOURCE:CPU",
        closest="a",
        detail=["1024 CPU units left"],
    ),
    Story(
        "resources run out mid-call: three fit, the fourth fails",
        [instance("a", memory=1024), instance("b", memory=512)],
        task(memory=512),
        4,
        placed={"a": 2, "b": 1},
        reason="RESOURCE:MEMORY",
        detail=["0 MiB of memory left"],
    ),
    Story(
        "a taken host port rules the instance out",
        [instance("taken", ports=[80]), instance("open", ports=[22])],
        task(ports_tcp=frozenset({80})),
        2,
        placed={"open": 1},
        reason="RESOURCE:PORTS",
        detail=["80/tcp"],
    ),
    Story(
        "udp ports are their own namespace",
        [instance("dns", ports_udp=[53]), instance("tcp-only", ports=[53])],
        task(ports_udp=frozenset({53})),
        1,
        placed={"tcp-only": 1},
    ),
    Story(
        "GPUs are counted",
        [instance("gpu", gpus=2), instance("plain")],
        task(gpus=1),
        3,
        placed={"gpu": 2},
        reason="RESOURCE:GPU",
    ),
    Story(
        "a disconnected agent takes nothing",
        [instance("lost", agent_connected=False, memory=65536), instance("ok", memory=512)],
        task(memory=512),
        2,
        placed={"ok": 1},
        reason="RESOURCE:MEMORY",
        closest="ok",  # an available instance is closer than one with no agent
    ),
    Story(
        "only disconnected agents: AGENT",
        [instance("lost", agent_connected=False)],
        task(),
        1,
        reason="AGENT",
        detail=["agent is not connected"],
    ),
    Story(
        "a draining instance takes nothing",
        [instance("draining", status="DRAINING"), instance("active")],
        task(),
        2,
        strategies=(Strategy.spread("instanceId"),),
        placed={"active": 2},
    ),
    Story(
        "required attributes must be present",
        [instance("plain"), instance("awsvpc", attributes={"ecs.capability.task-eni": None})],
        task(required_attributes=(RequiredAttribute("ecs.capability.task-eni"),)),
        1,
        placed={"awsvpc": 1},
    ),
    Story(
        "a required attribute with a value must have that value",
        [instance("x86", attributes={"ecs.cpu-architecture": "x86_64"})],
        task(required_attributes=(RequiredAttribute("ecs.cpu-architecture", "arm64"),)),
        1,
        reason="ATTRIBUTE",
        detail=["ecs.cpu-architecture=arm64"],
    ),
    Story(
        "EXTERNAL instances are not candidates for EC2 tasks",
        [instance("edge", launch_type="EXTERNAL"), instance("ec2")],
        task(launch_target="EC2"),
        2,
        strategies=(Strategy.spread("instanceId"),),
        placed={"ec2": 2},
    ),
    Story(
        "a capacity provider's tasks go to its instances",
        [instance("asg", capacity_provider="cp-1"), instance("other", capacity_provider="cp-2")],
        task(launch_target="cp-1"),
        2,
        placed={"asg": 2},
    ),
    Story(
        "no candidate at all: nothing placed, no instance to name",
        [instance("edge", launch_type="EXTERNAL")],
        task(launch_target="EC2"),
        1,
    ),
]


@pytest.mark.parametrize("story", STORIES, ids=[s.name for s in STORIES])
def test_placement(story: Story) -> None:
    result = place(
        story.demand,
        story.count,
        story.instances,
        story.constraints,
        story.strategies,
        random.Random(5),
    )
    if story.order is not None:
        assert names(result) == list(story.order)
    else:
        assert Counter(names(result)) == Counter(story.placed)
    if story.reason is None:
        assert result.failures == ()
        return
    (failure,) = result.failures
    assert failure.reason == story.reason
    if story.closest is not None:
        assert failure.arn == arn(story.closest)
    for words in story.detail:
        assert words in failure.detail


def test_issue_three_zones_six_tasks_any_seed() -> None:
    for seed in range(20):
        result = place(task(), 6, THREE_ZONES, (), DEFAULT_SERVICE_STRATEGIES, random.Random(seed))
        assert Counter(names(result)) == {"a": 2, "b": 2, "c": 2}


def test_same_seed_same_placements() -> None:
    cluster = [instance(str(n), f"z{n % 3}") for n in range(12)]

    def run(seed: int) -> tuple[str, ...]:
        return place(task(), 8, cluster, (), (), random.Random(seed)).placements

    assert run(1) == run(1)
    assert len({run(seed) for seed in range(5)}) > 1  # and random really is random


def test_placement_never_mutates_its_input() -> None:
    cluster = [instance("a", memory=1024)]
    before = cluster[0]
    place(task(memory=512), 2, cluster, (), (), random.Random(0))
    assert cluster[0] == before and cluster[0].remaining.memory == 1024


# Scale-in: which tasks go first.


@dataclass
class ScaleIn:
    name: str
    hosted: list[tuple[Instance, list[RunningTask]]]
    count: int
    strategies: tuple[Strategy, ...]
    check: Callable[[list[str]], bool]


def tasks(prefix: str, n: int, memory: int = 256) -> list[RunningTask]:
    return [RunningTask(f"{prefix}{i}", cpu=128, memory=memory) for i in range(n)]


SCALE_INS = [
    ScaleIn(
        "binpack stops the task that leaves the most memory free",
        [
            (instance("full", memory=100), tasks("full-", 2, memory=512)),
            (instance("roomy", memory=3000), tasks("roomy-", 1, memory=256)),
            (instance("mid", memory=2000), [RunningTask("mid-big", memory=2048)]),
        ],
        2,
        (Strategy.binpack("memory"),),
        lambda stopped: stopped == ["mid-big", "roomy-0"],
    ),
    ScaleIn(
        "spread over zones stops from the zone with the most",
        [
            (instance("a", "eu-west-1a"), tasks("a", 3)),
            (instance("b", "eu-west-1b"), tasks("b", 1)),
            (instance("c", "eu-west-1c"), tasks("c", 1)),
        ],
        3,
        (Strategy.spread(f"attribute:{ZONE}"),),
        lambda stopped: sorted(s[0] for s in stopped[:2]) == ["a", "a"] and stopped[2][0] in "abc",
    ),
    ScaleIn(
        "the service default stops from the busiest instance of the busiest zone",
        [
            (instance("a1", "eu-west-1a"), tasks("a1-", 1)),
            (instance("a2", "eu-west-1a"), tasks("a2-", 3)),
            (instance("b1", "eu-west-1b"), tasks("b1-", 2)),
        ],
        3,
        DEFAULT_SERVICE_STRATEGIES,
        lambda stopped: [s[:2] for s in stopped] == ["a2", "a2", "b1"],
    ),
    ScaleIn(
        "asking for more than there are stops them all",
        [(instance("a"), tasks("a", 2))],
        5,
        (),
        lambda stopped: sorted(stopped) == ["a0", "a1"],
    ),
]


@pytest.mark.parametrize("case", SCALE_INS, ids=[c.name for c in SCALE_INS])
def test_scale_in(case: ScaleIn) -> None:
    stopped = select_for_scale_in(case.hosted, case.count, case.strategies, random.Random(3))
    assert len(stopped) == len(set(stopped)) == min(case.count, sum(len(t) for _, t in case.hosted))
    assert case.check(stopped), stopped


# Wire forms.

WIRE_ERRORS = [
    ("six strategies", "strategies", [{"type": "random"}] * 6, "placementStrategy: 6 strategies"),
    ("binpack on disk", "strategies", [{"type": "binpack", "field": "disk"}], "[0].field"),
    ("spread on nothing", "strategies", [{"type": "spread"}], "placementStrategy[0].field"),
    ("spread on a bare word", "strategies", [{"type": "spread", "field": "zone"}], "[0].field"),
    ("unknown type", "strategies", [{"type": "pack"}], "placementStrategy[0].type"),
    ("eleven constraints", "constraints", [{"type": "distinctInstance"}] * 11, "the limit is 10"),
    (
        "distinctInstance with an expression",
        "constraints",
        [{"type": "distinctInstance", "expression": "agentConnected == true"}],
        "placementConstraints[0].expression",
    ),
    ("memberOf without one", "constraints", [{"type": "memberOf"}], "[0].expression"),
    (
        "memberOf malformed",
        "constraints",
        [{"type": "memberOf", "expression": "attribute:ecs.instance-type =="}],
        "position",
    ),
    ("not a string", "constraints", [{"type": 3}], "placementConstraints[0].type"),
]


@pytest.mark.parametrize(
    ("kind", "wire", "message"), [c[1:] for c in WIRE_ERRORS], ids=[c[0] for c in WIRE_ERRORS]
)
def test_wire_errors_name_the_field(kind: str, wire: list[dict[str, object]], message: str) -> None:
    parser = parse_strategies if kind == "strategies" else parse_constraints
    with pytest.raises(PlacementInputError) as raised:
        parser(wire)
    assert message in raised.value.message


def test_wire_forms_parse() -> None:
    assert parse_strategies(
        [
            {"type": "spread", "field": "attribute:ecs.availability-zone"},
            {"type": "spread", "field": "host"},
            {"type": "binpack", "field": "MEMORY"},
            {"type": "random", "field": "ignored"},
        ]
    ) == (
        Strategy.spread(AVAILABILITY_ZONE),
        Strategy.spread("instanceId"),
        Strategy.binpack("memory"),
        Strategy.random(),
    )
    parsed = parse_constraints(
        [{"type": "distinctInstance"}, {"type": "memberOf", "expression": "agentConnected == true"}]
    )
    assert [c.type for c in parsed] == ["distinctInstance", "memberOf"]
    assert parsed[1].query is not None
    assert parse_required_attributes(
        [
            {"name": "ecs.capability.task-eni"},
            {"name": "ecs.os-type", "value": "linux", "targetType": "container-instance"},
            {"name": "other", "targetType": "container", "targetId": "x"},
        ]
    ) == (RequiredAttribute("ecs.capability.task-eni"), RequiredAttribute("ecs.os-type", "linux"))


def test_task_definitions_allow_only_member_of() -> None:
    with pytest.raises(PlacementInputError, match="expected memberOf"):
        parse_constraints([{"type": "distinctInstance"}], in_task_definition=True)


def test_constraint_limit_counts_the_task_definition() -> None:
    six = parse_constraints([{"type": "memberOf", "expression": "agentConnected == true"}] * 6)
    with pytest.raises(PlacementInputError, match="limit is 10"):
        combine_constraints(six, six)
    assert len(combine_constraints(six, six[:4])) == 10


def test_defaults_and_random_ends_the_list() -> None:
    assert default_strategies("service:web") == DEFAULT_SERVICE_STRATEGIES
    assert default_strategies("family:batch") == ()
    spread, pack = Strategy.spread("instanceId"), Strategy.binpack("cpu")
    assert effective((spread, Strategy.random(), pack)) == (spread,)


def test_ties_are_drawn_uniformly() -> None:
    tied = [instance(n) for n in "wxyz"]
    picks = Counter(
        names(place(task(), 1, tied, (), (Strategy.binpack("memory"),), random.Random(s)))[0]
        for s in range(2000)
    )
    assert set(picks) == set("wxyz") and min(picks.values()) > 400  # 500 expected each


@pytest.mark.parametrize(("kind", "on"), [("spread", "zone"), ("binpack", "disk"), ("random", "x")])
def test_strategies_built_in_code_are_checked_too(kind: str, on: str) -> None:
    assert Strategy.spread("host") == Strategy.spread("instanceId")
    with pytest.raises(PlacementInputError):
        Strategy(kind, on)  # type: ignore[arg-type]
