"""The task metadata endpoint v4: AWS's JSON shapes, from the engine's view, over HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from starlette.testclient import TestClient

from dockyard.agent.metadata import (
    ContainerView,
    HealthView,
    TaskView,
    container_token,
    endpoint_base,
    metadata_app,
    timestamp,
)
from dockyard.agent.runtime import PortBinding

TASK_ARN = "arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd49d6b527399fd6414f5c"
T0 = 1601599386.202617  # 2020-10-02T00:43:06.202617Z
LABELS = {
    "com.amazonaws.ecs.cluster": "default",
    "com.amazonaws.ecs.container-name": "curl",
    "com.amazonaws.ecs.task-arn": TASK_ARN,
    "com.amazonaws.ecs.task-definition-family": "curltest",
    "com.amazonaws.ecs.task-definition-version": "26",
}
CURL = ContainerView(
    name="curl",
    docker_id="ee08638adaaf",
    docker_name="ecs-curltest-26-curl-a0e7dba5aca6d8cb2e00",
    image="127.0.0.1:5000/curltest:latest",
    image_id="sha256:d691691e9652",
    labels=LABELS,
    desired_status="RUNNING",
    known_status="RUNNING",
    cpu=10,
    memory=128,
    created_at=T0,
    started_at=T0 + 1,
    ports=(PortBinding(80, 32768),),
    ipv4_addresses=("172.17.0.3",),
    health=HealthView("HEALTHY", since=T0 + 2),
    log_driver="json-file",
    log_options={"max-size": "1m"},
    container_arn="arn:aws:ecs:us-west-2:111122223333:container/abb51bdd",
    volumes=(("ecs-x-data", "/var/lib/docker/volumes/ecs-x-data/_data", "/data"),),
)
DONE = ContainerView(
    name="init",
    docker_id="598cba581fe3",
    docker_name="ecs-curltest-26-init-e292d586b6f9dade4a00",
    image="busybox",
    desired_status="RUNNING",
    known_status="STOPPED",
    exit_code=0,
    finished_at=T0 + 3,
)
TASK = TaskView(
    cluster="default",
    task_arn=TASK_ARN,
    family="curltest",
    revision="26",
    desired_status="RUNNING",
    known_status="RUNNING",
    containers=(CURL, DONE),
    cpu=0.25,
    memory=512,
    pull_started_at=T0,
    pull_stopped_at=T0 + 0.5,
    availability_zone="lab-1a",
)
STATS = {"ee08638adaaf": {"read": "2020-10-02T00:51:13Z", "memory_stats": {"usage": 1806336}}}


@pytest.fixture
def client() -> TestClient:
    def stats(docker_id: str) -> Mapping[str, Any] | None:
        return STATS.get(docker_id)

    return TestClient(metadata_app(lambda: [TASK], stats))


def url(container: ContainerView, path: str = "", version: str = "v4") -> str:
    return f"/{version}/{container_token(TASK_ARN, container.name)}{path}"


def test_container_metadata(client: TestClient) -> None:
    reply = client.get(url(CURL))
    assert reply.status_code == 200
    assert reply.json() == {
        "DockerId": "ee08638adaaf",
        "Name": "curl",
        "DockerName": "ecs-curltest-26-curl-a0e7dba5aca6d8cb2e00",
        "Image": "127.0.0.1:5000/curltest:latest",
        "ImageID": "sha256:d691691e9652",
        "Ports": [
            {"ContainerPort": 80, "Protocol": "tcp", "HostPort": 32768, "HostIp": "127.0.0.1"}
        ],
        "Labels": LABELS,
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "Limits": {"CPU": 10, "Memory": 128},
        "CreatedAt": "2020-10-02T00:43:06.202617Z",
        "StartedAt": "2020-10-02T00:43:07.202617Z",
        "Type": "NORMAL",
        "Health": {"status": "HEALTHY", "statusSince": "2020-10-02T00:43:08.202617Z"},
        "LogDriver": "json-file",
        "LogOptions": {"max-size": "1m"},
        "ContainerARN": "arn:aws:ecs:us-west-2:111122223333:container/abb51bdd",
        "Networks": [{"NetworkMode": "bridge", "IPv4Addresses": ["172.17.0.3"]}],
        "Volumes": [
            {
                "DockerName": "ecs-x-data",
                "Source": "/var/lib/docker/volumes/ecs-x-data/_data",
                "Destination": "/data",
            }
        ],
    }


def test_optional_members_are_left_out_as_the_agent_leaves_them(client: TestClient) -> None:
    body = client.get(url(DONE)).json()
    assert body["ExitCode"] == 0
    assert body["FinishedAt"] == "2020-10-02T00:43:09.202617Z"
    assert body["Limits"] == {"CPU": 0, "Memory": 0}  # always present, zeros included
    for absent in ("Ports", "Labels", "CreatedAt", "StartedAt", "Health", "LogDriver"):
        assert absent not in body


def test_task_metadata(client: TestClient) -> None:
    body = client.get(url(DONE, "/task")).json()
    containers = body.pop("Containers")
    assert body == {
        "Cluster": "default",
        "TaskARN": TASK_ARN,
        "Family": "curltest",
        "Revision": "26",
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "Limits": {"CPU": 0.25, "Memory": 512},
        "PullStartedAt": "2020-10-02T00:43:06.202617Z",
        "PullStoppedAt": "2020-10-02T00:43:06.702617Z",
        "AvailabilityZone": "lab-1a",
        "LaunchType": "EC2",
    }
    assert [c["Name"] for c in containers] == ["curl", "init"]
    assert containers[0] == client.get(url(CURL)).json()


def test_task_without_limits_leaves_them_out() -> None:
    bare = TaskView("default", TASK_ARN, "curltest", "26", "RUNNING", "PENDING", containers=(CURL,))
    body = TestClient(metadata_app(lambda: [bare])).get(url(CURL, "/task")).json()
    assert "Limits" not in body and "PullStartedAt" not in body


PATHS = [
    pytest.param("", "DockerId", id="container"),
    pytest.param("/", "DockerId", id="container-trailing-slash"),
    pytest.param("/task", "TaskARN", id="task"),
]


@pytest.mark.parametrize("version", ["v3", "v4"])
@pytest.mark.parametrize(("path", "member"), PATHS)
def test_v3_and_v4_answer_the_same(
    client: TestClient, version: str, path: str, member: str
) -> None:
    assert member in client.get(url(CURL, path, version)).json()


def test_stats(client: TestClient) -> None:
    assert client.get(url(CURL, "/stats")).json() == STATS["ee08638adaaf"]
    # A container with no stats (stopped, or no source): an empty object.
    assert client.get(url(DONE, "/stats")).json() == {}
    assert client.get(url(DONE, "/task/stats")).json() == {
        "ee08638adaaf": STATS["ee08638adaaf"],
        "598cba581fe3": None,
    }


@pytest.mark.parametrize("path", ["", "/task", "/stats", "/task/stats"])
def test_an_unknown_token_is_404(client: TestClient, path: str) -> None:
    reply = client.get(f"/v4/{container_token('arn:other', 'curl')}{path}")
    assert reply.status_code == 404
    assert reply.json().startswith("V4 ")


def test_the_provider_is_read_on_every_request() -> None:
    tasks: list[TaskView] = []
    client = TestClient(metadata_app(lambda: tasks))
    assert client.get(url(CURL)).status_code == 404
    tasks.append(TASK)
    assert client.get(url(CURL)).status_code == 200


def test_tokens_are_stable_and_distinct() -> None:
    assert container_token(TASK_ARN, "curl") == container_token(TASK_ARN, "curl")
    assert container_token(TASK_ARN, "curl") != container_token(TASK_ARN, "init")


@pytest.mark.parametrize(
    ("mode", "base"),
    [
        ("bridge", "http://host.docker.internal:51679"),
        ("awsvpc", "http://host.docker.internal:51679"),
        ("host", "http://127.0.0.1:51679"),
    ],
)
def test_endpoint_base_per_network_mode(mode: str, base: str) -> None:
    assert endpoint_base(51679, mode) == base


def test_timestamp_is_rfc3339_utc() -> None:
    assert timestamp(0) == "1970-01-01T00:00:00.000000Z"
