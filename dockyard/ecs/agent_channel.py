"""The agent channel, server half: ``POST /_dockyard/agent/poll``.

SigV4-signed like every API call. The body::

    {"cluster": "default", "containerInstanceArn": "arn:...", "waitSeconds": 20,
     "knownVersion": 7}

is answered with every task the instance should hold (the FULL list, never a delta)::

    {"version": 8, "tasks": [Assignment.to_wire(), ...], "heartbeatSeconds": 20,
     "containerInstanceStatus": "ACTIVE"}

at once when the stored version differs from ``knownVersion`` (or none was sent),
otherwise as soon as the instance's assignments change, or after ``waitSeconds``
(at most 20, and at most a third of the server's ``--agent-timeout`` so a waiting
agent never looks disconnected) with the same version. The list holds the tasks whose
desired status is RUNNING and those told to stop that have not reported STOPPED; the
agent stops any container of a task not in it. Each poll counts as the agent's
heartbeat; ``heartbeatSeconds`` is the longest the server holds one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from dockyard.agent.assignment import Assignment
from dockyard.agent.status import TaskStatus
from dockyard.api.awsjson import Params, parse_body
from dockyard.api.context import RequestContext
from dockyard.api.errors import InvalidParameterException
from dockyard.ecs import arns
from dockyard.ecs.clusters import find_cluster
from dockyard.ecs.container_instances import find_container_instance
from dockyard.store.models import Task, TaskDefinition

MAX_WAIT_SECONDS = 20.0


@dataclass(frozen=True)
class PollRequest:
    cluster: str | None
    container_instance: str
    wait_seconds: float
    known_version: int | None


def poll_request(body: bytes) -> PollRequest:
    params = parse_body(body)
    instance = params.get("containerInstanceArn")
    if not isinstance(instance, str) or not instance:
        raise InvalidParameterException("containerInstanceArn must be given, as a string.")
    cluster = params.get("cluster")
    if cluster is not None and not isinstance(cluster, str):
        raise InvalidParameterException("cluster must be a string.")
    wait = params.get("waitSeconds", MAX_WAIT_SECONDS)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0:
        raise InvalidParameterException("waitSeconds must be a number of seconds, 0 to 20.")
    known = params.get("knownVersion")
    if known is not None and (isinstance(known, bool) or not isinstance(known, int)):
        raise InvalidParameterException("knownVersion must be an integer or null.")
    return PollRequest(cluster, instance, min(float(wait), MAX_WAIT_SECONDS), known)


def heartbeat_seconds(ctx: RequestContext) -> float:
    """The longest a poll is held: the agent's contact must stay fresher than the timeout."""
    return min(MAX_WAIT_SECONDS, ctx.agents.timeout / 3)


async def poll(ctx: RequestContext, body: bytes) -> Params:
    request = poll_request(body)
    wait = min(request.wait_seconds, heartbeat_seconds(ctx))
    arn = await run_in_threadpool(_contact, ctx, request)
    # Watch before reading the version, so a change between the two still wakes us.
    with ctx.agents.watching(arn) as changed:
        answer = await run_in_threadpool(_answer, ctx, arn)
        if answer["version"] == request.known_version and wait > 0:
            try:
                await asyncio.wait_for(changed.wait(), wait)
            except TimeoutError:
                return answer
            answer = await run_in_threadpool(_answer, ctx, arn)
    return answer


def _contact(ctx: RequestContext, request: PollRequest) -> str:
    """Find the instance and record the agent's contact."""
    cluster = find_cluster(ctx, request.cluster)
    instance = find_container_instance(ctx, cluster, request.container_instance)
    if instance is None:
        raise InvalidParameterException(
            f"{request.container_instance} is not a container instance of cluster "
            f"{cluster.name}; register first."
        )
    ctx.store.tasks.touch(instance.arn, ctx.now)
    return instance.arn


def _answer(ctx: RequestContext, instance_arn: str) -> dict[str, Any]:
    # The version is read before the tasks, so the list is never older than the version.
    instance = ctx.store.get_container_instance(instance_arn)
    assert instance is not None, "instances are never deleted, only made INACTIVE"
    tasks = ctx.store.tasks.on_instance(instance_arn)  # desired RUNNING, or not yet STOPPED
    definitions: dict[str, TaskDefinition | None] = {}
    assignments = []
    for task in tasks:
        if task.task_definition_arn not in definitions:
            definitions[task.task_definition_arn] = _definition(ctx, task.task_definition_arn)
        definition = definitions[task.task_definition_arn]
        if definition is not None:
            assignments.append(_assignment(task, definition).to_wire())
    ctx.store.tasks.mark_picked_up((t.arn for t in tasks if t.picked_up_at is None), ctx.now)
    return {
        "version": instance.assignments_version,
        "tasks": assignments,
        "heartbeatSeconds": heartbeat_seconds(ctx),
        "containerInstanceStatus": instance.status,
    }


def _assignment(task: Task, definition: TaskDefinition) -> Assignment:
    return Assignment(
        task_arn=task.arn,
        cluster_arn=task.cluster_arn,
        family=definition.family,
        revision=definition.revision,
        desired_status=TaskStatus[task.desired_status],
        definition=definition.document,
        overrides=task.document.get("overrides", {}),
        started_by=task.started_by,
    )


def _definition(ctx: RequestContext, arn: str) -> TaskDefinition | None:
    parsed = arns.parse(arn)
    if parsed is None:
        return None
    family, _, revision = parsed.resource.rpartition(":")
    return ctx.store.get_task_definition(parsed.account_id, parsed.region, family, int(revision))
