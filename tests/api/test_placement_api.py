"""Placement through the public API: strategies, constraints, the query language and
every failure reason, on instances registered by hand (no agent: tasks stay PENDING)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.live import REGION, LiveServer, live_server
from tests.postgres import fresh_database

A, B, C = (f"{REGION}{zone}" for zone in "abc")


def register(
    ecs: Any,
    zone: str = A,
    kind: str = "m5.large",
    cpu: int = 4096,
    memory: int = 4096,
    cluster: str = "work",
    **extra: str,
) -> str:
    """A host registered by hand: resources, zone and type, custom attributes in ``extra``."""
    attributes = {"ecs.availability-zone": zone, "ecs.instance-type": kind, **extra}
    instance = ecs.register_container_instance(
        cluster=cluster,
        totalResources=[
            {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
        ],
        attributes=[{"name": n, "value": v} for n, v in attributes.items()],
    )["containerInstance"]
    return str(instance["containerInstanceArn"])


def definition(ecs: Any, family: str = "web", memory: int = 512, **extra: Any) -> None:
    container = {"name": "app", "image": "busybox", "cpu": 128, "memory": memory}
    container.update(extra.pop("container", {}))
    ecs.register_task_definition(family=family, containerDefinitions=[container], **extra)


def ec2_id(ecs: Any, arn: str) -> str:
    described = ecs.describe_container_instances(cluster="work", containerInstances=[arn])
    return str(described["containerInstances"][0]["ec2InstanceId"])


def per_instance(tasks: list[dict[str, Any]]) -> Counter[str]:
    return Counter(t["containerInstanceArn"] for t in tasks)


def refused(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


@pytest.fixture
def three_zones(ecs: Any) -> list[str]:
    ecs.create_cluster(clusterName="work")
    definition(ecs)
    return [register(ecs, zone) for zone in (A, B, C)]


def test_a_service_group_spreads_over_zones_by_default(ecs: Any, three_zones: list[str]) -> None:
    run = ecs.run_task(cluster="work", taskDefinition="web", count=6, group="service:web")
    assert run["failures"] == []
    assert Counter(t["availabilityZone"] for t in run["tasks"]) == {A: 2, B: 2, C: 2}
    assert {t["group"] for t in run["tasks"]} == {"service:web"}
    # Spread counts the group's tasks already placed: with zone a's two stopped, the
    # next two go there.
    for task in run["tasks"]:
        if task["availabilityZone"] == A:
            ecs.stop_task(cluster="work", task=task["taskArn"])
    more = ecs.run_task(cluster="work", taskDefinition="web", count=2, group="service:web")
    assert [t["availabilityZone"] for t in more["tasks"]] == [A, A]
    # Another group starts from zero: its spread ignores service:web's tasks.
    other = ecs.run_task(cluster="work", taskDefinition="web", count=3, group="service:api")
    assert Counter(t["availabilityZone"] for t in other["tasks"]) == {A: 1, B: 1, C: 1}


def test_spread_on_any_attribute_then_binpack(ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    definition(ecs)
    racks = {
        register(ecs, memory=m, rack=r): r for r, m in [("r1", 2048), ("r1", 4096), ("r2", 4096)]
    }
    strategy = [
        {"type": "spread", "field": "attribute:rack"},
        {"type": "binpack", "field": "memory"},
    ]
    run = ecs.run_task(cluster="work", taskDefinition="web", count=4, placementStrategy=strategy)
    placed = per_instance(run["tasks"])
    assert Counter(racks[arn] for arn in placed.elements()) == {"r1": 2, "r2": 2}
    small = next(arn for arn in racks if racks[arn] == "r1" and arn in placed)
    assert placed[small] == 2  # within rack r1, binpack fills the smaller host


def test_binpack_on_memory_fills_the_fullest_instance_first(ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    definition(ecs)
    small, medium, large = (register(ecs, memory=m) for m in (1024, 2048, 4096))
    binpack = [{"type": "binpack", "field": "memory"}]
    run = ecs.run_task(cluster="work", taskDefinition="web", count=3, placementStrategy=binpack)
    assert run["failures"] == []
    assert per_instance(run["tasks"]) == {small: 2, medium: 1}
    # Fullest first also across calls: medium has 1536 MiB left, large 4096.
    again = ecs.run_task(cluster="work", taskDefinition="web", count=3, placementStrategy=binpack)
    assert per_instance(again["tasks"]) == {medium: 3}
    assert large not in per_instance(run["tasks"] + again["tasks"])


def test_distinct_instance_places_one_per_instance_and_reports_the_rest(
    ecs: Any, three_zones: list[str]
) -> None:
    distinct = [{"type": "distinctInstance"}]
    run = ecs.run_task(cluster="work", taskDefinition="web", count=4, placementConstraints=distinct)
    assert per_instance(run["tasks"]) == dict.fromkeys(three_zones, 1)
    [failure] = run["failures"]
    assert failure["reason"] == "DistinctInstance" and failure["arn"] in three_zones
    assert "already runs a task of group family:web" in failure["detail"]
    # The group's tasks from earlier calls count too; another group is free to go.
    later = ecs.run_task(cluster="work", taskDefinition="web", placementConstraints=distinct)
    assert later["tasks"] == [] and later["failures"][0]["reason"] == "DistinctInstance"
    other = ecs.run_task(
        cluster="work", taskDefinition="web", group="batch", placementConstraints=distinct
    )
    assert len(other["tasks"]) == 1


def test_member_of_places_only_where_the_expression_holds(ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    definition(ecs)
    wanted = {register(ecs, A, "t3.micro"), register(ecs, B, "t3.large")}
    register(ecs, C, "t3.micro")
    register(ecs, A, "m5.large")
    expression = (
        f"attribute:ecs.instance-type =~ t3.* and attribute:ecs.availability-zone in [{A}, {B}]"
    )
    run = ecs.run_task(
        cluster="work",
        taskDefinition="web",
        count=8,
        placementConstraints=[{"type": "memberOf", "expression": expression}],
        # Spread, not the default random, which puts all 8 on one of them 1 time in 128.
        placementStrategy=[{"type": "spread", "field": "instanceId"}],
    )
    assert run["failures"] == []
    assert per_instance(run["tasks"]) == dict.fromkeys(wanted, 4)


def test_task_definition_constraints_bind_with_the_calls(ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    in_c = register(ecs, C, "t3.micro")
    register(ecs, C, "m5.large")
    in_a = register(ecs, A, "t3.micro")
    own = [{"type": "memberOf", "expression": f"attribute:ecs.availability-zone == {C}"}]
    definition(ecs, placementConstraints=own)
    call = [{"type": "memberOf", "expression": "attribute:ecs.instance-type == t3.micro"}]
    run = ecs.run_task(cluster="work", taskDefinition="web", count=3, placementConstraints=call)
    assert per_instance(run["tasks"]) == {in_c: 3}
    # StartTask places where it is told, but the definition's constraint still binds.
    started = ecs.start_task(cluster="work", taskDefinition="web", containerInstances=[in_a, in_c])
    assert per_instance(started["tasks"]) == {in_c: 1}
    [failure] = started["failures"]
    assert (failure["arn"], failure["reason"]) == (in_a, "MemberOf")
    assert f"does not match memberOf(attribute:ecs.availability-zone == {C})" in failure["detail"]


BAD_INPUT = [
    # (case, RunTask parameters, text the message must contain)
    (
        "syntax-error-position",
        {"placementConstraints": [{"type": "memberOf", "expression": "attribute:x == (a"}]},
        "placementConstraints[0].expression",
    ),
    (
        "distinct-with-expression",
        {"placementConstraints": [{"type": "distinctInstance", "expression": "agentConnected"}]},
        "placementConstraints[0].expression",
    ),
    (
        "binpack-field",
        {"placementStrategy": [{"type": "random"}, {"type": "binpack", "field": "disk"}]},
        "placementStrategy[1].field",
    ),
    (
        "spread-field",
        {"placementStrategy": [{"type": "spread", "field": "zone"}]},
        "placementStrategy[0].field",
    ),
]


@pytest.mark.parametrize(
    ("params", "fragment"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_placement_input_names_the_field(
    ecs: Any, three_zones: list[str], params: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        ecs.run_task(cluster="work", taskDefinition="web", **params)
    code, message = refused(excinfo)
    assert code == "InvalidParameterException"
    assert fragment in message


def test_a_malformed_expression_is_refused_with_its_position(
    ecs: Any, three_zones: list[str]
) -> None:
    expression = "attribute:ecs.instance-type =~ t3.* and and agentConnected == true"
    with pytest.raises(ClientError) as excinfo:
        ecs.run_task(
            cluster="work",
            taskDefinition="web",
            placementConstraints=[{"type": "memberOf", "expression": expression}],
        )
    code, message = refused(excinfo)
    assert code == "InvalidParameterException"
    assert f"at position {expression.index('and and') + 4}" in message, message


def test_a_task_too_big_for_every_instance_names_the_closest(ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    register(ecs, memory=1024)
    closest = register(ecs, memory=6144)
    register(ecs, memory=2048)
    definition(ecs, memory=8192)
    run = ecs.run_task(cluster="work", taskDefinition="web")
    assert run["tasks"] == []
    [failure] = run["failures"]
    assert (failure["arn"], failure["reason"]) == (closest, "RESOURCE:MEMORY")
    assert failure["detail"] == (
        f"Closest container instance {ec2_id(ecs, closest)}: "
        "it has 6144 MiB of memory left and the task needs 8192."
    )


def test_gpus_are_held_like_cpu_and_memory(ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    host = ecs.register_container_instance(
        cluster="work",
        totalResources=[
            {"name": "CPU", "type": "INTEGER", "integerValue": 4096},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": 4096},
            {"name": "GPU", "type": "STRINGSET", "stringSetValue": ["GPU-0", "GPU-1"]},
        ],
    )["containerInstance"]["containerInstanceArn"]
    register(ecs)  # no GPU: never a candidate for these tasks
    gpu = {"resourceRequirements": [{"type": "GPU", "value": "1"}]}
    definition(ecs, container=gpu)
    run = ecs.run_task(cluster="work", taskDefinition="web", count=3)
    # Two GPUs, one each: the third task finds none free, not the same one again.
    assert per_instance(run["tasks"]) == {host: 2}
    [failure] = run["failures"]
    assert failure["reason"] == "RESOURCE:GPU"

    def free() -> list[str]:
        described = ecs.describe_container_instances(cluster="work", containerInstances=[host])
        left = described["containerInstances"][0]["remainingResources"]
        return next(r["stringSetValue"] for r in left if r["name"] == "GPU")

    assert free() == []
    ecs.stop_task(cluster="work", task=run["tasks"][0]["taskArn"])
    assert len(free()) == 1  # given back when the task stops
    again = ecs.run_task(cluster="work", taskDefinition="web")
    assert per_instance(again["tasks"]) == {host: 1}
    assert free() == []


def test_required_attributes_decide_where_a_task_can_go(ecs: Any) -> None:
    """A syslog log driver needs the logging-driver capability (requiresAttributes)."""
    ecs.create_cluster(clusterName="work")
    plain, able = register(ecs), register(ecs)
    logs = {"logConfiguration": {"logDriver": "syslog"}}
    definition(ecs, container=logs)
    run = ecs.run_task(cluster="work", taskDefinition="web")
    assert run["tasks"] == []
    [failure] = run["failures"]
    assert failure["reason"] == "ATTRIBUTE" and failure["arn"] in (plain, able)
    assert "com.amazonaws.ecs.capability.logging-driver.syslog" in failure["detail"]
    capabilities = [
        "com.amazonaws.ecs.capability.logging-driver.syslog",
        "com.amazonaws.ecs.capability.docker-remote-api.1.19",
    ]
    ecs.put_attributes(
        cluster="work",
        attributes=[
            {"name": n, "targetType": "container-instance", "targetId": able} for n in capabilities
        ],
    )
    run = ecs.run_task(cluster="work", taskDefinition="web", count=2)
    assert per_instance(run["tasks"]) == {able: 2}


def test_aws_cli_run_task_with_strategies_and_constraints(
    server: LiveServer, ecs: Any, three_zones: list[str]
) -> None:
    constraints = [{"type": "memberOf", "expression": f"attribute:ecs.availability-zone != {C}"}]
    run = server.aws(
        "ecs",
        "run-task",
        "--cluster",
        "work",
        "--task-definition",
        "web",
        "--count",
        "4",
        "--group",
        "service:cli",
        "--placement-strategy",
        "type=spread,field=attribute:ecs.availability-zone",
        "type=binpack,field=memory",
        "--placement-constraints",
        json.dumps(constraints),
    )
    assert run.returncode == 0, run.stderr
    tasks = json.loads(run.stdout)["tasks"]
    assert Counter(t["availabilityZone"] for t in tasks) == {A: 2, B: 2}


def test_concurrent_run_tasks_never_overcommit_any_instance(server: LiveServer, ecs: Any) -> None:
    """20 clients at once, 3 tasks each, on room for 14: every instance's tasks fit it,
    and its remainingResources agree with them."""
    ecs.create_cluster(clusterName="work")
    definition(ecs, memory=300)
    sizes = {
        register(ecs, zone, memory=m, cpu=4096): m for zone, m in [(A, 1000), (B, 1500), (C, 2000)]
    }
    clients = [server.client("ecs") for _ in range(20)]

    def run(client: Any) -> list[dict[str, Any]]:
        return list(client.run_task(cluster="work", taskDefinition="web", count=3)["tasks"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        placed = [t for tasks in pool.map(run, clients) for t in tasks]
    assert len(placed) == sum(m // 300 for m in sizes.values())  # every slot filled, no more
    assert_held_as_placed(ecs, sizes, placed)


def assert_held_as_placed(ecs: Any, sizes: dict[str, int], placed: list[dict[str, Any]]) -> None:
    """Each instance (ARN -> MiB) holds no more than it has, and its remainingResources
    are what its tasks (300 MiB, 128 CPU units each, of 4096) leave."""
    held = Counter[str]()
    for task in placed:
        held[task["containerInstanceArn"]] += int(task["memory"])
    described = ecs.describe_container_instances(cluster="work", containerInstances=list(sizes))
    for instance in described["containerInstances"]:
        arn = instance["containerInstanceArn"]
        assert held[arn] <= sizes[arn]
        left = {r["name"]: r.get("integerValue") for r in instance["remainingResources"]}
        assert left["MEMORY"] == sizes[arn] - held[arn]
        assert left["CPU"] == 4096 - 128 * (held[arn] // 300)


def test_two_servers_on_one_database_never_overcommit(postgres_server: str, tmp_path: Path) -> None:
    """Two server processes placing in one cluster of one PostgreSQL: each plans on
    what it last read, so their writes race; a lost race is planned again, and every
    instance ends holding no more than it has, its remainingResources in agreement."""
    url = fresh_database(postgres_server)
    servers = [LiveServer(tmp_path / name, url).start() for name in ("one", "two")]
    try:
        ecs = servers[0].client("ecs")
        ecs.create_cluster(clusterName="work")
        definition(ecs, memory=300)
        sizes = {register(ecs, zone, memory=3000): 3000 for zone in (A, B, C, A, B, C)}
        clients = [server.client("ecs") for server in servers for _ in range(8)]

        def run(client: Any) -> list[dict[str, Any]]:
            tasks = []
            for _ in range(4):  # 16 clients x 4 calls x 2 tasks: 128 asked, room for 60
                tasks += client.run_task(cluster="work", taskDefinition="web", count=2)["tasks"]
            return tasks

        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            placed = [t for tasks in pool.map(run, clients) for t in tasks]
        assert len(placed) == sum(m // 300 for m in sizes.values())  # every slot filled
        assert_held_as_placed(ecs, sizes, placed)
    finally:
        for server in servers:
            server.stop()


def test_concurrent_distinct_instance_holds_across_calls(server: LiveServer, ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    definition(ecs)
    instances = {register(ecs, zone) for zone in (A, B, C, A, B)}
    clients = [server.client("ecs") for _ in range(20)]
    distinct = [{"type": "distinctInstance"}]

    def run(client: Any) -> list[dict[str, Any]]:
        answer = client.run_task(
            cluster="work", taskDefinition="web", group="one-each", placementConstraints=distinct
        )
        return list(answer["tasks"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        placed = [t for tasks in pool.map(run, clients) for t in tasks]
    assert per_instance(placed) == dict.fromkeys(instances, 1)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def impatient_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server that calls an agent gone after 1 s of silence."""
    yield from live_server(request, tmp_path_factory, "placement", "--agent-timeout", "1")


def test_an_instance_whose_agent_is_gone_fails_with_agent(impatient_server: LiveServer) -> None:
    impatient_server.reset()
    ecs = impatient_server.client("ecs")
    ecs.create_cluster(clusterName="work")
    definition(ecs)
    silent = ecs.register_container_instance(
        cluster="work",
        totalResources=[
            {"name": "CPU", "type": "INTEGER", "integerValue": 4096},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": 8192},
        ],
        versionInfo={"agentVersion": "0.1.0", "agentHash": "dockyard-test"},
    )["containerInstance"]["containerInstanceArn"]
    time.sleep(1.2)
    run = ecs.run_task(cluster="work", taskDefinition="web")
    assert run["tasks"] == []
    [failure] = run["failures"]
    assert (failure["arn"], failure["reason"]) == (silent, "AGENT")
    assert "agent is not connected" in failure["detail"]
    # An instance without an agent to lose takes the task instead.
    hand = register(ecs)
    assert per_instance(ecs.run_task(cluster="work", taskDefinition="web")["tasks"]) == {hand: 1}
