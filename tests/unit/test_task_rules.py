"""The pure rules behind tasks: what a task reserves, where it goes, how reports move it."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.ecs.task_demand import task_resources
from dockyard.ecs.task_lifecycle import apply_task_change, stop
from dockyard.ecs.task_shapes import TaskChange, overrides_from_wire
from dockyard.store.models import Resources, Task


def definition(*containers: dict[str, Any], **task: Any) -> dict[str, Any]:
    return {"containerDefinitions": list(containers), **task}


DEMANDS = [
    # (case, definition, overrides, expected)
    (
        "reservation-over-hard-limit",
        definition({"name": "a", "cpu": 128, "memory": 512, "memoryReservation": 256}),
        {},
        Resources(128, 256),
    ),
    (
        "containers-add-up",
        definition({"name": "a", "cpu": 100, "memory": 64}, {"name": "b", "memory": 32}),
        {},
        Resources(100, 96),
    ),
    (
        "task-size-wins",
        definition({"name": "a", "cpu": 100, "memory": 64}, cpu="1024", memory="2048"),
        {},
        Resources(1024, 2048),
    ),
    (
        "overrides-apply",
        definition({"name": "a", "cpu": 100, "memory": 64}),
        {"containerOverrides": [{"name": "a", "cpu": 300, "memory": 700}]},
        Resources(300, 700),
    ),
    (
        "static-host-ports-in-bridge",
        definition(
            {
                "name": "a",
                "memory": 8,
                "portMappings": [
                    {"containerPort": 80, "hostPort": 8080, "protocol": "tcp"},
                    {"containerPort": 53, "hostPort": 53, "protocol": "udp"},
                    {"containerPort": 81, "hostPort": 0, "protocol": "tcp"},
                ],
            }
        ),
        {},
        Resources(0, 8, frozenset({8080}), frozenset({53})),
    ),
    (
        "awsvpc-takes-no-host-port",
        definition(
            {"name": "a", "memory": 8, "portMappings": [{"containerPort": 80, "hostPort": 80}]},
            networkMode="awsvpc",
        ),
        {},
        Resources(0, 8),
    ),
]


@pytest.mark.parametrize(
    ("doc", "overrides", "expected"), [c[1:] for c in DEMANDS], ids=[c[0] for c in DEMANDS]
)
def test_task_demand(doc: dict[str, Any], overrides: dict[str, Any], expected: Resources) -> None:
    assert task_resources(doc, overrides_from_wire(overrides)) == expected


def task(last: str = "PENDING", desired: str = "RUNNING") -> Task:
    return Task(
        arn="t",
        cluster_arn="c",
        task_definition_arn="d",
        container_instance_arn="i",
        family="web",
        group="family:web",
        started_by=None,
        launch_type="EC2",
        last_status=last,
        desired_status=desired,
        created_at=0.0,
        document={"containers": [{"name": "web", "lastStatus": "PENDING"}], "version": 1},
    )


def change(status: str, reason: str | None = None) -> TaskChange:
    return TaskChange(None, "t", status, reason, None, (), None, None, None)


REPORTS = [
    # (case, last status, reported, expected last status, expected stop code)
    ("forward", "PENDING", "RUNNING", "RUNNING", None),
    ("never-backwards", "RUNNING", "PENDING", "RUNNING", None),
    ("exit-after-running", "RUNNING", "STOPPED", "STOPPED", "EssentialContainerExited"),
    ("exit-before-running", "PENDING", "STOPPED", "STOPPED", "TaskFailedToStart"),
]


@pytest.mark.parametrize(
    ("last", "reported", "expected", "code"), [c[1:] for c in REPORTS], ids=[c[0] for c in REPORTS]
)
def test_reports_move_forward_only(
    last: str, reported: str, expected: str, code: str | None
) -> None:
    before = task(last)
    if last == "RUNNING":
        before = apply_task_change(task(), change("RUNNING"), 1.0)
    after = apply_task_change(before, change(reported), 2.0)
    assert after.last_status == expected
    assert after.document.get("stopCode") == code
    if expected == "STOPPED":
        assert after.desired_status == "STOPPED"
        assert after.document["containers"][0]["lastStatus"] == "STOPPED"


def test_a_user_stop_keeps_its_reason_through_the_agent_report() -> None:
    running = apply_task_change(task(), change("RUNNING"), 1.0)
    stopping = stop(running, "bye", "UserInitiated", 2.0, at_once=False)
    assert stopping is not None and stopping.last_status == "RUNNING"
    assert stop(stopping, "again", "UserInitiated", 3.0, at_once=False) is None
    stopped = apply_task_change(stopping, change("STOPPED", "container exited"), 4.0)
    assert (stopped.document["stopCode"], stopped.document["stoppedReason"]) == (
        "UserInitiated",
        "bye",
    )
    assert stopped.document["version"] > stopping.document["version"] > running.document["version"]
