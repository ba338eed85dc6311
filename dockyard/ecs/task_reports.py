"""What agents report: SubmitTaskStateChange, SubmitContainerStateChange and
SubmitAttachmentStateChanges, the operations the ECS agent itself calls.

Only the instance a task runs on may report it. ``dockyard agent`` names its instance
in the signed ``X-Dockyard-Container-Instance`` header; a report naming another
instance is refused. A report without the header is taken only for tasks on
instances registered through the plain API (no agent to speak for them), so tests
and tools can drive a task's lifecycle by hand.
"""

from __future__ import annotations

from dockyard.api.awsjson import Params
from dockyard.api.context import RequestContext
from dockyard.api.errors import AccessDeniedException, InvalidParameterException
from dockyard.ecs.clusters import find_cluster
from dockyard.ecs.container_instances import agent_managed, instance_arn
from dockyard.ecs.registry import ECS
from dockyard.ecs.task_lifecycle import TASK_STATUSES, apply_container_change, apply_task_change
from dockyard.ecs.task_shapes import container_change, task_change, task_health
from dockyard.ecs.tasks import find_task
from dockyard.store.models import Task

ACK = {"acknowledgment": "ACK"}
CALLER_HEADER = "x-dockyard-container-instance"


@ECS.operation("SubmitTaskStateChange")
def submit_task_state_change(ctx: RequestContext, params: Params) -> Params:
    change = task_change(params, TASK_STATUSES)
    task = _reported_task(ctx, change.cluster, change.task)
    changed = ctx.store.tasks.update([task.arn], lambda t: apply_task_change(t, change, ctx.now))
    _wake_services(ctx, changed)
    return ACK


@ECS.operation("SubmitContainerStateChange")
def submit_container_state_change(ctx: RequestContext, params: Params) -> Params:
    change = container_change(params)
    task = _reported_task(ctx, params.get("cluster"), params.get("task"))
    changed = ctx.store.tasks.update(
        [task.arn], lambda t: apply_container_change(t, change, ctx.now)
    )
    _wake_services(ctx, changed)
    return ACK


@ECS.operation("SubmitAttachmentStateChanges")
def submit_attachment_state_changes(ctx: RequestContext, params: Params) -> Params:
    """Tasks have no ENI attachments here (awsvpc is a pause container on the host),
    so there is nothing to record; the cluster must still exist."""
    find_cluster(ctx, params.get("cluster"))
    return ACK


def _wake_services(ctx: RequestContext, changed: list[tuple[Task, Task]]) -> None:
    """A service reacts to its task reaching RUNNING or STOPPED or changing health."""
    for before, after in changed:
        if not after.group.startswith("service:"):
            continue
        reached = after.last_status != before.last_status and after.last_status in (
            "RUNNING",
            "STOPPED",
        )
        health = task_health(before.document.get("containers", [])) != task_health(
            after.document.get("containers", [])
        )
        if reached or health:
            ctx.control.wake(after.cluster_arn)


def _reported_task(
    ctx: RequestContext, cluster_reference: str | None, reference: str | None
) -> Task:
    if not reference:
        raise InvalidParameterException("task is required: the ARN or ID of the task reported.")
    cluster = find_cluster(ctx, cluster_reference)
    task = find_task(ctx, cluster, reference)
    if task is None:
        raise InvalidParameterException(
            f"Task {reference} was not found in cluster {cluster.name}."
        )
    on = task.container_instance_arn
    if ctx.caller_instance is not None:
        caller = instance_arn(ctx, cluster, ctx.caller_instance)
        if caller is None or caller != on:
            raise AccessDeniedException(
                f"Container instance {ctx.caller_instance} may not report task {task.arn}: "
                f"it runs on {on}."
            )
        return task
    instance = ctx.store.get_container_instance(on) if on else None
    if instance is not None and agent_managed(instance):
        raise AccessDeniedException(
            f"Task {task.arn} runs on an agent-managed instance; only its agent may report "
            "it (naming the instance in the signed X-Dockyard-Container-Instance header)."
        )
    return task
