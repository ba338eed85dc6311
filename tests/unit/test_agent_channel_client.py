"""The agent's client half, without a server: what it registers, how it signs, how it
backs off, and how queued reports are coalesced and retried (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.credentials import Credentials

from dockyard.agent.assignment import TaskReport
from dockyard.agent.channel import AgentClient, Backoff, ChannelError
from dockyard.agent.config import AgentConfig, ConfigError
from dockyard.agent.registration import (
    Identity,
    attributes,
    load_identity,
    registration,
    resources,
    save_identity,
)
from dockyard.agent.reports import ReportSender
from dockyard.agent.runtime import EngineInfo
from dockyard.agent.status import TaskStatus

CAP = "com.amazonaws.ecs.capability."
ENGINE = EngineInfo(
    cpus=2,
    memory_bytes=4096 << 20,
    version="20.10.24",
    api_version="1.41",
    os_type="linux",
    architecture="aarch64",
    logging_drivers=("json-file", "syslog", "awslogs"),
)


@dataclass
class AttributeCase:
    name: str
    config: dict[str, Any]
    present: set[str] = field(default_factory=set)
    absent: set[str] = field(default_factory=set)
    values: dict[str, str] = field(default_factory=dict)


ATTRIBUTE_CASES = [
    AttributeCase(
        "defaults",
        {},
        present={
            f"{CAP}docker-remote-api.1.17",
            f"{CAP}docker-remote-api.1.41",
            f"{CAP}privileged-container",
            f"{CAP}logging-driver.json-file",
            f"{CAP}logging-driver.none",
            "ecs.capability.task-eni",
            "ecs.capability.container-health-check",
            "ecs.capability.container-ordering",
        },
        absent={f"{CAP}docker-remote-api.1.42", f"{CAP}task-iam-role", "ecs.availability-zone"},
        values={"ecs.os-type": "linux", "ecs.cpu-architecture": "arm64"},
    ),
    AttributeCase(
        "logging drivers: those configured that the engine has",
        {"available_logging_drivers": ("awslogs", "fluentd")},
        present={f"{CAP}logging-driver.awslogs"},
        absent={f"{CAP}logging-driver.fluentd", f"{CAP}logging-driver.json-file"},
    ),
    AttributeCase(
        "ECS_DISABLE_PRIVILEGED",
        {"privileged_disabled": True},
        absent={f"{CAP}privileged-container"},
    ),
    AttributeCase(
        "ECS_ENABLE_TASK_IAM_ROLE", {"task_iam_role_enabled": True}, present={f"{CAP}task-iam-role"}
    ),
    AttributeCase(
        "availability zone and custom attributes",
        {"availability_zone": "lab-1a", "instance_attributes": {"stack": "prod"}},
        values={"ecs.availability-zone": "lab-1a", "stack": "prod"},
    ),
]


@pytest.mark.parametrize("case", ATTRIBUTE_CASES, ids=lambda case: case.name)
def test_attributes(case: AttributeCase) -> None:
    found = attributes(AgentConfig(**case.config), ENGINE)
    assert case.present <= set(found)
    assert not case.absent & set(found)
    assert {name: found[name] for name in case.values} == case.values


def test_resources_are_the_hosts_less_the_reservation() -> None:
    config = AgentConfig(reserved_memory=96, reserved_ports=(22, 2375), reserved_ports_udp=(53,))
    wire = {r["name"]: r for r in resources(config, ENGINE)}
    assert wire["CPU"]["integerValue"] == 2048
    assert wire["MEMORY"]["integerValue"] == 4000
    assert wire["PORTS"]["stringSetValue"] == ["22", "2375"]
    assert wire["PORTS_UDP"]["stringSetValue"] == ["53"]


def test_declared_size_wins_over_the_hosts() -> None:
    config = AgentConfig(instance_cpu=512, instance_memory=1024)
    wire = {r["name"]: r for r in resources(config, ENGINE)}
    assert (wire["CPU"]["integerValue"], wire["MEMORY"]["integerValue"]) == (512, 1024)


def test_a_reservation_larger_than_the_host_is_refused() -> None:
    with pytest.raises(ConfigError, match="ECS_RESERVED_MEMORY"):
        resources(AgentConfig(reserved_memory=5000), ENGINE)


def test_registration_names_the_agent_and_the_engine() -> None:
    params = registration(AgentConfig(cluster="lab"), ENGINE, "arn:previous")
    assert params["cluster"] == "lab" and params["containerInstanceArn"] == "arn:previous"
    assert params["versionInfo"]["agentHash"].startswith("dockyard-")
    assert params["versionInfo"]["dockerVersion"] == "DockerVersion: 20.10.24"
    assert {"name": "ecs.os-type", "value": "linux"} in params["attributes"]


def test_identity_survives_a_restart_and_a_bad_file_is_ignored(tmp_path: Path) -> None:
    assert load_identity(tmp_path) is None
    identity = Identity("arn:aws:ecs:us-east-1:0:container-instance/c/1", "c", "http://s")
    save_identity(tmp_path, identity)
    assert load_identity(tmp_path) == identity
    (tmp_path / "instance.json").write_text("{oops")
    assert load_identity(tmp_path) is None


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999])
def test_backoff_doubles_with_jitter_up_to_the_cap(draw: float) -> None:
    backoff = Backoff(base=0.5, cap=30, rng=lambda: draw)
    delays = [backoff.next() for _ in range(10)]
    ideal = [min(30.0, 0.5 * 2**n) for n in range(10)]
    assert all(d / 2 <= got <= d for got, d in zip(delays, ideal, strict=True))
    backoff.reset()
    assert backoff.next() <= 0.5


# The wire, against httpx.MockTransport ------------------------------------------------


def client(handler: Any) -> AgentClient:
    transport = httpx.MockTransport(handler)
    return AgentClient(
        "http://dockyard", Credentials("test", "test"), "eu-west-1", transport=transport
    )


def report(status: TaskStatus) -> TaskReport:
    return TaskReport(task_arn="arn:task/1", last_status=status)


def test_reports_sign_the_instance_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"acknowledgment": "ACK"})

    async def send() -> None:
        await client(handler).submit_task(report(TaskStatus.RUNNING), "arn:instance/1")

    asyncio.run(send())
    [request] = seen
    assert request.headers["x-dockyard-container-instance"] == "arn:instance/1"
    assert "x-dockyard-container-instance" in request.headers["authorization"]
    assert "/eu-west-1/ecs/aws4_request" in request.headers["authorization"]
    assert request.headers["x-amz-target"].endswith(".SubmitTaskStateChange")
    assert json.loads(request.content)["status"] == "RUNNING"


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        (500, {"__type": "ServerException", "message": "boom"}, True),
        (400, {"__type": "ThrottlingException", "message": "slow down"}, True),
        (400, {"__type": "InvalidParameterException", "message": "no such task"}, False),
        (403, {"__type": "AccessDeniedException", "message": "not yours"}, False),
    ],
)
def test_errors_say_whether_to_retry(status: int, body: dict[str, str], retryable: bool) -> None:
    async def call() -> None:
        await client(lambda _: httpx.Response(status, json=body)).create_cluster("x")

    with pytest.raises(ChannelError) as raised:
        asyncio.run(call())
    assert raised.value.retryable is retryable and raised.value.code == body["__type"]


def test_no_answer_is_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ChannelError) as raised:
        asyncio.run(client(handler).create_cluster("x"))
    assert raised.value.retryable


def test_the_sender_retries_and_sends_only_the_newest_report() -> None:
    answers = [500, 500, 200, 200]
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = answers.pop(0)
        if status == 200:
            sent.append(json.loads(request.content)["status"])
            return httpx.Response(200, json={"acknowledgment": "ACK"})
        return httpx.Response(status, json={"__type": "ServerException", "message": "down"})

    async def scenario() -> None:
        sender = ReportSender(client(handler), lambda: "arn:instance/1")
        sending = asyncio.create_task(sender.run())
        sender.put(report(TaskStatus.PENDING))
        sender.put(report(TaskStatus.RUNNING))  # supersedes PENDING, unsent
        assert await sender.flush(10)
        sending.cancel()

    asyncio.run(scenario())
    assert sent == ["RUNNING"]


def test_the_sender_drops_a_report_the_server_refuses() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"__type": "InvalidParameterException", "message": "no such task"}
        return httpx.Response(400, json=body)

    async def scenario() -> None:
        sender = ReportSender(client(handler), lambda: "arn:instance/1")
        sending = asyncio.create_task(sender.run())
        sender.put(report(TaskStatus.RUNNING))
        assert await sender.flush(5)
        assert sender.pending == 0
        sending.cancel()

    asyncio.run(scenario())
