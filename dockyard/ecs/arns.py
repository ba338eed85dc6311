"""ECS resource ARNs in AWS's formats, and reading a name-or-ARN reference."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.api.context import RequestContext

_ARN = re.compile(
    r"arn:aws:ecs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<kind>[a-z-]+)/(?P<rest>.+)"
)


@dataclass(frozen=True)
class Arn:
    region: str
    account_id: str
    kind: str  # cluster, task-definition, container-instance, service, task, ...
    resource: str  # the part after "kind/"


def parse(value: str) -> Arn | None:
    match = _ARN.fullmatch(value)
    if not match:
        return None
    return Arn(match["region"], match["account"], match["kind"], match["rest"])


def make(ctx: RequestContext, kind: str, resource: str) -> str:
    return f"arn:aws:ecs:{ctx.region}:{ctx.account_id}:{kind}/{resource}"


def cluster(ctx: RequestContext, name: str) -> str:
    return make(ctx, "cluster", name)


def task_definition(ctx: RequestContext, family: str, revision: int) -> str:
    return make(ctx, "task-definition", f"{family}:{revision}")


def container_instance(ctx: RequestContext, cluster_name: str, instance_id: str) -> str:
    return make(ctx, "container-instance", f"{cluster_name}/{instance_id}")


def cluster_name(ctx: RequestContext, reference: str) -> str | None:
    """The cluster name ``reference`` (a name or an ARN) means in the caller's account
    and region, or None for an ARN of another account, region or kind."""
    if not reference.startswith("arn:"):
        return reference
    arn = parse(reference)
    if (
        arn is None
        or arn.kind != "cluster"
        or (arn.account_id, arn.region)
        != (
            ctx.account_id,
            ctx.region,
        )
    ):
        return None
    return arn.resource


def in_cluster(ctx: RequestContext, kind: str, cluster_name: str, reference: str) -> str | None:
    """The ID or name a reference to a ``kind`` resource of the cluster (the bare ID or
    name, or an ARN in the new ``kind/CLUSTER/ID`` or old ``kind/ID`` form) carries;
    None for an ARN of another kind, account, region or cluster."""
    if not reference.startswith("arn:"):
        return reference
    arn = parse(reference)
    if arn is None or arn.kind != kind:
        return None
    if (arn.account_id, arn.region) != (ctx.account_id, ctx.region):
        return None
    named, _, reference = arn.resource.rpartition("/")
    return None if named and named != cluster_name else reference
