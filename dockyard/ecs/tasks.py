"""Tasks: RunTask, StartTask, StopTask, DescribeTasks and ListTasks.

A task is placed on a container instance and created PENDING (PROVISIONING for awsvpc,
whose network the agent sets up first) with desiredStatus RUNNING; from then on its
lastStatus moves as the instance's agent reports (``task_reports.py``). Where it goes
is the placement engine's choice (``task_placement.py``, ``dockyard/scheduler``).

Launch types: EC2 (the default) and EXTERNAL both place on the cluster's registered
instances, since every Dockyard host is one the user runs. FARGATE (and
MANAGED_INSTANCES, capacity provider strategies) are refused until the Fargate pool
exists, rather than placed somewhere they were not asked to go.
"""

from __future__ import annotations

from collections.abc import Sequence

from dockyard.api.awsjson import Params
from dockyard.api.context import RequestContext
from dockyard.api.errors import ClientException, InvalidParameterException
from dockyard.api.pagination import decode_token, listing, page_size
from dockyard.ecs import arns
from dockyard.ecs.clusters import find_cluster, found_cluster
from dockyard.ecs.container_instances import find_container_instance, instance_arn
from dockyard.ecs.registry import ECS
from dockyard.ecs.task_definitions import find_task_definition, parse_reference
from dockyard.ecs.task_demand import placement_demand, task_resources
from dockyard.ecs.task_lifecycle import stop
from dockyard.ecs.task_maker import TaskMaker
from dockyard.ecs.task_placement import constraints_and_strategies, run_placement, start_placement
from dockyard.ecs.task_shapes import RunRequest, run_request, task_to_wire
from dockyard.scheduler.model import Failure
from dockyard.store.models import Cluster, Task, TaskDefinition

_TASK_ID = "0123456789abcdef"


@ECS.operation("RunTask")
def run_task(ctx: RequestContext, params: Params) -> Params:
    request = run_request(params)
    cluster, known = _lookup(ctx, request)
    launch_type = _launch_type(request)
    definition = _runnable(ctx, request, known)
    group = request.group or f"family:{definition.family}"
    constraints, strategies = constraints_and_strategies(definition.document, request, group)
    resources = task_resources(definition.document, request.overrides)
    demand = placement_demand(resources, definition.document, definition.family, group)

    new_task = TaskMaker(
        ctx, cluster, definition, resources, launch_type,
        group=group, started_by=request.started_by, overrides=request.overrides,
        enable_execute_command=request.enable_execute_command,
    )  # fmt: skip
    placed, failures = run_placement(
        ctx, cluster.arn, demand, request.count, constraints, strategies, new_task
    )
    return _placed(ctx, request, definition, placed, failures)


@ECS.operation("StartTask")
def start_task(ctx: RequestContext, params: Params) -> Params:
    """One task on each named instance that can hold it (see task_placement.py)."""
    request = run_request(params)
    if not 1 <= len(request.container_instances) <= 10:
        raise InvalidParameterException("containerInstances must name 1 to 10 instances.")
    cluster, known = _lookup(ctx, request)
    definition = _runnable(ctx, request, known)
    group = request.group or f"family:{definition.family}"
    constraints, _ = constraints_and_strategies(definition.document, request, group)
    resources = task_resources(definition.document, request.overrides)
    demand = placement_demand(resources, definition.document, definition.family, group)
    failures: list[Failure] = []
    chosen: list[str] = []
    for reference in request.container_instances:
        instance = find_container_instance(ctx, cluster, reference)
        if instance is None or instance.status == "INACTIVE":
            arn = instance_arn(ctx, cluster, reference) or reference
            detail = f"{reference} is not registered in cluster {cluster.name}."
            failures.append(Failure(arn, "MISSING", detail))
            continue
        chosen.append(instance.arn)

    new_task = TaskMaker(
        ctx, cluster, definition, resources, "EC2",
        group=group, started_by=request.started_by, overrides=request.overrides,
        enable_execute_command=request.enable_execute_command,
    )  # fmt: skip
    placed, refused = start_placement(ctx, cluster.arn, demand, constraints, chosen, new_task)
    return _placed(ctx, request, definition, placed, [*failures, *refused])


@ECS.operation("StopTask")
def stop_task(ctx: RequestContext, params: Params) -> Params:
    """Desired STOPPED; the agent stops the containers and reports. A task no agent has
    received goes straight to STOPPED."""
    cluster = find_cluster(ctx, params.get("cluster"))
    task = find_task(ctx, cluster, params["task"])
    if task is None:
        raise InvalidParameterException("The referenced task was not found.")
    reason = (params.get("reason") or "Task stopped by user")[:255]
    ctx.store.tasks.update(
        [task.arn],
        lambda t: stop(t, reason, "UserInitiated", ctx.now, at_once=t.picked_up_at is None),
    )
    if task.container_instance_arn:
        ctx.agents.notify([task.container_instance_arn])
    ctx.control.wake(cluster.arn)  # a service replaces its task
    stopped = ctx.store.tasks.get(task.arn) or task
    return {"task": task_to_wire(stopped)}


@ECS.operation("DescribeTasks")
def describe_tasks(ctx: RequestContext, params: Params) -> Params:
    cluster = find_cluster(ctx, params.get("cluster"))
    references = params["tasks"]
    if len(references) > 100:
        raise InvalidParameterException("tasks can name at most 100 tasks.")
    wanted = {ref: task_arn(ctx, cluster, ref) for ref in references}
    found = ctx.store.tasks.get_many(arn for arn in wanted.values() if arn)
    tags = "TAGS" in (params.get("include") or [])
    result, failures = [], []
    for reference, arn in wanted.items():
        task = found.get(arn) if arn else None
        if task is None or task.cluster_arn != cluster.arn:
            failures.append({"arn": arn or reference, "reason": "MISSING"})
            continue
        result.append(task_to_wire(task, ctx.store.get_tags(task.arn) if tags else None))
    return {"tasks": result, "failures": failures}


@ECS.operation("ListTasks")
def list_tasks(ctx: RequestContext, params: Params) -> Params:
    cluster = find_cluster(ctx, params.get("cluster"))
    instance = None
    if params.get("containerInstance"):
        instance = instance_arn(ctx, cluster, params["containerInstance"])
        if instance is None:
            raise InvalidParameterException(
                f"containerInstance {params['containerInstance']} is not an instance of "
                f"cluster {cluster.name}."
            )
    service = params.get("serviceName")
    page = ctx.store.tasks.list_tasks(
        cluster.arn,
        container_instance=instance,
        family=params.get("family"),
        started_by=params.get("startedBy"),
        group=f"service:{service}" if service else None,
        desired_status=params.get("desiredStatus") or "RUNNING",
        launch_type=params.get("launchType"),
        after=decode_token(params.get("nextToken")),
        limit=page_size(params.get("maxResults")),
    )
    return listing("taskArns", [t.arn for t in page.items], page.next_key)


def task_arn(ctx: RequestContext, cluster: Cluster, reference: str) -> str | None:
    """The ARN a task ID or ARN (new ``task/CLUSTER/ID`` or old ``task/ID`` form)
    stands for in ``cluster``; None when it cannot name one of its tasks."""
    found = arns.in_cluster(ctx, "task", cluster.name, reference)
    if found is None or len(found) != 32 or not set(found) <= set(_TASK_ID):
        return None
    return arns.make(ctx, "task", f"{cluster.name}/{found}")


def find_task(ctx: RequestContext, cluster: Cluster, reference: str) -> Task | None:
    arn = task_arn(ctx, cluster, reference)
    task = ctx.store.tasks.get(arn) if arn else None
    return task if task is not None and task.cluster_arn == cluster.arn else None


# Checks


def _launch_type(request: RunRequest) -> str:
    if request.capacity_provider_strategy:
        raise InvalidParameterException(
            "capacityProviderStrategy is not supported yet; use launchType EC2 or EXTERNAL."
        )
    launch_type = request.launch_type or "EC2"
    if launch_type not in ("EC2", "EXTERNAL"):
        raise InvalidParameterException(
            f"launchType {launch_type} is not supported yet; tasks run on the cluster's "
            "container instances with launchType EC2 or EXTERNAL."
        )
    return launch_type


def _lookup(ctx: RequestContext, request: RunRequest) -> tuple[Cluster, TaskDefinition | None]:
    """The call's cluster (or ECS's error) and, with the same round trip, its task
    definition if the reference names one plainly; None for ``_runnable`` to find it
    (and its error) the usual way."""
    name = arns.cluster_name(ctx, request.cluster or "default")
    try:
        family, revision = parse_reference(ctx, request.task_definition)
    except ClientException:
        name = None
    if name is None or revision == 0:
        return find_cluster(ctx, request.cluster), None
    cluster, definition = ctx.store.cluster_and_task_definition(
        ctx.account_id, ctx.region, name, family, revision
    )
    return found_cluster(cluster), definition


def _runnable(
    ctx: RequestContext, request: RunRequest, known: TaskDefinition | None
) -> TaskDefinition:
    definition = known or find_task_definition(ctx, request.task_definition)
    if definition.status != "ACTIVE":
        raise ClientException(
            f"TaskDefinition {definition.family}:{definition.revision} is inactive; "
            "register a new revision to run it."
        )
    names = {c["name"] for c in definition.document["containerDefinitions"]}
    for override in request.overrides.containers:
        if override.name not in names:
            raise InvalidParameterException(
                f"Override for container named {override.name} is not a container in the "
                "TaskDefinition."
            )
    if request.propagate_tags == "SERVICE":
        raise InvalidParameterException(
            "propagateTags SERVICE applies to tasks started by a service; a standalone task "
            "can propagate TASK_DEFINITION tags or NONE."
        )
    return definition


def _placed(
    ctx: RequestContext,
    request: RunRequest,
    definition: TaskDefinition,
    placed: Sequence[Task],
    failures: Sequence[Failure],
) -> Params:
    tags = dict(request.tags)
    if request.propagate_tags == "TASK_DEFINITION":
        tags = {**ctx.store.get_tags(definition.arn), **tags}
    for task in placed:
        ctx.store.put_tags(task.arn, tags)
    ctx.agents.notify({t.container_instance_arn for t in placed if t.container_instance_arn})
    unique = {(f.arn, f.reason): f for f in failures}
    return {
        "tasks": [task_to_wire(t, tags if tags else None) for t in placed],
        "failures": [
            {"arn": f.arn, "reason": f.reason, "detail": f.detail} for f in unique.values()
        ],
    }
