"""Lost hosts on a real Docker Engine: kill -9 an agent and leave it down past the
server's ``--lost-host-grace``; its task is STOPPED with the host-lost reason and the
instance stays listed, disconnected. Restarted on the same data dir, the agent stops
the orphaned container and removes it after its cleanup wait."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.clients import Docker
from tests.e2e.test_agent import Agent, Cluster, unique, wait_for
from tests.live import LiveServer

GRACE = 3  # seconds: --lost-host-grace
AGENT_TIMEOUT = 3  # seconds: --agent-timeout; polls are held at most a third of it
CLEANUP_WAIT = 60  # seconds: the agent's shortest ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(
        tmp_path_factory.mktemp("lost-hosts-server"),
        None,
        "--agent-timeout",
        str(AGENT_TIMEOUT),
        "--lost-host-grace",
        str(GRACE),
    ).start()
    yield live
    live.stop()


def state(docker: Docker, container: str) -> str:
    return docker("inspect", "--format", "{{.State.Status}}", container).stdout.strip()


def test_a_killed_agents_task_is_given_up_and_its_container_removed_when_it_returns(
    server: LiveServer, docker: Docker, busybox_image: str, tmp_path: Path
) -> None:
    cluster = Cluster(server, docker, unique("lost"))
    cluster.aws("create-cluster", "--cluster-name", cluster.name)
    env = {
        "ECS_IMAGE_PULL_BEHAVIOR": "prefer-cached",  # the busybox built here, no registry
        "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION": f"{CLEANUP_WAIT}s",
    }
    agent = Agent(server, docker, tmp_path / "agent", cluster.name, env=env).start()
    try:
        instance = agent.instance_arn
        sleeper = {"name": "sleeper", "image": busybox_image, "memory": 32,
                   "command": ["sleep", "3600"]}  # fmt: skip
        [arn] = cluster.run(cluster.register(unique("lost"), [sleeper]))
        [task] = cluster.wait("running", arn)
        container = cluster.container(task, "sleeper")["runtimeId"]

        agent.kill9()
        killed = time.time()
        [stopped] = cluster.wait("stopped", arn)
        assert stopped["stopCode"] == "InfrastructureHealth"
        instance_id = instance.rpartition("/")[2]
        assert stopped["stoppedReason"].startswith(
            f"Host lost: the agent of container instance {instance_id} has been silent since "
        )
        assert stopped["stoppedReason"].endswith(f"(more than {GRACE} s).")
        # Within the grace, plus the last poll's hold and a check interval, of the kill.
        assert stopped["stoppedAt"].timestamp() - killed < GRACE + 3
        [described] = cluster.ecs.describe_container_instances(
            cluster=cluster.name, containerInstances=[instance]
        )["containerInstances"]
        assert (described["status"], described["agentConnected"]) == ("ACTIVE", False)
        assert (described["runningTasksCount"], described["pendingTasksCount"]) == (0, 0)
        listed = cluster.ecs.list_container_instances(cluster=cluster.name)
        assert listed["containerInstanceArns"] == [instance]
        assert state(docker, container) == "running"  # nobody was left to stop it

        # The agent comes back as the same instance; its list no longer holds the task.
        agent.start()
        assert agent.instance_arn == instance
        wait_for("the orphaned container to stop", lambda: state(docker, container) == "exited")
        wait_for(
            "the orphaned container to be removed",
            lambda: cluster.docker_ids() == set(),
            timeout=CLEANUP_WAIT + 40,
        )
        [after] = cluster.describe(arn)
        for key in ("lastStatus", "stopCode", "stoppedReason", "stoppedAt"):
            assert after[key] == stopped[key], key
        [described] = cluster.ecs.describe_container_instances(
            cluster=cluster.name, containerInstances=[instance]
        )["containerInstances"]
        assert described["agentConnected"] is True and described["runningTasksCount"] == 0
    finally:
        cluster.clean()
        agent.stop()
