"""Service deployments and revisions as ECS's newer API shows them:
ListServiceDeployments, DescribeServiceDeployments and DescribeServiceRevisions.

Every Dockyard deployment (``ServiceDeployment``, one task definition and the service
settings it was made with) is one ECS service deployment, and its ``revision``
document is the service revision it deploys. The ECS status is derived from ours:

    rollout COMPLETED                                -> SUCCESSFUL
    rollout IN_PROGRESS, PRIMARY of an ACTIVE service -> IN_PROGRESS
    rollout IN_PROGRESS otherwise (superseded by a newer deployment, or the service
      was deleted)                                   -> STOPPED
    rollout FAILED, rolled back (circuit breaker with rollback and an older
      completed deployment to return to)            -> ROLLBACK_IN_PROGRESS, then
                                                       ROLLBACK_SUCCESSFUL or _FAILED
                                                       as that deployment goes
    rollout FAILED, no rollback                      -> STOPPED
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from dockyard.api.awsjson import Params
from dockyard.api.context import RequestContext
from dockyard.api.errors import InvalidParameterException
from dockyard.api.pagination import decode_token, listing, page_size
from dockyard.control.services import circuit_breaker_threshold
from dockyard.ecs import arns
from dockyard.ecs.clusters import find_cluster
from dockyard.ecs.registry import ECS
from dockyard.ecs.service_shapes import Counts
from dockyard.ecs.services import find_service, task_counts
from dockyard.ecs.shapes import Wire
from dockyard.store.models import Service, ServiceDeployment

MAX_DESCRIBE = 20
FINISHED = frozenset({"SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"})
_ROLLBACK = {
    "IN_PROGRESS": "ROLLBACK_IN_PROGRESS",
    "COMPLETED": "ROLLBACK_SUCCESSFUL",
    "FAILED": "ROLLBACK_FAILED",
}


@ECS.operation("ListServiceDeployments")
def list_service_deployments(ctx: RequestContext, params: Params) -> Params:
    """Newest first, filtered by ECS status and creation time."""
    cluster = find_cluster(ctx, params.get("cluster"))
    service = find_service(ctx, cluster, params["service"])
    statuses = set(params.get("status") or ())
    window = params.get("createdAt") or {}
    before, after = _epoch(window.get("before")), _epoch(window.get("after"))
    token = decode_token(params.get("nextToken"))
    limit = page_size(params.get("maxResults"), default=20)
    deployments = ctx.store.services.deployments(service.arn)
    chosen = []
    for d in deployments:
        if before is not None and not d.created_at < before:
            continue
        if after is not None and not d.created_at > after:
            continue
        if statuses and deployment_status(service, d, deployments) not in statuses:
            continue
        if token is not None and not _key(d) < _parse_key(token):
            continue
        chosen.append(d)
    page, more = chosen[:limit], len(chosen) > limit
    briefs = [_brief(service, d, deployments) for d in page]
    return listing("serviceDeployments", briefs, _token_key(page[-1]) if more else None)


@ECS.operation("DescribeServiceDeployments")
def describe_service_deployments(ctx: RequestContext, params: Params) -> Params:
    found, failures = [], []
    for reference, where in _references(ctx, params["serviceDeploymentArns"], "deployment"):
        hit = _find(ctx, where)
        if hit is None:
            failures.append({"arn": reference, "reason": "MISSING"})
            continue
        service, deployment, deployments = hit
        found.append(_deployment(ctx, service, deployment, deployments))
    return {"serviceDeployments": found, "failures": failures}


@ECS.operation("DescribeServiceRevisions")
def describe_service_revisions(ctx: RequestContext, params: Params) -> Params:
    found, failures = [], []
    for reference, where in _references(ctx, params["serviceRevisionArns"], "revision"):
        hit = _find(ctx, where)
        revision = hit[1].document.get("revision") if hit else None
        if revision is None:
            failures.append({"arn": reference, "reason": "MISSING"})
            continue
        found.append(dict(revision))
    return {"serviceRevisions": found, "failures": failures}


# Status


def deployment_status(
    service: Service, deployment: ServiceDeployment, deployments: Sequence[ServiceDeployment]
) -> str:
    """The ECS service deployment status of one of ours (see the module docstring)."""
    state = deployment.rollout_state
    if state == "COMPLETED":
        return "SUCCESSFUL"
    if state == "FAILED":
        target = rollback_target(deployment, deployments)
        return _ROLLBACK[target.rollout_state] if target is not None else "STOPPED"
    if deployment.status == "PRIMARY" and service.status == "ACTIVE":
        return "IN_PROGRESS"
    return "STOPPED"


def rollback_target(
    failed: ServiceDeployment, deployments: Sequence[ServiceDeployment]
) -> ServiceDeployment | None:
    """The deployment a FAILED one rolled back to: with rollback on, the newest older
    deployment that completed (or is being restored), as the reconciler chooses it."""
    breaker = (failed.document.get("deploymentConfiguration") or {}).get(
        "deploymentCircuitBreaker"
    ) or {}
    if not breaker.get("rollback"):
        return None
    older = [
        d
        for d in deployments
        if d.created_at < failed.created_at
        and (d.rollout_state == "COMPLETED" or d.status == "PRIMARY")
    ]
    return max(older, key=lambda d: (d.updated_at, d.created_at), default=None)


# Shapes


def _brief(
    service: Service, d: ServiceDeployment, deployments: Sequence[ServiceDeployment]
) -> Wire:
    status = deployment_status(service, d, deployments)
    wire: Wire = {
        "serviceDeploymentArn": d.document.get("serviceDeploymentArn"),
        "serviceArn": service.arn,
        "clusterArn": service.cluster_arn,
        "startedAt": d.document.get("startedAt", d.created_at),
        "createdAt": d.created_at,
        "targetServiceRevisionArn": d.document.get("serviceRevisionArn"),
        "status": status,
        "statusReason": d.rollout_reason,
    }
    if status in FINISHED:
        wire["finishedAt"] = d.document.get("finishedAt", d.updated_at)
    return wire


def _deployment(
    ctx: RequestContext,
    service: Service,
    d: ServiceDeployment,
    deployments: Sequence[ServiceDeployment],
) -> Wire:
    counts = task_counts(ctx, service, deployments)
    by_revision = {x.document.get("serviceRevisionArn"): x for x in deployments}
    wire = _brief(service, d, deployments)
    del wire["targetServiceRevisionArn"]
    wire["updatedAt"] = d.updated_at
    wire["targetServiceRevision"] = _summary(d, counts.get(d.id, Counts()))
    wire["sourceServiceRevisions"] = [
        _summary(source, counts.get(source.id, Counts()))
        for arn in d.document.get("sourceServiceRevisionArns", [])
        if (source := by_revision.get(arn)) is not None
    ]
    if wire["status"] == "STOPPED":
        wire["stoppedAt"] = wire["finishedAt"]
    configuration = d.document.get("deploymentConfiguration")
    if configuration is not None:
        wire["deploymentConfiguration"] = configuration
    breaker = (configuration or {}).get("deploymentCircuitBreaker") or {}
    wire["deploymentCircuitBreaker"] = {
        "status": _breaker_status(d, bool(breaker.get("enable"))),
        "failureCount": d.failed_tasks,
        "threshold": circuit_breaker_threshold(d.desired_count),
    }
    wire["alarms"] = {"status": "DISABLED"}
    target = rollback_target(d, deployments) if d.rollout_state == "FAILED" else None
    if target is not None:
        wire["rollback"] = {
            "reason": d.rollout_reason,
            "startedAt": d.updated_at,
            "serviceRevisionArn": target.document.get("serviceRevisionArn"),
        }
    return wire


def _summary(d: ServiceDeployment, counts: Counts) -> Wire:
    return {
        "arn": d.document.get("serviceRevisionArn"),
        "requestedTaskCount": d.desired_count,
        "runningTaskCount": counts.running,
        "pendingTaskCount": counts.pending,
    }


def _breaker_status(d: ServiceDeployment, enabled: bool) -> str:
    if not enabled:
        return "DISABLED"
    return {"FAILED": "TRIGGERED", "COMPLETED": "MONITORING_COMPLETE"}.get(
        d.rollout_state, "MONITORING"
    )


# Finding deployments by ARN


def _references(
    ctx: RequestContext, references: Sequence[str], kind: str
) -> Iterable[tuple[str, tuple[str, str] | None]]:
    """(reference, (service ARN, deployment id) or None) for each ARN of
    ``service-KIND/CLUSTER/SERVICE/DIGITS``."""
    member = f"service{kind.capitalize()}Arns"
    if not 1 <= len(references) <= MAX_DESCRIBE:
        raise InvalidParameterException(
            f"{member} must name 1 to {MAX_DESCRIBE} ARNs; {len(references)} were given."
        )
    for reference in references:
        arn = arns.parse(reference)
        parts = arn.resource.split("/") if arn is not None else []
        if (
            arn is None
            or arn.kind != f"service-{kind}"
            or (arn.account_id, arn.region) != (ctx.account_id, ctx.region)
            or len(parts) != 3
            or not parts[2].isdigit()
        ):
            yield reference, None
            continue
        cluster, service, digits = parts
        yield reference, (arns.make(ctx, "service", f"{cluster}/{service}"), f"ecs-svc/{digits}")


def _find(
    ctx: RequestContext, where: tuple[str, str] | None
) -> tuple[Service, ServiceDeployment, Sequence[ServiceDeployment]] | None:
    if where is None:
        return None
    found = ctx.store.services.with_deployments(where[0])
    if found is None:
        return None
    service, deployments = found
    deployment = next((d for d in deployments if d.id == where[1]), None)
    return (service, deployment, deployments) if deployment is not None else None


# Paging and time


def _key(d: ServiceDeployment) -> tuple[float, str]:
    return d.created_at, d.id


def _token_key(d: ServiceDeployment) -> str:
    return f"{d.created_at!r}|{d.id}"


def _parse_key(token: str) -> tuple[float, str]:
    at, _, deployment_id = token.partition("|")
    try:
        return float(at), deployment_id
    except ValueError:
        raise InvalidParameterException(
            "Invalid nextToken: pass the nextToken value from a previous response."
        ) from None


def _epoch(value: Any) -> float | None:
    """A timestamp as the model accepts it: epoch seconds, or an ISO 8601 string."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
