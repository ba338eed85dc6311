"""New tasks, as RunTask, StartTask and services write them.

A ``TaskMaker`` is made once per call, with everything its tasks share (containers,
overrides, sizes), and then makes each task for the instance placement chose. It is
called while the cluster's placements wait (``placement_batch.py``), so a task costs
only what differs from one to the next: its IDs, its instance and zone.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from dockyard.api.context import RequestContext
from dockyard.ecs import arns
from dockyard.ecs.task_demand import container_size
from dockyard.ecs.task_shapes import Overrides
from dockyard.store.models import Cluster, Resources, Task, TaskDefinition

NO_OVERRIDES = Overrides(containers=(), cpu=None, memory=None, wire={})


class TaskMaker:
    """Tasks of ``definition`` in ``cluster``, PENDING (PROVISIONING for awsvpc), for
    ``TaskStore.place`` to write."""

    def __init__(
        self,
        ctx: RequestContext,
        cluster: Cluster,
        definition: TaskDefinition,
        demand: Resources,
        launch_type: str,
        *,
        group: str,
        started_by: str | None,
        overrides: Overrides = NO_OVERRIDES,
        enable_execute_command: bool = False,
    ) -> None:
        doc = definition.document
        self._cluster, self._definition = cluster, definition
        self._demand, self._launch_type = demand, launch_type
        self._group, self._started_by, self._now = group, started_by, ctx.now
        self._task_arn = arns.make(ctx, "task", f"{cluster.name}/")
        self._container_arn = arns.make(ctx, "container", f"{cluster.name}/")
        self._containers = [_container(c, overrides) for c in doc["containerDefinitions"]]
        self._document: dict[str, Any] = {
            "overrides": _overrides_echo(doc["containerDefinitions"], overrides.wire),
            "cpu": str(demand.cpu),
            "memory": str(demand.memory),
            "version": 1,
            "enableExecuteCommand": enable_execute_command,
        }
        self._status = "PROVISIONING" if doc.get("networkMode") == "awsvpc" else "PENDING"

    def __call__(self, instance_arn: str, zone: str | None) -> Task:
        task_id = secrets.token_hex(16)
        containers = [
            {
                "containerArn": f"{self._container_arn}{task_id}/{uuid.uuid4()}",
                **container,
                "networkBindings": [],  # each its own: reports fill them in
            }
            for container in self._containers
        ]
        document = {"containers": containers, **self._document}
        if zone:
            document["availabilityZone"] = zone
        return Task(
            arn=self._task_arn + task_id,
            cluster_arn=self._cluster.arn,
            task_definition_arn=self._definition.arn,
            container_instance_arn=instance_arn,
            family=self._definition.family,
            group=self._group,
            started_by=self._started_by,
            launch_type=self._launch_type,
            last_status=self._status,
            desired_status="RUNNING",
            created_at=self._now,
            resources=self._demand,
            document=document,
        )


def _container(container: Mapping[str, Any], overrides: Overrides) -> dict[str, Any]:
    """A task's container as it starts, but its ARN and network bindings."""
    size = container_size(container, overrides)
    entry: dict[str, Any] = {
        "name": container["name"],
        "image": container["image"],
        "lastStatus": "PENDING",
        "cpu": str(size.cpu),
        "essential": container.get("essential", True),
        "hasHealthCheck": bool(container.get("healthCheck")),
    }
    if size.memory is not None:
        entry["memory"] = str(size.memory)
    if size.reservation is not None:
        entry["memoryReservation"] = str(size.reservation)
    return entry


def _overrides_echo(
    containers: Sequence[Mapping[str, Any]], wire: Mapping[str, Any]
) -> dict[str, Any]:
    """Overrides as ECS echoes them: an entry for every container, named."""
    given = {o["name"]: o for o in wire.get("containerOverrides") or []}
    echo = {k: v for k, v in wire.items() if k != "containerOverrides"}
    echo["containerOverrides"] = [given.get(c["name"], {"name": c["name"]}) for c in containers]
    echo.setdefault("inferenceAcceleratorOverrides", [])
    return echo
