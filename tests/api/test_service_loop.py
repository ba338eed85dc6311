"""The service loop in a live server, driven through boto3: instances registered as
``dockyard agent`` registers them, and ``Fleet``, simulated agents that poll the real
agent channel and report their tasks' states with SubmitTaskStateChange (RUNNING
when told to run, STOPPED when told to stop; a task of a ``broken`` task definition
fails to start). The loop runs on the server's own clock, so checks poll."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.api.test_agent_channel import FakeAgent
from tests.live import REGION, LiveServer

T = TypeVar("T")
CLUSTER = "fleet"
ZONES = ("a", "b", "c")


class Fleet:
    """Simulated agents, one per instance; ``step`` runs each once."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.agents: list[FakeAgent] = []
        self.reported: dict[str, str] = {}  # task ARN -> the last status reported
        self.broken: set[str] = set()  # task definition families that never start
        self.silent: set[str] = set()  # instances whose agent stopped answering

    def join(self, zone: str) -> str:
        agent = FakeAgent(self.server, CLUSTER)
        arn = agent.register(cpu=4096, memory=8192)
        agent.ecs.put_attributes(
            cluster=CLUSTER,
            attributes=[
                {
                    "name": "ecs.availability-zone",
                    "value": f"{REGION}{zone}",
                    "targetType": "container-instance",
                    "targetId": arn,
                }
            ],
        )
        self.agents.append(agent)
        return arn

    def step(self) -> None:
        for agent in self.agents:
            if agent.arn in self.silent:
                continue
            for task in agent.poll(None, wait=0)["tasks"]:
                arn, desired = task["taskArn"], task["desiredStatus"]
                if desired == "STOPPED":
                    self._report(agent, arn, "STOPPED")
                elif task["family"] in self.broken:
                    self._report(agent, arn, "STOPPED", "CannotPullContainerError: no such image")
                else:
                    self._report(agent, arn, "RUNNING")

    def _report(self, agent: FakeAgent, arn: str, status: str, reason: str = "") -> None:
        if self.reported.get(arn) in (status, "STOPPED"):
            return
        extra = {"reason": reason} if reason else {}
        agent.ecs.submit_task_state_change(cluster=CLUSTER, task=arn, status=status, **extra)
        self.reported[arn] = status

    def until(self, check: Callable[[], T], seconds: float = 30.0) -> T:
        """Step the agents until ``check`` returns something truthy."""
        deadline = time.monotonic() + seconds
        while True:
            self.step()
            result = check()
            if result:
                return result
            assert time.monotonic() < deadline, "the service did not get there in time"
            time.sleep(0.2)

    def close(self) -> None:
        for agent in self.agents:
            agent.close()


@pytest.fixture
def fleet(server: LiveServer, ecs: Any) -> Iterator[Fleet]:
    ecs.create_cluster(clusterName=CLUSTER)
    made = Fleet(server)
    yield made
    made.close()


def definition(ecs: Any, family: str = "web", image: str = "busybox") -> str:
    container = {"name": "app", "image": image, "cpu": 128, "memory": 256}
    registered = ecs.register_task_definition(family=family, containerDefinitions=[container])
    return str(registered["taskDefinition"]["taskDefinitionArn"])


def service(ecs: Any, name: str = "web") -> dict[str, Any]:
    return dict(ecs.describe_services(cluster=CLUSTER, services=[name])["services"][0])


def tasks(ecs: Any, name: str = "web", status: str = "RUNNING") -> list[dict[str, Any]]:
    arns = ecs.list_tasks(cluster=CLUSTER, serviceName=name, desiredStatus=status)["taskArns"]
    if not arns:
        return []
    return list(ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"])


def running(ecs: Any, name: str = "web") -> list[dict[str, Any]]:
    return [t for t in tasks(ecs, name) if t["lastStatus"] == "RUNNING"]


def steady(ecs: Any, name: str = "web") -> bool:
    described = service(ecs, name)
    latest = described["events"][0]["message"] if described["events"] else ""
    return latest.endswith("has reached a steady state.") and all(
        d["rolloutState"] == "COMPLETED" for d in described["deployments"]
    )


def test_replicas_spread_over_instances_and_zones_and_scale_up_in_place(
    ecs: Any, fleet: Fleet
) -> None:
    instances = {fleet.join(zone) for zone in ZONES}
    definition(ecs)
    ecs.create_service(cluster=CLUSTER, serviceName="web", taskDefinition="web", desiredCount=4)
    fleet.until(lambda: steady(ecs))
    placed = running(ecs)
    assert len(placed) == 4
    assert {t["containerInstanceArn"] for t in placed} == instances
    assert {t["availabilityZone"] for t in placed} == {f"{REGION}{z}" for z in ZONES}
    described = service(ecs)
    assert (described["runningCount"], described["pendingCount"]) == (4, 0)

    ecs.update_service(cluster=CLUSTER, service="web", desiredCount=5)
    fleet.until(lambda: len(running(ecs)) == 5 and steady(ecs))
    assert {t["containerInstanceArn"] for t in running(ecs)} == instances


def test_a_daemon_runs_on_every_instance_and_on_one_that_joins(ecs: Any, fleet: Fleet) -> None:
    for zone in ZONES:
        fleet.join(zone)
    definition(ecs, "monitor")
    ecs.create_service(
        cluster=CLUSTER, serviceName="monitor", taskDefinition="monitor",
        schedulingStrategy="DAEMON",
    )  # fmt: skip
    fleet.until(lambda: len(running(ecs, "monitor")) == 3 and steady(ecs, "monitor"))
    fourth = fleet.join("a")
    fleet.until(lambda: len(running(ecs, "monitor")) == 4)
    assert fourth in {t["containerInstanceArn"] for t in running(ecs, "monitor")}
    fleet.until(lambda: service(ecs, "monitor")["desiredCount"] == 4)


def test_a_rolling_update_stays_within_50_and_200_percent(ecs: Any, fleet: Fleet) -> None:
    for zone in ZONES:
        fleet.join(zone)
    definition(ecs)
    ecs.create_service(
        cluster=CLUSTER, serviceName="web", taskDefinition="web", desiredCount=4,
        deploymentConfiguration={"minimumHealthyPercent": 50, "maximumPercent": 200},
    )  # fmt: skip
    fleet.until(lambda: steady(ecs))
    v2 = definition(ecs)
    ecs.update_service(cluster=CLUSTER, service="web", taskDefinition=v2)
    low, high = math.ceil(4 * 50 / 100), 4 * 200 // 100

    def done() -> bool:
        # Stopping ones first, then one read of all: a task that moves between the
        # listings is stopping (not healthy), and one started after them is not healthy
        # yet, so the sample never shows fewer healthy tasks than there were.
        arns = [
            arn
            for status in ("STOPPED", "RUNNING")
            for arn in ecs.list_tasks(cluster=CLUSTER, serviceName="web", desiredStatus=status)[
                "taskArns"
            ]
        ]
        every = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
        unstopped = [t for t in every if t["lastStatus"] != "STOPPED"]
        healthy = [
            t for t in unstopped if t["lastStatus"] == "RUNNING" and t["desiredStatus"] == "RUNNING"
        ]
        assert len(healthy) >= low and len(unstopped) <= high
        return {t["taskDefinitionArn"] for t in healthy} == {v2} and steady(ecs)

    fleet.until(done)
    [primary] = service(ecs)["deployments"]
    assert (primary["taskDefinition"], primary["rolloutState"]) == (v2, "COMPLETED")


def test_draining_moves_service_tasks_and_leaves_a_standalone_task(ecs: Any, fleet: Fleet) -> None:
    a, *_ = [fleet.join(zone) for zone in ZONES]
    definition(ecs)
    ecs.create_service(cluster=CLUSTER, serviceName="web", taskDefinition="web", desiredCount=3)
    fleet.until(lambda: steady(ecs))
    alone = ecs.start_task(cluster=CLUSTER, taskDefinition="web", containerInstances=[a])
    alone_arn = alone["tasks"][0]["taskArn"]
    ecs.update_container_instances_state(cluster=CLUSTER, containerInstances=[a], status="DRAINING")
    fleet.until(
        lambda: (
            len(running(ecs)) == 3
            and a not in {t["containerInstanceArn"] for t in running(ecs)}
            and steady(ecs)
        )
    )
    standalone = ecs.describe_tasks(cluster=CLUSTER, tasks=[alone_arn])["tasks"][0]
    assert standalone["lastStatus"] == "RUNNING"


def test_a_broken_revision_trips_the_circuit_breaker_and_rolls_back(ecs: Any, fleet: Fleet) -> None:
    for zone in ZONES:
        fleet.join(zone)
    v1 = definition(ecs)
    ecs.create_service(
        cluster=CLUSTER, serviceName="web", taskDefinition="web", desiredCount=2,
        deploymentConfiguration={
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        },
    )  # fmt: skip
    fleet.until(lambda: steady(ecs))
    v2 = definition(ecs, "broken", image="127.0.0.1:1/no-such-image")
    fleet.broken.add("broken")
    ecs.update_service(cluster=CLUSTER, service="web", taskDefinition=v2)

    def rolled_back() -> bool:
        return service(ecs)["taskDefinition"] == v1 and steady(ecs)

    fleet.until(rolled_back, seconds=60)
    described = service(ecs)
    assert described["taskDefinition"] == v1
    assert {t["taskDefinitionArn"] for t in running(ecs)} == {v1}
    messages = [e["message"] for e in described["events"]]
    assert any("deployment failed: tasks failed to start." in m for m in messages)
