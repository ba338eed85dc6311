"""Lost hosts through the API: a server with a 2 s ``--lost-host-grace``, an agent
(spoken by hand, as ``FakeAgent``) that polls and then goes silent, and an instance
registered through the plain API, whose tasks no agent can lose."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_agent_channel import FakeAgent
from tests.live import LiveServer, live_server

GRACE = 2  # seconds: --lost-host-grace
AGENT_TIMEOUT = 1  # seconds: --agent-timeout (the grace may not be shorter)
WAIT = {"Delay": 1, "MaxAttempts": 15}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def lost_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    yield from live_server(
        request,
        tmp_path_factory,
        "lost-hosts",
        "--agent-timeout",
        str(AGENT_TIMEOUT),
        "--lost-host-grace",
        str(GRACE),
    )


@pytest.fixture
def ecs(lost_server: LiveServer) -> Any:
    lost_server.reset()
    client = lost_server.client("ecs")
    client.create_cluster(clusterName="work")
    client.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "web", "image": "busybox", "memory": 256}],
    )
    return client


@pytest.fixture
def agent(lost_server: LiveServer, ecs: Any) -> Iterator[FakeAgent]:
    fake = FakeAgent(lost_server)
    fake.register(cpu=1024, memory=2048)
    yield fake
    fake.close()


def api_only_instance(ecs: Any) -> str:
    """An instance registered as a tool would, with no Dockyard agent behind it."""
    arn: str = ecs.register_container_instance(
        cluster="work",
        totalResources=[
            {"name": "CPU", "type": "INTEGER", "integerValue": 1024},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": 2048},
        ],
    )["containerInstance"]["containerInstanceArn"]
    return arn


def start(ecs: Any, instance: str, count: int = 1) -> list[str]:
    started = ecs.start_task(
        cluster="work", taskDefinition="web", containerInstances=[instance] * count
    )
    assert not started["failures"], started["failures"]
    return [t["taskArn"] for t in started["tasks"]]


def describe_instance(ecs: Any, arn: str) -> dict[str, Any]:
    [found] = ecs.describe_container_instances(cluster="work", containerInstances=[arn])[
        "containerInstances"
    ]
    return dict(found)


def memory(resources: list[dict[str, Any]]) -> int:
    return int(next(r["integerValue"] for r in resources if r["name"] == "MEMORY"))


def test_a_silent_agents_tasks_are_stopped_and_the_api_only_ones_kept(
    ecs: Any, agent: FakeAgent
) -> None:
    manual = api_only_instance(ecs)
    running, pending = start(ecs, agent.arn, count=2)
    [kept] = start(ecs, manual)
    ecs.submit_task_state_change(cluster="work", task=kept, status="RUNNING")  # by hand

    # The agent receives both tasks, reports one RUNNING, then goes silent.
    answer = agent.poll(None, wait=0)
    assert {t["taskArn"] for t in answer["tasks"]} == {running, pending}
    agent.ecs.submit_task_state_change(cluster="work", task=running, status="RUNNING")
    silent_from = time.time()

    ecs.get_waiter("tasks_stopped").wait(
        cluster="work", tasks=[running, pending], WaiterConfig=WAIT
    )
    stopped_after = time.time() - silent_from
    assert GRACE <= stopped_after < GRACE + 5
    instance_id = agent.arn.rpartition("/")[2]
    tasks = ecs.describe_tasks(cluster="work", tasks=[running, pending])["tasks"]
    for task in tasks:
        assert (task["lastStatus"], task["desiredStatus"]) == ("STOPPED", "STOPPED")
        assert task["stopCode"] == "InfrastructureHealth"
        assert re.fullmatch(
            rf"Host lost: the agent of container instance {instance_id} has been silent "
            r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(more than 2 s\)\.",
            task["stoppedReason"],
        ), task["stoppedReason"]
        assert task["containers"][0]["lastStatus"] == "STOPPED"

    # The instance stays, ACTIVE and listed, disconnected, holding nothing.
    lost = describe_instance(ecs, agent.arn)
    assert (lost["status"], lost["agentConnected"]) == ("ACTIVE", False)
    assert (lost["runningTasksCount"], lost["pendingTasksCount"]) == (0, 0)
    assert memory(lost["remainingResources"]) == memory(lost["registeredResources"]) == 2048
    listed = ecs.list_container_instances(cluster="work")["containerInstanceArns"]
    assert sorted(listed) == sorted([agent.arn, manual])
    assert ecs.list_tasks(cluster="work", desiredStatus="STOPPED")["taskArns"] == sorted(
        [running, pending]
    )

    # The instance without an agent, silent just as long, is untouched.
    [task] = ecs.describe_tasks(cluster="work", tasks=[kept])["tasks"]
    assert (task["lastStatus"], task["desiredStatus"]) == ("RUNNING", "RUNNING")
    other = describe_instance(ecs, manual)
    assert (other["agentConnected"], other["runningTasksCount"]) == (True, 1)


def test_the_returning_agent_gets_an_empty_list_and_cannot_revive_its_tasks(
    ecs: Any, agent: FakeAgent
) -> None:
    [arn] = start(ecs, agent.arn)
    first = agent.poll(None, wait=0)
    assert [t["taskArn"] for t in first["tasks"]] == [arn]
    agent.ecs.submit_task_state_change(cluster="work", task=arn, status="RUNNING")
    ecs.get_waiter("tasks_stopped").wait(cluster="work", tasks=[arn], WaiterConfig=WAIT)
    [lost] = ecs.describe_tasks(cluster="work", tasks=[arn])["tasks"]

    # Back: the full list no longer holds the task, so the agent stops its containers.
    back = agent.poll(first["version"], wait=0)
    assert back["tasks"] == [] and back["version"] > first["version"]
    assert describe_instance(ecs, agent.arn)["agentConnected"] is True

    # Its late reports are acknowledged but change nothing that matters.
    agent.ecs.submit_task_state_change(
        cluster="work",
        task=arn,
        status="RUNNING",
        containers=[{"containerName": "web", "status": "RUNNING", "runtimeId": "abc"}],
    )
    agent.ecs.submit_task_state_change(
        cluster="work",
        task=arn,
        status="STOPPED",
        reason="Essential container in task exited",
        containers=[{"containerName": "web", "status": "STOPPED", "exitCode": 143}],
    )
    [after] = ecs.describe_tasks(cluster="work", tasks=[arn])["tasks"]
    for key in ("lastStatus", "desiredStatus", "stopCode", "stoppedReason", "stoppedAt"):
        assert after[key] == lost[key], key
    assert after["containers"][0]["lastStatus"] == "STOPPED"
    instance = describe_instance(ecs, agent.arn)
    assert (instance["runningTasksCount"], instance["pendingTasksCount"]) == (0, 0)
    assert memory(instance["remainingResources"]) == 2048


def test_an_agent_that_keeps_polling_keeps_its_tasks(ecs: Any, agent: FakeAgent) -> None:
    [arn] = start(ecs, agent.arn)
    version = agent.poll(None, wait=0)["version"]
    agent.ecs.submit_task_state_change(cluster="work", task=arn, status="RUNNING")
    deadline = time.monotonic() + 2 * GRACE + 1
    while time.monotonic() < deadline:
        version = agent.poll(version, wait=20)["version"]  # held at most AGENT_TIMEOUT/3
    [task] = ecs.describe_tasks(cluster="work", tasks=[arn])["tasks"]
    assert (task["lastStatus"], task["desiredStatus"]) == ("RUNNING", "RUNNING")


def test_a_restarted_server_gives_every_agent_the_grace_again(
    lost_server: LiveServer, ecs: Any, agent: FakeAgent
) -> None:
    [arn] = start(ecs, agent.arn)
    agent.poll(None, wait=0)
    agent.ecs.submit_task_state_change(cluster="work", task=arn, status="RUNNING")
    lost_server.stop()
    time.sleep(GRACE + 1)  # down: no agent could poll, all look silent past the grace
    lost_server.start()
    back = time.time()

    time.sleep(GRACE / 2)
    [task] = ecs.describe_tasks(cluster="work", tasks=[arn])["tasks"]
    assert task["lastStatus"] == "RUNNING"
    # Staying silent after the restart is what loses the host.
    ecs.get_waiter("tasks_stopped").wait(cluster="work", tasks=[arn], WaiterConfig=WAIT)
    [task] = ecs.describe_tasks(cluster="work", tasks=[arn])["tasks"]
    assert task["stopCode"] == "InfrastructureHealth"
    assert task["stoppedAt"].timestamp() >= back + GRACE - 1


def test_the_grace_is_a_server_flag_no_shorter_than_the_agent_timeout(tmp_path: Path) -> None:
    def dockyard(*args: str) -> subprocess.CompletedProcess[str]:
        wide = dict(os.environ, COLUMNS="300")  # rich's boxes would wrap the message
        command = [sys.executable, "-m", "dockyard.cli", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=wide)

    refused = dockyard(
        "server", "--data-dir", str(tmp_path), "--agent-timeout", "10", "--lost-host-grace", "5"
    )
    assert refused.returncode == 2
    assert "--lost-host-grace" in refused.stderr
    assert "must be at least --agent-timeout (10 s)" in refused.stderr
    assert "--lost-host-grace" in dockyard("server", "--help").stdout
    assert "--lost-host-grace" in dockyard("up", "--help").stdout
