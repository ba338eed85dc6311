"""The agent channel, driven by a fake agent: httpx + botocore's SigV4 signer for the
long poll, boto3 for the reports, as ``dockyard agent`` talks to the server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from dockyard.agent.assignment import Assignment
from tests.live import KEY, REGION, SECRET, LiveServer, live_server

WAIT = {"Delay": 1, "MaxAttempts": 10}
POLL = "/_dockyard/agent/poll"
HEADER = "X-Dockyard-Container-Instance"


class FakeAgent:
    """Registers as ``dockyard agent`` does and speaks the channel by hand."""

    def __init__(self, server: LiveServer, cluster: str = "work") -> None:
        self.server = server
        self.cluster = cluster
        self.http = httpx.Client(timeout=30)
        self.arn = ""
        # Reports carry the instance in a signed header, added before botocore signs.
        self.ecs = server.client("ecs")
        self.ecs.meta.events.register("before-sign.ecs.*", self._name_instance)

    def _name_instance(self, request: AWSRequest, **_: Any) -> None:
        if self.arn:
            request.headers[HEADER] = self.arn

    def register(self, cpu: int = 1024, memory: int = 2048) -> str:
        instance = self.ecs.register_container_instance(
            cluster=self.cluster,
            totalResources=[
                {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
            ],
            versionInfo={"agentVersion": "0.1.0", "agentHash": "dockyard-test"},
        )["containerInstance"]
        self.arn = str(instance["containerInstanceArn"])
        return self.arn

    def poll(self, known_version: int | None = None, wait: float = 20) -> dict[str, Any]:
        body = orjson.dumps(
            {
                "cluster": self.cluster,
                "containerInstanceArn": self.arn,
                "waitSeconds": wait,
                "knownVersion": known_version,
            }
        )
        url = self.server.endpoint + POLL
        request = AWSRequest(method="POST", url=url, data=body)
        SigV4Auth(Credentials(KEY, SECRET), "ecs", REGION).add_auth(request)
        response = self.http.post(url, content=body, headers=dict(request.headers))
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def agent(server: LiveServer, ecs: Any) -> Iterator[FakeAgent]:
    ecs.create_cluster(clusterName="work")
    fake = FakeAgent(server)
    yield fake
    fake.close()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=20) as executor:
        yield executor


def held(future: Future[Any]) -> Future[Any]:
    """Assert the poll is waiting (not answered at once), then hand it back."""
    time.sleep(0.3)
    assert not future.done(), "the poll should wait for a change"
    return future


def answered_within(future: Future[dict[str, Any]], seconds: float) -> dict[str, Any]:
    return future.result(timeout=seconds)


def test_an_agent_receives_runs_and_stops_a_task(
    ecs: Any, agent: FakeAgent, pool: ThreadPoolExecutor
) -> None:
    instance = agent.register(cpu=1024, memory=2048)
    described = ecs.describe_container_instances(cluster="work", containerInstances=[instance])
    assert described["containerInstances"][0]["agentConnected"] is True
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[
            {
                "name": "web",
                "image": "busybox",
                "memory": 256,
                "portMappings": [{"containerPort": 80, "hostPort": 0}],
            }
        ],
    )

    # Nothing assigned yet; an agent that knows no version is answered at once.
    first = agent.poll(None, wait=20)
    assert first["tasks"] == [] and first["heartbeatSeconds"] == 20
    assert first["containerInstanceStatus"] == "ACTIVE"

    # RunTask wakes the held poll: the assignment arrives well before the 20 s wait.
    waiting = held(pool.submit(agent.poll, first["version"], 20))
    started = time.monotonic()
    task = ecs.run_task(cluster="work", taskDefinition="web")["tasks"][0]
    answer = answered_within(waiting, 5)
    assert time.monotonic() - started < 2
    assert answer["version"] > first["version"]
    [wire] = answer["tasks"]
    assignment = Assignment.from_wire(wire)  # the agent's own parser accepts it
    assert (assignment.task_arn, assignment.desired_status.name) == (task["taskArn"], "RUNNING")
    assert (assignment.family, assignment.revision) == ("web", 1)
    assert assignment.definition["containerDefinitions"][0]["image"] == "busybox"

    # The agent reports the task up: PENDING while it pulls, then RUNNING with its port.
    arn = task["taskArn"]
    agent.ecs.submit_task_state_change(
        cluster="work", task=arn, status="PENDING", pullStartedAt=time.time()
    )
    binding = {"bindIP": "127.0.0.1", "containerPort": 80, "hostPort": 32768, "protocol": "tcp"}
    agent.ecs.submit_task_state_change(
        cluster="work",
        task=arn,
        status="RUNNING",
        pullStoppedAt=time.time(),
        containers=[
            {
                "containerName": "web",
                "runtimeId": "c0ffee",
                "status": "RUNNING",
                "networkBindings": [binding],
            }
        ],
    )
    ecs.get_waiter("tasks_running").wait(cluster="work", tasks=[arn], WaiterConfig=WAIT)
    running = ecs.describe_tasks(cluster="work", tasks=[arn])["tasks"][0]
    assert running["lastStatus"] == "RUNNING"
    assert running["startedAt"] >= running["pullStoppedAt"] >= running["pullStartedAt"]
    container = running["containers"][0]
    assert (container["runtimeId"], container["networkBindings"]) == ("c0ffee", [binding])
    counts = ecs.describe_clusters(clusters=["work"])["clusters"][0]
    assert (counts["runningTasksCount"], counts["pendingTasksCount"]) == (1, 0)

    # StopTask wakes the poll with the task's desired status now STOPPED.
    waiting = held(pool.submit(agent.poll, answer["version"], 20))
    ecs.stop_task(cluster="work", task=arn, reason="deploy over")
    stopping = answered_within(waiting, 5)
    assert [t["desiredStatus"] for t in stopping["tasks"]] == ["STOPPED"]
    task = ecs.describe_tasks(cluster="work", tasks=[arn])["tasks"][0]
    assert (task["lastStatus"], task["desiredStatus"]) == ("RUNNING", "STOPPED")

    # The agent stops the container and reports; the resources come back.
    agent.ecs.submit_container_state_change(
        cluster="work", task=arn, containerName="web", status="STOPPED", exitCode=137
    )
    agent.ecs.submit_task_state_change(cluster="work", task=arn, status="STOPPED")
    ecs.get_waiter("tasks_stopped").wait(cluster="work", tasks=[arn], WaiterConfig=WAIT)
    task = ecs.describe_tasks(cluster="work", tasks=[arn])["tasks"][0]
    assert task["containers"][0]["exitCode"] == 137
    assert (task["stopCode"], task["stoppedReason"]) == ("UserInitiated", "deploy over")
    described = ecs.describe_container_instances(cluster="work", containerInstances=[instance])
    after = described["containerInstances"][0]
    assert after["remainingResources"][1]["integerValue"] == 2048
    assert (after["runningTasksCount"], after["pendingTasksCount"]) == (0, 0)
    # A stopped task leaves the list the agent is given.
    assert agent.poll(stopping["version"], wait=0)["tasks"] == []


def test_only_the_instance_a_task_is_on_may_report_it(ecs: Any, server: LiveServer) -> None:
    ecs.create_cluster(clusterName="work")
    owner, other = FakeAgent(server), FakeAgent(server)
    owner.register()
    other.register()
    ecs.register_task_definition(
        family="web", containerDefinitions=[{"name": "web", "image": "busybox", "memory": 64}]
    )
    arn = ecs.start_task(cluster="work", taskDefinition="web", containerInstances=[owner.arn])[
        "tasks"
    ][0]["taskArn"]
    for reporter in (other.ecs, ecs):  # another instance's agent; a caller naming none
        with pytest.raises(ClientError) as excinfo:
            reporter.submit_task_state_change(cluster="work", task=arn, status="RUNNING")
        assert excinfo.value.response["Error"]["Code"] == "AccessDeniedException"
    owner.ecs.submit_task_state_change(cluster="work", task=arn, status="RUNNING")
    assert ecs.describe_tasks(cluster="work", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING"
    owner.close()
    other.close()


def test_an_old_version_is_answered_at_once(agent: FakeAgent, ecs: Any) -> None:
    agent.register()
    current = agent.poll(None)["version"]
    ecs.update_container_instances_state(
        cluster="work", containerInstances=[agent.arn], status="DRAINING"
    )
    started = time.monotonic()
    answer = agent.poll(current, wait=20)
    assert time.monotonic() - started < 2
    assert answer["version"] > current
    assert answer["containerInstanceStatus"] == "DRAINING"


def test_concurrent_run_tasks_never_overcommit(
    server: LiveServer, ecs: Any, pool: ThreadPoolExecutor
) -> None:
    ecs.create_cluster(clusterName="work")
    agent = FakeAgent(server)
    instance = agent.register(cpu=4096, memory=1000)
    ecs.register_task_definition(
        family="small", containerDefinitions=[{"name": "app", "image": "busybox", "memory": 128}]
    )
    clients = [server.client("ecs") for _ in range(20)]

    def run(client: Any) -> list[dict[str, Any]]:
        return list(client.run_task(cluster="work", taskDefinition="small")["tasks"])

    placed = [t for tasks in pool.map(run, clients) for t in tasks]
    held_memory = sum(int(t["memory"]) for t in placed)
    assert 1 <= len(placed) <= 1000 // 128
    assert held_memory <= 1000
    described = ecs.describe_container_instances(cluster="work", containerInstances=[instance])
    left = described["containerInstances"][0]
    # The store and the tasks agree on what is left.
    assert left["remainingResources"][1]["integerValue"] == 1000 - held_memory
    assert left["pendingTasksCount"] == len(placed)
    agent.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def impatient_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server that calls an agent gone after 3 s of silence instead of 60."""
    yield from live_server(request, tmp_path_factory, "impatient", "--agent-timeout", "3")


def test_a_silent_agent_shows_disconnected(impatient_server: LiveServer) -> None:
    server = impatient_server
    server.reset()
    ecs = server.client("ecs")
    ecs.create_cluster(clusterName="work")
    agent = FakeAgent(server)
    instance = agent.register()
    ecs.register_task_definition(
        family="web", containerDefinitions=[{"name": "web", "image": "busybox", "memory": 64}]
    )

    def connected() -> bool:
        described = ecs.describe_container_instances(cluster="work", containerInstances=[instance])
        return bool(described["containerInstances"][0]["agentConnected"])

    # Polls are held for at most a third of the timeout, so a waiting agent stays fresh.
    answer = agent.poll(None)
    assert answer["heartbeatSeconds"] == 1
    agent.poll(answer["version"], wait=20)
    assert connected()
    time.sleep(3.5)
    assert not connected()
    # Placement skips an instance whose agent is gone, and says so.
    run = ecs.run_task(cluster="work", taskDefinition="web")
    assert run["tasks"] == []
    assert [(f["arn"], f["reason"]) for f in run["failures"]] == [(instance, "AGENT")]
    agent.poll(answer["version"], wait=0)
    assert connected()
    agent.close()
