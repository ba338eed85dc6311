"""Services: CreateService, UpdateService, DeleteService, DescribeServices, ListServices.

The handlers write the service's configuration (its normalised document, see
``service_rules.py``) and its deployments, then wake the reconciler loop of the
service's cluster (``ctx.control.wake``); the loop starts and stops the tasks, moves
the deployments' rollout states and records the events. So a CreateService answers
at once with a PRIMARY deployment IN_PROGRESS and no tasks yet, as ECS does.

Lifecycle: ACTIVE; DeleteService makes it DRAINING (the loop stops its tasks, then
makes it INACTIVE; with no task left it is INACTIVE at once). DescribeServices shows
all three; ListServices only ACTIVE ones. A new service of the same name
replaces an INACTIVE one with its history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from dockyard.api.awsjson import Params
from dockyard.api.context import RequestContext
from dockyard.api.errors import (
    InvalidParameterException,
    ServiceNotActiveException,
    ServiceNotFoundException,
)
from dockyard.api.pagination import decode_token, listing, page_size
from dockyard.ecs import arns
from dockyard.ecs.clusters import find_cluster
from dockyard.ecs.registry import ECS
from dockyard.ecs.service_rules import (
    check_network,
    check_placement,
    create_document,
    needs_deployment,
    new_deployment,
    runnable_definition,
    updated_document,
)
from dockyard.ecs.service_shapes import (
    SERVICE_NAME,
    Counts,
    create_request,
    service_to_wire,
    update_request,
)
from dockyard.ecs.task_definitions import parse_reference
from dockyard.store.models import Cluster, Service, ServiceDeployment, Task, TaskDefinition
from dockyard.store.services import ServiceChange

MAX_DESCRIBE = 10
PENDING_STATES = frozenset({"PROVISIONING", "PENDING", "ACTIVATING"})
NOT_IDEMPOTENT = "Creation of service was not idempotent."
# Members that do not make two CreateService calls different.
_NOT_COMPARED = frozenset({"createdBy"})


@ECS.operation("CreateService")
def create_service(ctx: RequestContext, params: Params) -> Params:
    """Idempotent as ECS: the same name and the same parameters again answer the
    existing service; other parameters for a live name are refused."""
    request = create_request(params)
    cluster = find_cluster(ctx, request.cluster)
    definition = runnable_definition(ctx, request.task_definition)
    document = create_document(ctx, request, definition)
    arn = arns.make(ctx, "service", f"{cluster.name}/{request.name}")
    service = Service(
        arn=arn,
        account_id=ctx.account_id,
        region=ctx.region,
        cluster_arn=cluster.arn,
        name=request.name,
        status="ACTIVE",
        created_at=ctx.now,
        updated_at=ctx.now,
        document=document,
        state={},
    )
    existing = ctx.store.services.get(arn)
    if existing is None or existing.status == "INACTIVE":
        if ctx.store.services.create(service, [new_deployment(ctx, service, definition)]):
            ctx.store.delete_tags(arn)  # a name used again starts without the old tags
            ctx.store.put_tags(arn, request.tags)
            answer = describe(ctx, service, tags=bool(request.tags))
            ctx.control.wake(cluster.arn)  # after the answer: it shows the service as created
            return {"service": answer}
        existing = ctx.store.services.get(arn)  # a concurrent call created it first
    if existing is not None and existing.status == "DRAINING":
        raise InvalidParameterException(
            f"{NOT_IDEMPOTENT} The service {request.name} in cluster {cluster.name} is "
            "DRAINING after DeleteService; create it again once it is INACTIVE, or choose "
            "another name."
        )
    if existing is None or not _same(existing, document):
        raise InvalidParameterException(
            f"{NOT_IDEMPOTENT} A service named {request.name} exists in cluster "
            f"{cluster.name} with other parameters: change it with UpdateService, or "
            "choose another name."
        )
    return {"service": describe(ctx, existing, tags=bool(request.tags))}


@ECS.operation("UpdateService")
def update_service(ctx: RequestContext, params: Params) -> Params:
    update = update_request(params)
    cluster = find_cluster(ctx, update.cluster)
    service = _active(find_service(ctx, cluster, update.service))
    new_definition = (
        runnable_definition(ctx, update.task_definition) if update.task_definition else None
    )
    definition = new_definition or current_definition(ctx, service)
    checked = updated_document(service, update, new_definition)
    check_placement(
        definition.document if definition is not None else {},
        checked["schedulingStrategy"],
        checked.get("placementConstraints", []),
        checked.get("placementStrategy", []),
    )
    if definition is not None and (new_definition or update.network_configuration is not None):
        check_network(definition, checked.get("networkConfiguration"))

    def change(
        now: Service, deployments: tuple[ServiceDeployment, ...]
    ) -> tuple[Service, list[ServiceDeployment]]:
        # Applied to the locked row, so a concurrent UpdateService is not lost.
        _active(now)
        after = replace(
            now, document=updated_document(now, update, new_definition), updated_at=ctx.now
        )
        live = [d for d in deployments if d.status != "INACTIVE"]
        if needs_deployment(now.document, after.document, update.force_new_deployment):
            if definition is None:
                raise InvalidParameterException(
                    f"The service's task definition {now.document['taskDefinition']} no "
                    "longer exists; pass taskDefinition to deploy another."
                )
            retired = [
                replace(d, status="ACTIVE", updated_at=ctx.now)
                for d in live
                if d.status == "PRIMARY"
            ]
            return after, [*retired, new_deployment(ctx, after, definition, live)]
        desired = after.document["desiredCount"]
        rescaled = [
            replace(d, desired_count=desired, updated_at=ctx.now)
            for d in live
            if d.status == "PRIMARY" and after.document["schedulingStrategy"] == "REPLICA"
            and d.desired_count != desired
        ]  # fmt: skip
        return after, rescaled

    return _write(ctx, cluster, service, change)


@ECS.operation("DeleteService")
def delete_service(ctx: RequestContext, params: Params) -> Params:
    cluster = find_cluster(ctx, params.get("cluster"))
    service = find_service(ctx, cluster, params["service"])
    if service.status == "INACTIVE":
        raise ServiceNotFoundException("Service not found.")
    doc = service.document
    scaled = doc["schedulingStrategy"] == "REPLICA" and doc.get("desiredCount", 0) > 0
    if service.status == "ACTIVE" and scaled and not params.get("force"):
        raise InvalidParameterException(
            "The service cannot be stopped while it is scaled above 0. Set desiredCount to "
            "0 with UpdateService first, or pass force to delete it with its tasks."
        )
    # Read before the write: a service with no task left needs no draining.
    idle = not _unstopped(ctx, service, ctx.store.services.deployments(service.arn))

    def change(
        now: Service, deployments: tuple[ServiceDeployment, ...]
    ) -> tuple[Service, list[ServiceDeployment]] | None:
        if now.status != "ACTIVE":
            return None  # already draining: deleting again changes nothing
        after = replace(
            now,
            status="INACTIVE" if idle else "DRAINING",
            document={**now.document, "desiredCount": 0},
            updated_at=ctx.now,
        )
        zeroed = [
            replace(d, desired_count=0, updated_at=ctx.now)
            for d in deployments
            if d.status == "PRIMARY" and d.desired_count
        ]
        return after, zeroed

    return _write(ctx, cluster, service, change)


def _write(
    ctx: RequestContext, cluster: Cluster, service: Service, change: ServiceChange
) -> Params:
    """Apply ``change`` under the service's lock, wake the loop, answer with the result."""
    written = ctx.store.services.update(service.arn, change)
    if written is None:
        raise ServiceNotFoundException("Service not found.")
    answer = describe(ctx, written[0], deployments=written[1])
    ctx.control.wake(cluster.arn)
    return {"service": answer}


@ECS.operation("DescribeServices")
def describe_services(ctx: RequestContext, params: Params) -> Params:
    cluster = find_cluster(ctx, params.get("cluster"))
    references = params["services"]
    if not 1 <= len(references) <= MAX_DESCRIBE:
        raise InvalidParameterException(
            f"services must name 1 to {MAX_DESCRIBE} services; {len(references)} were given."
        )
    wanted = {ref: service_arn(ctx, cluster, ref) for ref in references}
    found = ctx.store.services.get_many(arn for arn in wanted.values() if arn)
    tags = "TAGS" in (params.get("include") or [])
    result, failures = [], []
    for reference, arn in wanted.items():
        service = found.get(arn) if arn else None
        if service is None:
            failures.append({"arn": arn or reference, "reason": "MISSING"})
            continue
        result.append(describe(ctx, service, tags=tags))
    return {"services": result, "failures": failures}


@ECS.operation("ListServices")
def list_services(ctx: RequestContext, params: Params) -> Params:
    cluster = find_cluster(ctx, params.get("cluster"))
    after = decode_token(params.get("nextToken"))
    limit = page_size(params.get("maxResults"), default=10)
    if params.get("resourceManagementType") == "ECS":
        return listing("serviceArns", [], None)  # Dockyard manages no service for you
    page = ctx.store.services.list_services(
        cluster.arn,
        launch_type=params.get("launchType"),
        scheduling=params.get("schedulingStrategy"),
        after=after,
        limit=limit,
    )
    # ECS: a DRAINING service "is no longer visible ... in the ListServices API".
    active = [s.arn for s in page.items if s.status == "ACTIVE"]
    return listing("serviceArns", active, page.next_key)


# Finding services


def service_arn(ctx: RequestContext, cluster: Cluster, reference: str) -> str | None:
    """The ARN a service name or ARN (``service/CLUSTER/NAME`` or the old
    ``service/NAME``) stands for in ``cluster``; None when it cannot name one of its
    services."""
    found = arns.in_cluster(ctx, "service", cluster.name, reference)
    if found is None or not SERVICE_NAME.fullmatch(found):
        return None
    return arns.make(ctx, "service", f"{cluster.name}/{found}")


def find_service(ctx: RequestContext, cluster: Cluster, reference: str) -> Service:
    """The service (of any status) or ServiceNotFoundException."""
    arn = service_arn(ctx, cluster, reference)
    service = ctx.store.services.get(arn) if arn else None
    if service is None:
        raise ServiceNotFoundException(
            f"Service not found: no service {reference} in cluster {cluster.name}."
        )
    return service


def current_definition(ctx: RequestContext, service: Service) -> TaskDefinition | None:
    """The task definition the service runs now: perhaps deregistered since, or None
    when it was deleted outright (then only a new taskDefinition can deploy)."""
    family, revision = parse_reference(ctx, service.document["taskDefinition"])
    return ctx.store.get_task_definition(ctx.account_id, ctx.region, family, revision)


# Describing


def task_counts(
    ctx: RequestContext, service: Service, deployments: Iterable[ServiceDeployment]
) -> dict[str, Counts]:
    """Running and pending tasks per deployment id (tasks carry it as startedBy)."""
    counts = {d.id: Counts() for d in deployments}
    for task in _unstopped(ctx, service, deployments):
        was = counts[task.started_by or ""]
        if task.last_status == "RUNNING":
            counts[task.started_by or ""] = replace(was, running=was.running + 1)
        elif task.last_status in PENDING_STATES:
            counts[task.started_by or ""] = replace(was, pending=was.pending + 1)
    return counts


def describe(
    ctx: RequestContext,
    service: Service,
    *,
    tags: bool = False,
    deployments: Sequence[ServiceDeployment] | None = None,
) -> Params:
    """The Service shape: live deployments PRIMARY first, the newest 100 events."""
    if deployments is None:
        deployments = ctx.store.services.deployments(service.arn)
    live = sorted(
        (d for d in deployments if d.status != "INACTIVE"),
        key=lambda d: (d.status != "PRIMARY", -d.created_at),
    )
    counts = task_counts(ctx, service, live)
    return service_to_wire(
        service,
        [(d, counts[d.id]) for d in live],
        ctx.store.services.events(service.arn, limit=100),
        ctx.store.get_tags(service.arn) if tags else None,
    )


def _unstopped(
    ctx: RequestContext, service: Service, deployments: Iterable[ServiceDeployment]
) -> list[Task]:
    ids = {d.id for d in deployments}
    group = f"service:{service.name}"
    return [t for t in ctx.store.tasks.of_group(service.cluster_arn, group) if t.started_by in ids]


def _active(service: Service) -> Service:
    if service.status != "ACTIVE":
        raise ServiceNotActiveException(
            f"Service was not ACTIVE: {service.name} is {service.status}; create it again "
            "to use the name."
        )
    return service


def _same(existing: Service, document: Params) -> bool:
    def compared(doc: Params) -> Params:
        return {k: v for k, v in doc.items() if k not in _NOT_COMPARED}

    return existing.status == "ACTIVE" and compared(dict(existing.document)) == compared(document)
