"""Services end to end: a live server, several ``dockyard agent`` processes on the one
Docker Engine (each declared as its own instance, 1024 CPU / 512 MiB, in its own
availability zone), busybox services driven through boto3 as an ECS user drives them.

One server and three agents (zones lab-1a, lab-1b, lab-1c) serve every test but the
lost-host one, which needs a server with a short ``--lost-host-grace`` and an agent
it can kill; each test deletes its services and waits for their tasks to stop.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.clients import Docker
from tests.e2e.services_harness import (
    STEADY,
    Fleet,
    push_busybox,
    running,
    unstopped,
    wait_until,
)
from tests.e2e.test_agent import unique
from tests.live import LiveServer

ZONES = ("lab-1a", "lab-1b", "lab-1c")
# The lost-host server: agents poll at least every AGENT_TIMEOUT / 3 s, so a live agent
# is never silent for GRACE seconds (the server wants GRACE >= AGENT_TIMEOUT), and a
# killed one is lost soon.
AGENT_TIMEOUT, GRACE = 4, 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("services-server")).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def image(
    server: LiveServer, docker: Docker, busybox_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    ref = push_busybox(
        server, docker, busybox_image, tmp_path_factory.mktemp("docker-config"), "busybox"
    )
    yield ref
    docker("image", "rm", "--force", ref, check=False)


@pytest.fixture(scope="module")
def three(
    server: LiveServer, docker: Docker, image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    fleet = Fleet(server, docker, tmp_path_factory.mktemp("agents"), unique("services"))
    try:
        fleet.join(*ZONES)
        yield fleet
    finally:
        fleet.close()


@pytest.fixture
def fleet(three: Fleet) -> Iterator[Fleet]:
    """The three-instance fleet; this test's services are deleted afterwards."""
    yield three
    three.delete_services()


def zone_counts(fleet: Fleet, tasks: list[dict[str, Any]]) -> list[int]:
    counts = Counter(fleet.zones[t["containerInstanceArn"]] for t in tasks)
    return sorted(counts.values())


def test_a_replica_service_spreads_over_zones_and_scales_up_in_place(
    fleet: Fleet, image: str
) -> None:
    definition = fleet.register(unique("spread"), image)
    name = unique("web")
    fleet.create_service(name, taskDefinition=definition, desiredCount=4)
    tasks = fleet.wait_steady(name, definition, 4)

    # The default strategy spreads over zones, then instances: 2 + 1 + 1.
    assert fleet.spread(tasks) == [1, 1, 2], fleet.story(name)
    assert zone_counts(fleet, tasks) == [1, 1, 2]
    instances_before = set(fleet.zones)
    first = {t["taskArn"] for t in tasks}
    fleet.wait_event(name, STEADY)
    steadies = fleet.count_events(name, STEADY)

    fleet.update_service(name, desiredCount=5)
    tasks = fleet.wait_steady(name, definition, 5)

    # No new instance: the fifth task joined the four on the three instances there were.
    assert {t["taskArn"] for t in tasks} > first, "the first four tasks kept running"
    assert {t["containerInstanceArn"] for t in tasks} <= instances_before
    assert set(fleet.ecs.list_container_instances(cluster=fleet.name)["containerInstanceArns"]) == (
        instances_before
    )
    assert fleet.spread(tasks) == [1, 2, 2], fleet.story(name)
    service = fleet.service(name)
    assert (service["desiredCount"], service["runningCount"], service["pendingCount"]) == (5, 5, 0)
    [primary] = service["deployments"]
    assert (primary["status"], primary["rolloutState"]) == ("PRIMARY", "COMPLETED")
    events = fleet.wait_event(name, STEADY, more_than=steadies)
    assert any("has started 1 tasks" in e for e in events), events


def test_a_daemon_service_runs_one_task_per_instance_and_on_a_new_one(
    fleet: Fleet, image: str
) -> None:
    definition = fleet.register(unique("daemon"), image)
    name = unique("daemon")
    fleet.create_service(name, taskDefinition=definition, schedulingStrategy="DAEMON")
    try:
        tasks = fleet.wait_steady(name, definition, 3)
        assert fleet.spread(tasks) == [1, 1, 1], fleet.story(name)
        time.sleep(2)  # a few loop passes later: still exactly one each
        assert fleet.spread(unstopped(fleet.tasks(name))) == [1, 1, 1], fleet.story(name)

        [joined] = fleet.join("lab-1d")
        tasks = fleet.wait_steady(
            name, definition, 4, what="the daemon to run one task on each of 4 instances"
        )
        assert fleet.spread(tasks) == [1, 1, 1, 1], fleet.story(name)
        assert joined in {t["containerInstanceArn"] for t in tasks}
        service = fleet.service(name)
        assert service["schedulingStrategy"] == "DAEMON"
        assert service["runningCount"] == 4
    finally:
        if "lab-1d" in fleet.agents:
            fleet.leave("lab-1d")


def test_a_rolling_update_stays_within_minimum_healthy_and_maximum_percent(
    fleet: Fleet, image: str
) -> None:
    family = unique("rolling")
    old = fleet.register(family, image)
    new = fleet.register(family, image, environment=[{"name": "REVISION", "value": "2"}])
    name = unique("rolling")
    fleet.create_service(
        name,
        taskDefinition=old,
        desiredCount=4,
        deploymentConfiguration={"minimumHealthyPercent": 50, "maximumPercent": 200},
    )
    fleet.wait_steady(name, old, 4)
    fleet.wait_event(name, STEADY)
    steadies = fleet.count_events(name, STEADY)

    fleet.update_service(name, taskDefinition=new)
    samples: list[tuple[int, int, int]] = []  # (healthy, unstopped, running on the engine)
    deadline = time.monotonic() + 90
    while True:
        tasks = fleet.tasks(name)
        engine = fleet.engine_running(family)
        samples.append((sum(map(running, tasks)), len(unstopped(tasks)), engine))
        if fleet.steady(name, new, 4):
            break
        assert time.monotonic() < deadline, f"the roll-out did not finish\n{fleet.story(name)}"
        time.sleep(0.5)  # twice a second: stricter than the once a second asked for

    print(f"roll-out samples (healthy, unstopped, engine running): {samples}")
    assert len(samples) >= 2, "the roll-out finished before a sample saw it under way"
    assert min(s[0] for s in samples) >= 2, f"fewer than 2 healthy tasks: {samples}"
    assert max(s[1] for s in samples) <= 8, f"more than 8 unstopped tasks: {samples}"
    assert max(s[2] for s in samples) <= 8, f"more than 8 running containers: {samples}"
    service = fleet.service(name)
    [primary] = service["deployments"]
    assert (primary["taskDefinition"], primary["rolloutState"]) == (new, "COMPLETED")
    assert primary["rolloutStateReason"], primary
    fleet.wait_event(name, STEADY, more_than=steadies)
    stopped_old = [t for t in fleet.tasks(name) if t["taskDefinitionArn"] == old]
    assert len(stopped_old) == 4 and all(t["lastStatus"] == "STOPPED" for t in stopped_old)
    assert {t["stopCode"] for t in stopped_old} == {"ServiceSchedulerInitiated"}


def test_a_revision_that_cannot_start_trips_the_circuit_breaker_and_rolls_back(
    fleet: Fleet, image: str
) -> None:
    family = unique("breaker")
    good = fleet.register(family, image)
    missing = image.rsplit(":", 1)[0] + ":never-pushed"
    bad = fleet.register(family, missing)
    name = unique("breaker")
    breaker = {"deploymentCircuitBreaker": {"enable": True, "rollback": True}}
    fleet.create_service(name, taskDefinition=good, desiredCount=2, deploymentConfiguration=breaker)
    before = {t["taskArn"] for t in fleet.wait_steady(name, good, 2)}

    updated = fleet.update_service(name, taskDefinition=bad)
    [failing] = [d for d in updated["deployments"] if d["status"] == "PRIMARY"]
    assert failing["taskDefinition"] == bad
    seen_failed = False

    def rolled_back() -> list[dict[str, Any]] | None:
        nonlocal seen_failed
        deployments = fleet.service(name).get("deployments", [])
        seen_failed |= any(
            d["id"] == failing["id"] and d["rolloutState"] == "FAILED" for d in deployments
        )
        return fleet.steady(name, good, 2)

    tasks = wait_until(
        "the circuit breaker to roll the service back to the old revision",
        rolled_back,
        120,
        lambda: fleet.story(name),
    )

    # The old revision runs again: the PRIMARY deployment is the old one, its tasks
    # RUNNING (with a minimum of 100% the old tasks were never stopped).
    service = fleet.service(name)
    assert service["taskDefinition"] == good
    [primary] = service["deployments"]
    assert (primary["status"], primary["taskDefinition"]) == ("PRIMARY", good)
    assert {t["taskArn"] for t in tasks} == before
    # The new one failed: its tasks could not pull, the breaker counted them.
    failed = [t for t in fleet.tasks(name) if t["taskDefinitionArn"] == bad]
    assert len(failed) >= 3, fleet.story(name)  # the threshold for 2 tasks is 3
    assert {t["lastStatus"] for t in failed} == {"STOPPED"}
    assert {t["stopCode"] for t in failed} <= {"TaskFailedToStart", "ServiceSchedulerInitiated"}
    reasons = " ".join(
        f"{t.get('stoppedReason', '')} {c.get('reason', '')}"
        for t in failed
        for c in t["containers"]
    )
    assert "CannotPullContainerError" in reasons, reasons
    events = fleet.events(name)
    assert any(failing["id"] in e and "deployment failed" in e for e in events), events
    # The deployment stays on record as failed, whatever DescribeServices showed.
    record = failed_deployment(fleet, name, failing["id"])
    assert record["status"] == "ROLLBACK_SUCCESSFUL", record
    assert record["deploymentCircuitBreaker"]["status"] == "TRIGGERED", record
    assert record["deploymentCircuitBreaker"]["failureCount"] >= 3, record
    print(f"FAILED seen in DescribeServices while polling: {seen_failed}")


def failed_deployment(fleet: Fleet, name: str, deployment_id: str) -> dict[str, Any]:
    """The ServiceDeployment of ``deployment_id`` (ecs-svc/DIGITS), through
    ListServiceDeployments and DescribeServiceDeployments."""
    arns = fleet.ecs.list_service_deployments(cluster=fleet.name, service=name)[
        "serviceDeployments"
    ]
    digits = deployment_id.rsplit("/", 1)[-1]
    [arn] = [d["serviceDeploymentArn"] for d in arns if d["serviceDeploymentArn"].endswith(digits)]
    answer = fleet.ecs.describe_service_deployments(serviceDeploymentArns=[arn])
    assert not answer["failures"], answer["failures"]
    [record] = answer["serviceDeployments"]
    return dict(record)


def test_draining_an_instance_moves_its_service_tasks_and_leaves_a_standalone_one(
    fleet: Fleet, image: str
) -> None:
    definition = fleet.register(unique("drain"), image)
    name = unique("drain")
    fleet.create_service(name, taskDefinition=definition, desiredCount=4)
    tasks = fleet.wait_steady(name, definition, 4)
    per_instance = Counter(t["containerInstanceArn"] for t in tasks)
    target = per_instance.most_common(1)[0][0]  # the instance with two service tasks
    zone = fleet.zones[target]
    solo = fleet.register(unique("solo"), image)
    answer = fleet.ecs.run_task(
        cluster=fleet.name,
        taskDefinition=solo,
        placementConstraints=[
            {"type": "memberOf", "expression": f"attribute:ecs.availability-zone == {zone}"}
        ],
    )
    assert not answer["failures"], answer["failures"]
    [standalone] = [t["taskArn"] for t in answer["tasks"]]
    try:
        fleet.ecs.get_waiter("tasks_running").wait(
            cluster=fleet.name, tasks=[standalone], WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        [task] = fleet.describe_tasks([standalone])
        assert task["containerInstanceArn"] == target

        fleet.ecs.update_container_instances_state(
            cluster=fleet.name, containerInstances=[target], status="DRAINING"
        )
        moved = fleet.wait_steady(
            name,
            definition,
            4,
            where=lambda live: all(t["containerInstanceArn"] != target for t in live),
            what=f"the service's tasks to leave the DRAINING instance in {zone}",
        )
        assert fleet.spread(moved) == [0, 2, 2], fleet.story(name)
        left = {t["taskArn"] for t in tasks if t["containerInstanceArn"] == target}
        for task in fleet.describe_tasks(left):
            assert (task["lastStatus"], task["stopCode"]) == (
                "STOPPED",
                "ServiceSchedulerInitiated",
            )

        [task] = fleet.describe_tasks([standalone])
        assert (task["lastStatus"], task["desiredStatus"]) == ("RUNNING", "RUNNING"), task
        state = fleet.docker(
            "inspect", "--format", "{{.State.Status}}", task["containers"][0]["runtimeId"]
        )
        assert state.stdout.strip() == "running"
        instance = fleet.describe_instance(target)
        assert (instance["status"], instance["runningTasksCount"]) == ("DRAINING", 1)
    finally:
        fleet.ecs.stop_task(cluster=fleet.name, task=standalone, reason="test over")
        fleet.ecs.update_container_instances_state(
            cluster=fleet.name, containerInstances=[target], status="ACTIVE"
        )


def test_a_lost_host_has_its_service_tasks_replaced_elsewhere(
    docker: Docker, busybox_image: str, tmp_path: Path
) -> None:
    server = LiveServer(
        tmp_path / "server", None,
        "--agent-timeout", str(AGENT_TIMEOUT), "--lost-host-grace", str(GRACE),
    ).start()  # fmt: skip
    fleet = Fleet(server, docker, tmp_path, unique("lost"))
    try:
        image = push_busybox(server, docker, busybox_image, tmp_path / "docker-config", "busybox")
        fleet.join(*ZONES)
        definition = fleet.register(unique("lost"), image)
        name = unique("lost")
        fleet.create_service(name, taskDefinition=definition, desiredCount=3)
        tasks = fleet.wait_steady(name, definition, 3)
        assert fleet.spread(tasks) == [1, 1, 1], fleet.story(name)
        victim = fleet.instance("lab-1c")
        [doomed] = [t for t in tasks if t["containerInstanceArn"] == victim]

        fleet.agents["lab-1c"].kill9()
        killed_at = time.time()
        moved = fleet.wait_steady(
            name,
            definition,
            3,
            timeout=GRACE + 60,
            where=lambda live: all(t["containerInstanceArn"] != victim for t in live),
            what=f"the tasks of the killed agent's instance to run elsewhere after {GRACE} s",
        )
        assert sorted(Counter(t["containerInstanceArn"] for t in moved).values()) == [1, 2]
        [lost] = fleet.describe_tasks([doomed["taskArn"]])
        assert lost["lastStatus"] == "STOPPED"
        assert lost["stopCode"] == "InfrastructureHealth", lost
        assert lost["stoppedReason"].startswith("Host lost"), lost["stoppedReason"]
        # Not before the grace: the agent's last poll was at most AGENT_TIMEOUT / 3 ago.
        stopped_at = lost["stoppedAt"]
        stopped = stopped_at.timestamp() if isinstance(stopped_at, datetime) else stopped_at
        assert stopped >= killed_at + GRACE - AGENT_TIMEOUT / 3 - 1, (stopped, killed_at)

        listed = fleet.ecs.list_container_instances(cluster=fleet.name)["containerInstanceArns"]
        assert victim in listed
        instance = fleet.describe_instance(victim)
        assert (instance["status"], instance["agentConnected"]) == ("ACTIVE", False)

        # The agent comes back: the container it left running is an orphan and stops.
        orphan = doomed["containers"][0]["runtimeId"]
        assert docker("inspect", "--format", "{{.State.Running}}", orphan).stdout.strip() == "true"
        fleet.agents["lab-1c"].start()
        wait_until(
            "the restarted agent to stop the lost task's container",
            lambda: (
                docker("inspect", "--format", "{{.State.Running}}", orphan).stdout.strip()
                == "false"
            ),
            30,
            lambda: fleet.agents["lab-1c"].output(),
        )
        wait_until(
            "the restarted agent's instance to show agentConnected true",
            lambda: fleet.describe_instance(victim)["agentConnected"],
            30,
        )
        assert {t["taskArn"] for t in unstopped(fleet.tasks(name))} == {
            t["taskArn"] for t in moved
        }, fleet.story(name)
        fleet.delete_services()
    finally:
        fleet.close()
        server.stop()
