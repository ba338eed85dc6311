"""Container instances: register (as the agent does), describe, list and deregister.

A container instance's ARN is ``container-instance/CLUSTER/ID`` with a 32-hex ID; its
attributes live in the attributes table (target type ``container-instance``, target the
instance ARN), so ListAttributes and DescribeContainerInstances see the same ones.

Deregistering is final, as in ECS: the instance turns INACTIVE, stays describable, loses
its attributes, and cannot be registered again under its old ARN. It is refused while
tasks run unless ``force``, which stops them.

``agentConnected``: an instance registered by ``dockyard agent`` (its ``versionInfo.
agentHash`` starts with ``dockyard``) is connected while its agent has registered or
polled within the server's ``--agent-timeout`` (60 s). An instance registered through
the plain API has no agent to lose and counts as connected, so placement can be tried
without one; its tasks stay PENDING until something reports on them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace

from dockyard.api.awsjson import Params
from dockyard.api.context import RequestContext
from dockyard.api.errors import ClientException, InvalidParameterException
from dockyard.api.pagination import decode_token, listing, page_size
from dockyard.ecs import arns, shapes
from dockyard.ecs.clusters import find_cluster
from dockyard.ecs.registry import ECS
from dockyard.ecs.task_lifecycle import stop
from dockyard.scheduler import query
from dockyard.store.models import Attribute, Cluster, ContainerInstance

TARGET_TYPE = "container-instance"
CUSTOM_ATTRIBUTE_LIMIT = 10
_INSTANCE_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
# Attributes ECS and its agent define; every other name is a custom attribute.
_BUILT_IN_PREFIXES = ("ecs.", "com.amazonaws.ecs.")
# What the instance identity document tells ECS, as the built-in attributes it sets.
_IDENTITY_ATTRIBUTES = {
    "availabilityZone": "ecs.availability-zone",
    "instanceType": "ecs.instance-type",
    "imageId": "ecs.ami-id",
}


def is_custom(name: str) -> bool:
    return not name.startswith(_BUILT_IN_PREFIXES)


def instance_arn(ctx: RequestContext, cluster: Cluster, reference: str) -> str | None:
    """The ARN a container instance ID or ARN stands for in ``cluster``, or None when it
    cannot name an instance of that cluster in the caller's account and region."""
    found = arns.in_cluster(ctx, TARGET_TYPE, cluster.name, reference)
    if found is None or not _INSTANCE_ID.fullmatch(found):
        return None
    return arns.container_instance(ctx, cluster.name, found)


def find_container_instance(
    ctx: RequestContext, cluster: Cluster, reference: str
) -> ContainerInstance | None:
    """The instance ``reference`` (an ID or ARN) names in ``cluster``, any status."""
    arn = instance_arn(ctx, cluster, reference)
    instance = ctx.store.get_container_instance(arn) if arn else None
    return instance if instance is not None and instance.cluster_arn == cluster.arn else None


def instance_attributes(ctx: RequestContext, instance: ContainerInstance) -> list[Attribute]:
    return ctx.store.list_attributes(
        instance.cluster_arn, target_type=TARGET_TYPE, target_id=instance.arn
    )


def agent_managed(instance: ContainerInstance) -> bool:
    agent_hash = instance.document.get("versionInfo", {}).get("agentHash") or ""
    return str(agent_hash).startswith("dockyard")


def agent_connected(instance: ContainerInstance, now: float, timeout: float) -> bool:
    if instance.status == "INACTIVE":
        return False
    if not agent_managed(instance):
        return True
    return instance.agent_seen_at is not None and now - instance.agent_seen_at < timeout


def _task_counts(ctx: RequestContext, instance: ContainerInstance) -> tuple[int, int]:
    """(running, pending) tasks placed on the instance."""
    return ctx.store.tasks.counts([instance.arn]).get(instance.arn, (0, 0))


def _wire(
    ctx: RequestContext,
    instance: ContainerInstance,
    include: frozenset[str] = frozenset(),
    attributes: list[Attribute] | None = None,
) -> Params:
    running, pending = _task_counts(ctx, instance)
    if attributes is None:
        attributes = instance_attributes(ctx, instance)
    return shapes.container_instance_to_wire(
        instance,
        [shapes.attribute_to_wire(a, target=False) for a in attributes],
        running_tasks=running,
        pending_tasks=pending,
        agent_connected=agent_connected(instance, ctx.now, ctx.agents.timeout),
        tags=ctx.store.get_tags(instance.arn) if "TAGS" in include else None,
        health="CONTAINER_INSTANCE_HEALTH" in include,
    )


def _previous(
    ctx: RequestContext, cluster: Cluster, reference: str | None
) -> ContainerInstance | None:
    """The registration a ``containerInstanceArn`` continues, if the agent sent one."""
    if reference is None:
        return None
    if instance_arn(ctx, cluster, reference) is None:
        raise InvalidParameterException(
            f"containerInstanceArn {reference} is not a container instance of cluster "
            f"{cluster.name}."
        )
    previous = find_container_instance(ctx, cluster, reference)
    if previous is None or previous.status == "INACTIVE":
        raise ClientException(
            f"The container instance {reference} is not registered (it was deregistered or "
            "never existed); register without containerInstanceArn to join as a new instance."
        )
    return previous


@ECS.operation("RegisterContainerInstance")
def register_container_instance(ctx: RequestContext, params: Params) -> Params:
    """Join a host to a cluster; with ``containerInstanceArn`` refresh its registration
    in place (same ARN, version + 1). Built-in attributes are replaced by the new set;
    custom attributes put since registration stay."""
    request = shapes.instance_registration(params)
    cluster = find_cluster(ctx, request.cluster)
    previous = _previous(ctx, cluster, request.container_instance_arn)
    arn = previous.arn if previous else arns.container_instance(ctx, cluster.name, _uuid_hex())
    ec2_instance_id = request.ec2_instance_id or (
        previous.ec2_instance_id if previous else "i-" + _uuid_hex()[:17]
    )

    old = instance_attributes(ctx, previous) if previous else []
    new = {a.name: a.value for a in request.attributes}
    for field, name in _IDENTITY_ATTRIBUTES.items():
        if isinstance(request.identity.get(field), str):
            new.setdefault(name, request.identity[field])
    custom = {a.name for a in old if is_custom(a.name)} | {n for n in new if is_custom(n)}
    if len(custom) > CUSTOM_ATTRIBUTE_LIMIT:
        raise InvalidParameterException(
            f"A container instance can have at most {CUSTOM_ATTRIBUTE_LIMIT} custom "
            f"attributes; this registration would give it {len(custom)}."
        )

    document = {
        "version": (previous.document.get("version", 1) + 1) if previous else 1,
        "versionInfo": dict(request.version_info),
        "registeredResources": list(request.resources),
        "remainingResources": list(request.resources),  # less what its tasks hold, if any
    }
    instance = ContainerInstance(
        arn=arn,
        account_id=ctx.account_id,
        region=ctx.region,
        cluster_arn=cluster.arn,
        ec2_instance_id=ec2_instance_id,
        status=previous.status if previous else "ACTIVE",
        registered_at=previous.registered_at if previous else ctx.now,
        document=document,
    )
    if previous is None:
        ctx.store.put_container_instance(instance)
    else:  # remaining resources and all in one write: never a moment the host looks free
        ctx.store.tasks.reregister(instance)
    ctx.store.tasks.touch(arn, ctx.now)  # registering is contact
    instance = ctx.store.get_container_instance(arn) or instance
    ctx.store.delete_attributes(a for a in old if not is_custom(a.name) and a.name not in new)
    ctx.store.put_attributes(
        Attribute(cluster.arn, TARGET_TYPE, arn, name, value) for name, value in new.items()
    )
    ctx.store.put_tags(arn, request.tags)
    ctx.control.wake(cluster.arn)  # DAEMON services run a task on every instance
    include = frozenset({"TAGS"}) if request.tags else frozenset()
    return {"containerInstance": _wire(ctx, instance, include)}


def _uuid_hex() -> str:
    return uuid.uuid4().hex


@ECS.operation("DeregisterContainerInstance")
def deregister_container_instance(ctx: RequestContext, params: Params) -> Params:
    cluster = find_cluster(ctx, params.get("cluster"))
    reference = params["containerInstance"]
    instance = find_container_instance(ctx, cluster, reference)
    if instance is None or instance.status == "INACTIVE":
        raise InvalidParameterException(
            f"Container instance {reference} is not registered in cluster {cluster.name}."
        )
    held = ctx.store.tasks.on_instance(instance.arn)
    if held and not params.get("force"):
        raise InvalidParameterException(
            f"The container instance has {len(held)} tasks that are not stopped; stop them "
            "first, or deregister with force to stop them."
        )
    attributes = instance_attributes(ctx, instance)
    connected = agent_connected(instance, ctx.now, ctx.agents.timeout)
    ctx.store.tasks.set_instance_status(instance.arn, "INACTIVE")
    if held:
        # An agent still in contact stops the containers and reports; without one,
        # nobody will, so the tasks are STOPPED now.
        ctx.store.tasks.update(
            [t.arn for t in held],
            lambda t: stop(
                t,
                "Container instance deregistered with force",
                "UserInitiated",
                ctx.now,
                at_once=t.picked_up_at is None or not connected,
            ),
        )
    ctx.agents.notify([instance.arn])
    ctx.control.wake(cluster.arn)  # services replace the tasks it held
    inactive = replace(instance, status="INACTIVE")
    ctx.store.delete_attributes(attributes)
    # The answer shows the instance as it was deregistered, attributes included.
    return {"containerInstance": _wire(ctx, inactive, attributes=attributes)}


@ECS.operation("DescribeContainerInstances")
def describe_container_instances(ctx: RequestContext, params: Params) -> Params:
    cluster = find_cluster(ctx, params.get("cluster"))
    include = frozenset(params.get("include") or ())
    found, failures = [], []
    for reference in params["containerInstances"]:
        instance = find_container_instance(ctx, cluster, reference)
        if instance is None:
            arn = instance_arn(ctx, cluster, reference) or reference
            failures.append({"arn": arn, "reason": "MISSING"})
            continue
        found.append(_wire(ctx, instance, include))
    return {"containerInstances": found, "failures": failures}


@ECS.operation("ListContainerInstances")
def list_container_instances(ctx: RequestContext, params: Params) -> Params:
    """Every instance but INACTIVE ones, or those with ``status``; with ``filter``, only
    those its cluster query language expression selects."""
    cluster = find_cluster(ctx, params.get("cluster"))
    after = decode_token(params.get("nextToken"))
    limit = page_size(params.get("maxResults"))
    if params.get("filter"):
        expression = _filter_expression(params["filter"])
        arns, next_key = _filtered(ctx, cluster, expression, params.get("status"), after, limit)
        return listing("containerInstanceArns", arns, next_key)
    page = ctx.store.list_container_instances(
        cluster.arn, status=params.get("status"), after=after, limit=limit
    )
    return listing("containerInstanceArns", [i.arn for i in page.items], page.next_key)


_FILTER_SCAN = 500  # instances read from the store at a time while filtering


def _filter_expression(text: str) -> query.Expression:
    try:
        return query.parse(text)
    except query.QuerySyntaxError as error:
        raise InvalidParameterException(
            f"Invalid filter expression at position {error.position}: {error.message}"
        ) from None


def _filtered(
    ctx: RequestContext,
    cluster: Cluster,
    expression: query.Expression,
    status: str | None,
    after: str | None,
    limit: int,
) -> tuple[list[str], str | None]:
    """Up to ``limit`` ARNs, in ARN order after ``after``, of the instances
    ``expression`` selects, and the key to go on from when another one follows."""
    attributes: dict[str, dict[str, str | None]] = {}
    for a in ctx.store.list_attributes(cluster.arn, target_type=TARGET_TYPE):
        attributes.setdefault(a.target_id, {})[a.name] = a.value
    found: list[str] = []
    while True:
        page = ctx.store.list_container_instances(
            cluster.arn, status=status, after=after, limit=_FILTER_SCAN
        )
        facts = _query_facts(ctx, page.items, attributes, expression.subjects)
        for instance, subject in zip(page.items, facts, strict=True):
            if expression.matches(subject):
                if len(found) == limit:
                    return found, found[-1]
                found.append(instance.arn)
        if page.next_key is None:
            return found, None
        after = page.next_key


def _query_facts(
    ctx: RequestContext,
    instances: Sequence[ContainerInstance],
    attributes: Mapping[str, Mapping[str, str | None]],
    subjects: frozenset[str],
) -> list[query.InstanceFacts]:
    """What the cluster query language reads of each instance; task state only when the
    expression reads it (task:group costs a query per instance)."""
    arns = [i.arn for i in instances]
    counts = ctx.store.tasks.counts(arns) if "runningTasksCount" in subjects else {}
    groups: dict[str, frozenset[str]] = {}
    if "task:group" in subjects:
        groups = {
            a: frozenset(t.group for t in ctx.store.tasks.on_instance(a) if t.group) for a in arns
        }
    return [
        query.InstanceFacts(
            agent_connected=agent_connected(i, ctx.now, ctx.agents.timeout),
            agent_version=str(i.document.get("versionInfo", {}).get("agentVersion") or ""),
            ec2_instance_id=i.ec2_instance_id,
            registered_at=i.registered_at,
            running_tasks_count=counts.get(i.arn, (0, 0))[0],
            task_groups=groups.get(i.arn, frozenset()),
            attributes=attributes.get(i.arn, {}),
        )
        for i in instances
    ]


@ECS.operation("UpdateContainerInstancesState")
def update_container_instances_state(ctx: RequestContext, params: Params) -> Params:
    """ACTIVE or DRAINING. A DRAINING instance receives no new tasks; services replace
    theirs there (dockyard/control); standalone tasks are left alone."""
    cluster = find_cluster(ctx, params.get("cluster"))
    status = params["status"]
    if status not in ("ACTIVE", "DRAINING"):
        raise InvalidParameterException(
            f"Container instances can be set to ACTIVE or DRAINING, not {status}."
        )
    found, failures = [], []
    for reference in params["containerInstances"]:
        instance = find_container_instance(ctx, cluster, reference)
        if instance is None or instance.status == "INACTIVE":
            arn = instance_arn(ctx, cluster, reference) or reference
            failures.append({"arn": arn, "reason": "MISSING" if instance is None else "INACTIVE"})
            continue
        if instance.status != status:
            ctx.store.tasks.set_instance_status(instance.arn, status)
            instance = replace(instance, status=status)
        found.append(_wire(ctx, instance))
    ctx.agents.notify(i["containerInstanceArn"] for i in found)
    ctx.control.wake(cluster.arn)  # services move their tasks off DRAINING instances
    return {"containerInstances": found, "failures": failures}
