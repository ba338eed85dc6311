"""Tasks as rows of the ``tasks`` table, and instance documents as placing reads them.

Two memos, both of this process: each instance document text parsed (placing reads the
same few documents batch after batch, most of them as it wrote them itself), and each
instance's latest document known, by ``assignments_version``, for the one-statement
write (``placing_at_once.py``), which checks the database still has it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Row

from dockyard.store.models import Resources, Task
from dockyard.store.resources import (
    as_read,
    assign_gpus,
    remaining_resources,
    take,
    with_remaining,
)


class Placed(NamedTuple):
    """What ``place`` wrote: the tasks it inserted, those it refused with the reason,
    the ``assignments_version`` each instance it placed on has now, and the
    ``placement_version`` of their clusters; or that it wrote nothing (``stale``)."""

    placed: list[Task]
    refused: list[tuple[Task, str]]
    versions: dict[str, int]
    cluster_versions: dict[str, int]
    stale: bool = False  # the cluster was no longer as expected: nothing was written


# Instance document text -> the document parsed, with its remaining resources.
_PARSED: dict[str, tuple[dict[str, Any], Resources]] = {}
_PARSED_LIMIT = 20_000


def parsed(text: str) -> tuple[dict[str, Any], Resources]:
    found = _PARSED.get(text)
    if found is None:
        document = orjson.loads(text)
        found = _remember(text, document, remaining_resources(document))
    return found


def with_remaining_text(document: dict[str, Any], left: Resources) -> str:
    """The document's text with ``left`` remaining (remembered parsed: as the text
    would parse, which for resources the instance did not register is not ``left``)."""
    changed = with_remaining(document, left)
    text = orjson.dumps(changed).decode()
    _remember(text, changed, as_read(left, changed["remainingResources"]))
    return text


def _remember(
    text: str, document: dict[str, Any], left: Resources
) -> tuple[dict[str, Any], Resources]:
    if len(_PARSED) >= _PARSED_LIMIT:
        _PARSED.clear()
    _PARSED[text] = (document, left)
    return document, left


# Instance ARN -> (assignments_version, document text) as this process last read or
# wrote it.
_KNOWN: dict[str, tuple[int, str]] = {}
_KNOWN_LIMIT = 100_000


def know(arn: str, version: int, document: str) -> None:
    if len(_KNOWN) >= _KNOWN_LIMIT:
        _KNOWN.clear()
    _KNOWN[arn] = (version, document)


def known(arn: str, version: int | None) -> str | None:
    """The instance's document at ``version``, if this process knows it."""
    found = _KNOWN.get(arn)
    return found[1] if found is not None and found[0] == version else None


def holding(task: Task, left: Resources) -> tuple[Task, Resources]:
    """``task`` as it holds its resources on an instance with ``left`` (GPUs by ID: the
    first free ones), and what it leaves there. Call once it fits."""
    holds = assign_gpus(left, task.resources)
    held = task if holds is task.resources else replace(task, resources=holds)
    return held, take(left, holds)


def row(task: Task) -> dict[str, Any]:
    r = task.resources
    reserved = {
        "cpu": r.cpu,
        "memory": r.memory,
        "ports": sorted(r.ports),
        "portsUdp": sorted(r.ports_udp),
        "gpus": sorted(r.gpus),
    }
    return {
        "arn": task.arn,
        "cluster_arn": task.cluster_arn,
        "task_definition_arn": task.task_definition_arn,
        "container_instance_arn": task.container_instance_arn,
        "family": task.family,
        "group_name": task.group,
        "started_by": task.started_by,
        "launch_type": task.launch_type,
        "last_status": task.last_status,
        "desired_status": task.desired_status,
        "created_at": task.created_at,
        "picked_up_at": task.picked_up_at,
        "reserved": orjson.dumps(reserved).decode(),
        "document": orjson.dumps(task.document).decode(),
    }


def reserved(doc: Mapping[str, Any]) -> Resources:
    return Resources(
        cpu=doc["cpu"],
        memory=doc["memory"],
        ports=frozenset(doc["ports"]),
        ports_udp=frozenset(doc["portsUdp"]),
        gpus=frozenset(doc.get("gpus") or ()),  # none before GPUs were tracked
        gpu_count=len(doc.get("gpus") or ()),
    )


def task(row: Row[Any]) -> Task:
    return Task(
        arn=row.arn,
        cluster_arn=row.cluster_arn,
        task_definition_arn=row.task_definition_arn,
        container_instance_arn=row.container_instance_arn,
        family=row.family,
        group=row.group_name,
        started_by=row.started_by,
        launch_type=row.launch_type,
        last_status=row.last_status,
        desired_status=row.desired_status,
        created_at=row.created_at,
        resources=reserved(orjson.loads(row.reserved)),
        picked_up_at=row.picked_up_at,
        document=orjson.loads(row.document),
    )
