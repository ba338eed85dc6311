"""How a task's record changes: stop requests and agent reports. Pure functions of
(task, input, now) that return the new task, for ``TaskStore.update`` to write.

lastStatus only moves forward through ECS's order (``TaskStatus``); so does each
container's (PENDING < RUNNING < STOPPED). The first stop reason wins: a StopTask
after the agent reported an exit does not rewrite why the task stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from dockyard.agent.status import TaskStatus
from dockyard.ecs.task_shapes import ContainerChange, TaskChange
from dockyard.store.models import Task

TASK_STATUSES = tuple(status.name for status in TaskStatus)
_CONTAINER_ORDER = {"PENDING": 0, "RUNNING": 1, "STOPPED": 2}
_DEFAULT_REASONS = {
    "TaskFailedToStart": "Task failed to start",
    "EssentialContainerExited": "Essential container in task exited",
}


def later(current: str, reported: str) -> str:
    """The later of two task statuses."""
    return reported if TaskStatus[reported] > TaskStatus[current] else current


def stop(task: Task, reason: str, stop_code: str, now: float, *, at_once: bool) -> Task | None:
    """Set desired STOPPED (None if it already was). ``at_once``: no agent will stop the
    task (none ever received it, or none is left), so it is STOPPED now."""
    if task.desired_status == "STOPPED":
        return None
    doc = {**task.document, "stopCode": stop_code, "stoppedReason": reason, "stoppingAt": now}
    stopping = replace(task, desired_status="STOPPED", document=doc)
    if at_once:
        stopping = _reach(stopping, "STOPPED", now, execution_stopped_at=now)
    return _versioned(task, stopping)


def apply_task_change(task: Task, change: TaskChange, now: float) -> Task:
    doc = dict(task.document)
    doc["containers"] = _merge(doc.get("containers", []), change.containers)
    for key, value in (
        ("pullStartedAt", change.pull_started_at),
        ("pullStoppedAt", change.pull_stopped_at),
    ):
        if value is not None and doc.get(key) is None:
            doc[key] = value
    updated = replace(task, document=doc, picked_up_at=task.picked_up_at or now)
    status = later(task.last_status, change.status) if change.status else task.last_status
    if status != task.last_status:
        updated = _reach(
            updated,
            status,
            now,
            reason=change.reason,
            stop_code=change.stop_code,
            execution_stopped_at=change.execution_stopped_at,
        )
    return _versioned(task, updated)


def apply_container_change(task: Task, change: ContainerChange, now: float) -> Task:
    doc = {**task.document, "containers": _merge(task.document.get("containers", []), [change])}
    return _versioned(task, replace(task, document=doc, picked_up_at=task.picked_up_at or now))


def _reach(
    task: Task,
    status: str,
    now: float,
    *,
    reason: str | None = None,
    stop_code: str | None = None,
    execution_stopped_at: float | None = None,
) -> Task:
    """``task`` with lastStatus ``status`` and the timestamps that go with getting there."""
    doc = dict(task.document)
    desired = task.desired_status
    if status == "RUNNING":
        doc.setdefault("startedAt", now)
    if TaskStatus[status] >= TaskStatus.DEACTIVATING:
        doc.setdefault("stoppingAt", now)
    if status == "STOPPED":
        desired = "STOPPED"
        doc["stoppedAt"] = now
        doc["executionStoppedAt"] = execution_stopped_at or now
        if doc.get("stopCode") is None:
            code = stop_code or (
                "EssentialContainerExited" if doc.get("startedAt") else "TaskFailedToStart"
            )
            doc["stopCode"] = code
            doc["stoppedReason"] = reason or _DEFAULT_REASONS.get(code, "Task stopped")
        doc["containers"] = [{**c, "lastStatus": "STOPPED"} for c in doc.get("containers", [])]
    return replace(task, last_status=status, desired_status=desired, document=doc)


def _merge(
    containers: Sequence[Mapping[str, Any]], changes: Sequence[ContainerChange]
) -> list[dict[str, Any]]:
    """Containers with the reports applied; a name the task lacks (the agent's own
    pause container) is ignored."""
    by_name = {c["name"]: dict(c) for c in containers}
    for change in changes:
        container = by_name.get(change.name)
        if container is None:
            continue
        status = change.status
        current = container.get("lastStatus", "PENDING")
        if status is not None and _CONTAINER_ORDER[status] > _CONTAINER_ORDER[current]:
            container["lastStatus"] = status
        for key, value in (
            ("runtimeId", change.runtime_id),
            ("exitCode", change.exit_code),
            ("reason", change.reason),
            ("healthStatus", change.health_status),
            ("imageDigest", change.image_digest),
        ):
            if value is not None:
                container[key] = value
        if change.network_bindings is not None:
            container["networkBindings"] = [dict(b) for b in change.network_bindings]
    return [by_name[c["name"]] for c in containers]


def _versioned(before: Task, after: Task) -> Task:
    """ECS raises a task's ``version`` with every change a describe can see."""
    if (after.last_status, after.desired_status, after.document) == (
        before.last_status,
        before.desired_status,
        before.document,
    ):
        return after
    return replace(
        after, document={**after.document, "version": before.document.get("version", 1) + 1}
    )
