"""``dockyard agent`` end to end: a live server, agents as subprocesses, real containers
on Docker Engine, driven with the AWS CLI and boto3 as a user drives ECS.

One server (short ``--agent-timeout``) and one agent serve most tests, each in a
cluster of its own; the tests that kill or stop an agent start their own. Every test
removes the containers of the tasks it ran.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.clients import Docker, Registry
from tests.live import KEY, REGION, SECRET, LiveServer

AGENT_TIMEOUT = 6  # seconds: the server's --agent-timeout, so a lost agent shows quickly
FAST = {"Delay": 1, "MaxAttempts": 60}
# A shell that exits 42 on SIGTERM: the exit code proves the agent stopped it gracefully.
TRAP = "trap 'exit 42' TERM; "
SLEEPER = f"{TRAP}sleep 3600 & wait"


def moment(text: str) -> float:
    """Docker's RFC 3339 time (nanoseconds, Z or an offset) as epoch seconds."""
    match = re.fullmatch(r"(.{19})(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    assert match, text
    whole = datetime.fromisoformat(match[1] + ("+00:00" if match[3] == "Z" else match[3]))
    return whole.timestamp() + float(f"0.{match[2] or 0}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


class Agent:
    """``dockyard agent`` as a user starts it, against the test server."""

    def __init__(
        self,
        server: LiveServer,
        docker: Docker,
        data_dir: Path,
        cluster: str | None,
        *args: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.server, self.data_dir, self.args = server, data_dir, args
        self.env = {
            **docker.env,
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": REGION,
            "ECS_CONTAINER_STOP_TIMEOUT": "5s",
            **(env or {}),
        }
        if cluster is not None:
            self.env["ECS_CLUSTER"] = cluster
        self.log = data_dir.parent / f"{data_dir.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Agent:
        command = [sys.executable, "-m", "dockyard.cli", "agent", "--server", self.server.endpoint]
        command += ["--data-dir", str(self.data_dir), "--metadata-port", "0", *self.args]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    @property
    def instance_arn(self) -> str:
        def registered() -> str | None:
            assert self.process is not None and self.process.poll() is None, self.output()
            try:
                return str(
                    json.loads((self.data_dir / "instance.json").read_text())[
                        "containerInstanceArn"
                    ]
                )
            except (FileNotFoundError, ValueError):
                return None

        arn: str = wait_for("the agent to register", registered)
        return arn

    def output(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class Cluster:
    """A cluster of the test server and its tasks, through the AWS CLI and boto3."""

    def __init__(self, server: LiveServer, docker: Docker, name: str) -> None:
        self.server, self.docker, self.name = server, docker, name
        self.ecs = server.client("ecs")
        self.task_arns: list[str] = []

    def aws(self, *args: str) -> Any:
        result = self.server.aws("ecs", *args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if result.stdout.strip() else None

    def register(self, family: str, containers: list[dict[str, Any]], **task: Any) -> str:
        args = ["register-task-definition", "--family", family]
        args += ["--container-definitions", json.dumps(containers)]
        if "network_mode" in task:
            args += ["--network-mode", task["network_mode"]]
        arn: str = self.aws(*args)["taskDefinition"]["taskDefinitionArn"]
        return arn

    def run(self, definition: str, count: int = 1) -> list[str]:
        answer = self.aws(
            "run-task", "--cluster", self.name, "--task-definition", definition,
            "--count", str(count),
        )  # fmt: skip
        assert not answer["failures"], answer["failures"]
        arns = [task["taskArn"] for task in answer["tasks"]]
        self.task_arns += arns
        return arns

    def describe(self, *arns: str) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = self.ecs.describe_tasks(cluster=self.name, tasks=list(arns))[
            "tasks"
        ]
        return tasks

    def wait(self, state: str, *arns: str) -> list[dict[str, Any]]:
        self.ecs.get_waiter(f"tasks_{state}").wait(
            cluster=self.name, tasks=list(arns), WaiterConfig=FAST
        )
        return self.describe(*arns)

    def container(self, task: dict[str, Any], name: str) -> dict[str, Any]:
        found: dict[str, Any] = next(c for c in task["containers"] if c["name"] == name)
        return found

    def docker_ids(self) -> set[str]:
        """Every container (running or not) of this cluster's tasks on the engine."""
        listed = self.docker(
            "ps", "-a", "--no-trunc", "--format", "{{.ID}}",
            "--filter", f"label=com.amazonaws.ecs.cluster={self.name}",
        )  # fmt: skip
        return set(listed.stdout.split())

    def clean(self) -> None:
        for arn in self.task_arns:
            self.ecs.stop_task(cluster=self.name, task=arn, reason="test over")
        ids = self.docker_ids()
        if ids:
            self.docker("rm", "--force", *ids, check=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(
        tmp_path_factory.mktemp("agent-server"), None, "--agent-timeout", str(AGENT_TIMEOUT)
    ).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def image(
    server: LiveServer,
    docker: Docker,
    busybox_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """busybox in Dockyard's own registry; the agent pulls it with its own ECR token."""
    registry = Registry(server)
    registry.create_repository("busybox")
    client = docker.with_config(tmp_path_factory.mktemp("docker-config"))
    registry.login(client)
    ref = f"{registry.address}/busybox:latest"
    client("tag", busybox_image, ref)
    client("push", ref)
    client("image", "rm", ref)  # the agent's pull is a real one
    yield ref
    docker("image", "rm", "--force", ref, check=False)


@pytest.fixture(scope="module")
def agent_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agents")


@pytest.fixture(scope="module")
def shared(server: LiveServer, docker: Docker, agent_root: Path) -> Iterator[Cluster]:
    """One agent in a cluster the tests below share."""
    cluster = Cluster(server, docker, unique("shared"))
    cluster.aws("create-cluster", "--cluster-name", cluster.name)
    agent = Agent(server, docker, agent_root / "shared", cluster.name).start()
    _ = agent.instance_arn
    yield cluster
    cluster.clean()
    agent.stop()


@pytest.fixture
def cluster(shared: Cluster) -> Iterator[Cluster]:
    """The shared cluster, with this test's tasks stopped and removed afterwards."""
    shared.task_arns = []
    yield shared
    shared.clean()


def test_run_a_task_reach_it_on_its_port_and_stop_it(cluster: Cluster, image: str) -> None:
    started = time.monotonic()
    web = {
        "name": "web",
        "image": image,
        "memory": 64,
        "essential": True,
        "entryPoint": ["sh", "-c"],
        "command": [
            "mkdir -p /www && echo hello from dockyard > /www/index.html && "
            f"{TRAP}httpd -f -p 80 -h /www & wait"
        ],
        "portMappings": [{"containerPort": 80, "hostPort": 0}],
    }
    definition = cluster.register(unique("web"), [web])
    [arn] = cluster.run(definition)
    [task] = cluster.wait("running", arn)
    running_after = time.monotonic() - started

    [binding] = cluster.container(task, "web")["networkBindings"]
    assert binding["containerPort"] == 80 and binding["hostPort"] > 0
    page = httpx.get(f"http://127.0.0.1:{binding['hostPort']}/", timeout=10)
    assert page.status_code == 200 and page.text == "hello from dockyard\n"
    [container_id] = cluster.docker_ids()
    labels = json.loads(
        cluster.docker("inspect", "--format", "{{json .Config.Labels}}", container_id).stdout
    )
    assert labels["com.amazonaws.ecs.task-arn"] == arn
    assert labels["com.amazonaws.ecs.container-name"] == "web"

    cluster.aws("stop-task", "--cluster", cluster.name, "--task", arn, "--reason", "done")
    [task] = cluster.wait("stopped", arn)
    assert (task["lastStatus"], task["stopCode"], task["stoppedReason"]) == (
        "STOPPED",
        "UserInitiated",
        "done",
    )
    assert cluster.container(task, "web")["exitCode"] == 42  # SIGTERM, handled
    print(f"RunTask to RUNNING (first pull included): {running_after:.1f} s")


def test_an_agent_configured_by_file_joins_its_cluster(
    server: LiveServer, docker: Docker, agent_root: Path
) -> None:
    ecs = server.client("ecs")
    ecs.create_cluster(clusterName="MyCluster")
    config = agent_root / "ecs.config"
    attributes = json.dumps({"stack": "prod"})
    config.write_text(f"ECS_CLUSTER=MyCluster\nECS_INSTANCE_ATTRIBUTES={attributes}\n")
    agent = Agent(server, docker, agent_root / "by-file", None, "--config", str(config),
                  "--cpu", "512", "--availability-zone", "lab-1a")  # fmt: skip
    agent.start()
    try:
        arn = agent.instance_arn
        assert ecs.list_container_instances(cluster="MyCluster")["containerInstanceArns"] == [arn]
        [instance] = ecs.describe_container_instances(
            cluster="MyCluster", containerInstances=[arn]
        )["containerInstances"]
        assert instance["agentConnected"] is True
        assert instance["versionInfo"]["agentHash"].startswith("dockyard-")
        assert instance["versionInfo"]["dockerVersion"].startswith("DockerVersion: ")
        cpu = next(r for r in instance["registeredResources"] if r["name"] == "CPU")
        assert cpu["integerValue"] == 512
        names = {a["name"]: a.get("value") for a in instance["attributes"]}
        assert names["stack"] == "prod"
        assert names["ecs.availability-zone"] == "lab-1a"
        assert names["ecs.os-type"] == "linux"
        assert "ecs.capability.task-eni" in names
        assert "com.amazonaws.ecs.capability.docker-remote-api.1.17" in names
        assert "com.amazonaws.ecs.capability.logging-driver.json-file" in names
    finally:
        agent.stop()


def test_two_containers_of_an_awsvpc_task_talk_over_localhost(cluster: Cluster, image: str) -> None:
    web = {
        "name": "web",
        "image": image,
        "memory": 64,
        "entryPoint": ["sh", "-c"],
        "command": [
            f"mkdir -p /www && echo pong > /www/ping && {TRAP}httpd -f -p 8080 -h /www & wait"
        ],
    }
    client = {
        "name": "client",
        "image": image,
        "memory": 32,
        "essential": False,
        "entryPoint": ["sh", "-c"],
        "command": [
            "for i in $(seq 1 40); do wget -qO- http://localhost:8080/ping && exit 0; "
            "sleep 0.25; done; exit 1"
        ],
    }
    definition = cluster.register(unique("pair"), [web, client], network_mode="awsvpc")
    [arn] = cluster.run(definition)

    def client_done() -> dict[str, Any] | None:
        [task] = cluster.describe(arn)
        return task if cluster.container(task, "client").get("lastStatus") == "STOPPED" else None

    task = wait_for("the client container to finish", client_done)
    assert cluster.container(task, "client")["exitCode"] == 0
    assert task["lastStatus"] == "RUNNING"  # the client was not essential
    client_id = cluster.container(task, "client")["runtimeId"]
    assert cluster.docker("logs", client_id).stdout == "pong\n"


def test_depends_on_healthy_starts_after_the_health_check_passes(
    cluster: Cluster, image: str
) -> None:
    db = {
        "name": "db",
        "image": image,
        "memory": 32,
        "entryPoint": ["sh", "-c"],
        "command": [f"touch /ready; {SLEEPER}"],
        "healthCheck": {"command": ["CMD-SHELL", "test -f /ready"], "interval": 5,
                        "timeout": 2, "retries": 1},
    }  # fmt: skip
    app = {
        "name": "app",
        "image": image,
        "memory": 32,
        "entryPoint": ["sh", "-c"],
        "command": [SLEEPER],
        "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}],
    }
    [arn] = cluster.run(cluster.register(unique("ordered"), [db, app]))
    [task] = cluster.wait("running", arn)

    assert cluster.container(task, "db")["healthStatus"] == "HEALTHY"
    inspect = json.loads(
        cluster.docker(
            "inspect",
            cluster.container(task, "db")["runtimeId"],
            cluster.container(task, "app")["runtimeId"],
        ).stdout
    )
    db_state, app_state = inspect[0]["State"], inspect[1]["State"]
    healthy_at = min(
        moment(entry["End"]) for entry in db_state["Health"]["Log"] if entry["ExitCode"] == 0
    )
    assert moment(app_state["StartedAt"]) > healthy_at > moment(db_state["StartedAt"])


def test_an_essential_container_exiting_stops_the_task(cluster: Cluster, image: str) -> None:
    main = {"name": "main", "image": image, "memory": 32, "entryPoint": ["sh", "-c"],
            "command": ["sleep 1; exit 3"]}  # fmt: skip
    side = {"name": "side", "image": image, "memory": 32, "essential": False,
            "entryPoint": ["sh", "-c"], "command": [SLEEPER]}  # fmt: skip
    [arn] = cluster.run(cluster.register(unique("essential"), [main, side]))
    [task] = cluster.wait("stopped", arn)

    # ECS's words, then the container that exited.
    assert (task["stopCode"], task["stoppedReason"]) == (
        "EssentialContainerExited",
        "Essential container in task exited: container 'main' exited with exit code 3",
    )
    assert cluster.container(task, "main")["exitCode"] == 3
    assert cluster.container(task, "side")["exitCode"] == 42  # stopped with SIGTERM


def test_an_image_that_does_not_exist_stops_the_task_with_the_reason(
    cluster: Cluster, image: str
) -> None:
    missing = image.replace("/busybox:", "/no-such-image:")
    ghost = {"name": "ghost", "image": missing, "memory": 32}
    [arn] = cluster.run(cluster.register(unique("ghost"), [ghost]))
    [task] = cluster.wait("stopped", arn)

    container = cluster.container(task, "ghost")
    reason = f"{task.get('stoppedReason')} {container.get('reason')}"
    assert "CannotPullContainerError" in reason, reason
    assert task["stopCode"] == "TaskFailedToStart"


def test_the_task_metadata_endpoint(cluster: Cluster, image: str) -> None:
    reader = {
        "name": "reader",
        "image": image,
        "memory": 32,
        "entryPoint": ["sh", "-c"],
        "command": ['wget -qO- "$ECS_CONTAINER_METADATA_URI_V4/task"'],
    }
    [arn] = cluster.run(cluster.register(unique("meta"), [reader]))
    [task] = cluster.wait("stopped", arn)

    container = cluster.container(task, "reader")
    assert container["exitCode"] == 0, cluster.docker("logs", container["runtimeId"]).stderr
    metadata = json.loads(cluster.docker("logs", container["runtimeId"]).stdout)
    assert metadata["TaskARN"] == arn
    assert metadata["Cluster"] == cluster.name
    [seen] = metadata["Containers"]
    assert (seen["Name"], seen["DockerId"], seen["KnownStatus"]) == (
        "reader",
        container["runtimeId"],
        "RUNNING",
    )


def test_tasks_keep_running_while_the_server_is_away_and_reports_catch_up(
    server: LiveServer, cluster: Cluster, image: str
) -> None:
    sleeper = {"name": "sleeper", "image": image, "memory": 32,
               "entryPoint": ["sh", "-c"], "command": [SLEEPER]}  # fmt: skip
    stays, dies = cluster.run(cluster.register(unique("away"), [sleeper]), count=2)
    tasks = {t["taskArn"]: t for t in cluster.wait("running", stays, dies)}
    stays_id = tasks[stays]["containers"][0]["runtimeId"]

    server.stop()
    cluster.docker("kill", tasks[dies]["containers"][0]["runtimeId"])  # exits 137 meanwhile
    time.sleep(3)  # the agent's polls and its report fail, and back off
    server.start()

    [died] = cluster.wait("stopped", dies)
    assert died["stopCode"] == "EssentialContainerExited"
    assert died["containers"][0]["exitCode"] == 137
    [stayed] = cluster.describe(stays)
    assert stayed["lastStatus"] == "RUNNING"
    state = cluster.docker("inspect", "--format", "{{.State.Status}}", stays_id).stdout
    assert state.strip() == "running"


def test_kill_9_and_restart_readopts_the_same_containers(
    server: LiveServer, docker: Docker, image: str, agent_root: Path
) -> None:
    cluster = Cluster(server, docker, unique("crash"))
    cluster.aws("create-cluster", "--cluster-name", cluster.name)
    agent = Agent(server, docker, agent_root / "crash", cluster.name).start()
    try:
        instance = agent.instance_arn
        sleeper = {"name": "sleeper", "image": image, "memory": 32,
                   "entryPoint": ["sh", "-c"], "command": [SLEEPER]}  # fmt: skip
        arns = cluster.run(cluster.register(unique("crash"), [sleeper]), count=3)
        before = {
            t["taskArn"]: t["containers"][0]["runtimeId"] for t in cluster.wait("running", *arns)
        }
        ids = cluster.docker_ids()
        assert ids == set(before.values())
        started = cluster.docker("inspect", "--format", "{{.State.StartedAt}}", *sorted(ids)).stdout

        agent.kill9()
        agent.start()
        assert agent.instance_arn == instance
        wait_for(
            "the restarted agent to re-adopt", lambda: "re-adopted 3 task(s)" in agent.output()
        )
        wait_for("a poll after the restart", lambda: agent.output().count("registered ") >= 2)
        time.sleep(2)  # a poll or two later, nothing has changed

        assert cluster.docker_ids() == ids  # no new containers
        assert (
            cluster.docker("inspect", "--format", "{{.State.StartedAt}}", *sorted(ids)).stdout
            == started
        )
        tasks = cluster.describe(*arns)
        assert {t["taskArn"]: t["containers"][0]["runtimeId"] for t in tasks} == before
        assert {t["lastStatus"] for t in tasks} == {"RUNNING"}
        [described] = cluster.ecs.describe_container_instances(
            cluster=cluster.name, containerInstances=[instance]
        )["containerInstances"]
        assert described["agentConnected"] is True and described["runningTasksCount"] == 3
    finally:
        cluster.clean()
        agent.stop()


def test_a_stopped_agent_shows_disconnected_until_deregistered(
    server: LiveServer, docker: Docker, agent_root: Path
) -> None:
    cluster = Cluster(server, docker, unique("gone"))
    cluster.aws("create-cluster", "--cluster-name", cluster.name)
    agent = Agent(server, docker, agent_root / "gone", cluster.name).start()
    instance = agent.instance_arn
    assert agent.stop() == 0

    def disconnected() -> bool:
        [described] = cluster.ecs.describe_container_instances(
            cluster=cluster.name, containerInstances=[instance]
        )["containerInstances"]
        return described["agentConnected"] is False and described["status"] == "ACTIVE"

    wait_for("agentConnected false", disconnected, timeout=AGENT_TIMEOUT * 3)
    listed = cluster.aws("list-container-instances", "--cluster", cluster.name)
    assert listed["containerInstanceArns"] == [instance]

    cluster.aws(
        "deregister-container-instance", "--cluster", cluster.name,
        "--container-instance", instance, "--force",
    )  # fmt: skip
    listed = cluster.aws("list-container-instances", "--cluster", cluster.name)
    assert listed["containerInstanceArns"] == []


def test_deregistering_a_running_agents_instance_stops_its_tasks_and_the_agent(
    server: LiveServer, docker: Docker, image: str, agent_root: Path
) -> None:
    cluster = Cluster(server, docker, unique("drop"))
    cluster.aws("create-cluster", "--cluster-name", cluster.name)
    agent = Agent(server, docker, agent_root / "drop", cluster.name).start()
    try:
        instance = agent.instance_arn
        sleeper = {"name": "sleeper", "image": image, "memory": 32,
                   "entryPoint": ["sh", "-c"], "command": [SLEEPER]}  # fmt: skip
        [arn] = cluster.run(cluster.register(unique("drop"), [sleeper]))
        cluster.wait("running", arn)

        cluster.aws(
            "deregister-container-instance", "--cluster", cluster.name,
            "--container-instance", instance, "--force",
        )  # fmt: skip
        [task] = cluster.wait("stopped", arn)
        assert task["containers"][0]["exitCode"] == 42  # stopped by the agent, gracefully
        assert agent.process is not None and agent.process.wait(30) == 5
        assert "deregistered" in agent.output()
    finally:
        cluster.clean()
        agent.stop()


def test_the_agent_refuses_a_bad_setting_naming_it(server: LiveServer, agent_root: Path) -> None:
    env = dict(os.environ, ECS_RESERVED_MEMORY="lots")
    result = subprocess.run(
        [sys.executable, "-m", "dockyard.cli", "agent", "--server", server.endpoint,
         "--data-dir", str(agent_root / "bad")],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "ECS_RESERVED_MEMORY" in result.stderr
