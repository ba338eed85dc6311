"""What CreateService and UpdateService accept, and what they store: the service's
normalised document (wire names, defaults filled) and its deployments.

The document is the contract with the reconciler loop (see
/work/notes/services-contract.md): ``taskDefinition`` is a full ARN,
``deploymentConfiguration`` carries both percentages and the circuit breaker, the
placement lists are in wire form (empty strategy: the service default).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from dockyard.api.context import RequestContext
from dockyard.api.errors import ClientException, InvalidParameterException
from dockyard.control.services import ServiceConfigError, validate_deployment_configuration
from dockyard.ecs import arns
from dockyard.ecs.service_shapes import DeploymentSettings, ServiceRequest, ServiceUpdate
from dockyard.ecs.task_definitions import parse_reference
from dockyard.scheduler.model import (
    PlacementInputError,
    combine_constraints,
    parse_constraints,
    parse_strategies,
)
from dockyard.store.models import Service, ServiceDeployment, TaskDefinition

Document = dict[str, Any]

DAEMON_DESIRED_COUNT = (
    "The daemon scheduling strategy does not support a desired count for services. "
    "Remove the desired count value and try again"
)
DAEMON_STRATEGY = (
    "The daemon scheduling strategy does not support placement strategies. "
    "Remove the placement strategy and try again"
)
# Changes that need tasks started afresh, so a new deployment (the contract's list).
REDEPLOY_FIELDS = ("taskDefinition", "placementConstraints", "placementStrategy",
                   "launchType", "networkConfiguration")  # fmt: skip


def runnable_definition(ctx: RequestContext, reference: str | None) -> TaskDefinition:
    """The task definition a service is to run: ``family`` (its latest ACTIVE revision),
    ``family:revision`` or an ARN; missing -> ClientException, INACTIVE -> InvalidParameter."""
    if not reference:
        raise InvalidParameterException(
            "taskDefinition is required: name a family, family:revision or task definition ARN."
        )
    family, revision = parse_reference(ctx, reference)
    if revision == 0:
        raise ClientException("Invalid revision number. Number: 0")
    definition = ctx.store.get_task_definition(ctx.account_id, ctx.region, family, revision)
    if definition is None:
        raise ClientException("TaskDefinition not found.")
    if definition.status != "ACTIVE":
        raise InvalidParameterException(
            f"TaskDefinition is inactive: {definition.family}:{definition.revision} was "
            "deregistered; register a new revision or name an ACTIVE one."
        )
    return definition


def launch_type(given: str | None, strategy: Sequence[Mapping[str, Any]] | None) -> str:
    """RunTask's rule and words (tasks.py): EC2 or EXTERNAL until the Fargate pool exists."""
    if strategy:
        raise InvalidParameterException(
            "capacityProviderStrategy is not supported yet; use launchType EC2 or EXTERNAL."
        )
    chosen = given or "EC2"
    if chosen not in ("EC2", "EXTERNAL"):
        raise InvalidParameterException(
            f"launchType {chosen} is not supported yet; tasks run on the cluster's "
            "container instances with launchType EC2 or EXTERNAL."
        )
    return chosen


def deployment_configuration(
    scheduling: str, current: Mapping[str, Any] | None, given: DeploymentSettings | None
) -> Document:
    """``given`` over ``current`` (members left out keep their value), defaulted and
    checked by the reconciler's own rules."""
    current = current or {}
    breaker = current.get("deploymentCircuitBreaker") or {"enable": False, "rollback": False}
    low, high = current.get("minimumHealthyPercent"), current.get("maximumPercent")
    if given is not None:
        low = given.minimum_healthy_percent if given.minimum_healthy_percent is not None else low
        high = given.maximum_percent if given.maximum_percent is not None else high
        if given.circuit_breaker is not None:
            breaker = {
                "enable": given.circuit_breaker.enable,
                "rollback": given.circuit_breaker.rollback,
            }
    try:
        low, high = validate_deployment_configuration(scheduling, low, high)
    except ServiceConfigError as error:
        raise InvalidParameterException(error.message) from None
    return {
        "deploymentCircuitBreaker": dict(breaker),
        "maximumPercent": high,
        "minimumHealthyPercent": low,
    }


def check_placement(
    definition: Mapping[str, Any],
    scheduling: str,
    constraints: Sequence[Mapping[str, Any]],
    strategies: Sequence[Mapping[str, Any]],
) -> None:
    """Parsed as the loop will parse them, so a mistake is the caller's error now;
    ``definition``: the task definition's document (its memberOf constraints count)."""
    if scheduling == "DAEMON" and strategies:
        raise InvalidParameterException(DAEMON_STRATEGY)
    try:
        own = parse_constraints(
            definition.get("placementConstraints"),
            "taskDefinition.placementConstraints",
            in_task_definition=True,
        )
        combine_constraints(own, parse_constraints(constraints))
        parse_strategies(strategies)
    except PlacementInputError as error:
        raise InvalidParameterException(error.message) from None


def check_network(definition: TaskDefinition, network: Mapping[str, Any] | None) -> None:
    awsvpc = definition.document.get("networkMode") == "awsvpc"
    if awsvpc and not network:
        raise InvalidParameterException(
            "Network Configuration must be provided when networkMode 'awsvpc' is specified."
        )
    if network and not awsvpc:
        raise InvalidParameterException(
            "Network Configuration is not valid for the given networkMode of this task "
            "definition; networkConfiguration applies to awsvpc task definitions only."
        )


def create_document(
    ctx: RequestContext, request: ServiceRequest, definition: TaskDefinition
) -> Document:
    """The service document of a CreateService call, every rule checked."""
    launch = launch_type(request.launch_type, request.capacity_provider_strategy)
    if request.platform_version is not None:
        raise InvalidParameterException(
            f"The platform version must be null when specifying an {launch} launch type."
        )
    if request.scheduling == "DAEMON":
        if request.desired_count is not None:
            raise InvalidParameterException(DAEMON_DESIRED_COUNT)
        desired = 0  # the loop counts the eligible instances
    else:
        if request.desired_count is None:
            raise InvalidParameterException(
                "desiredCount is required for a service with the REPLICA scheduling strategy."
            )
        desired = request.desired_count
    check_placement(
        definition.document,
        request.scheduling,
        request.placement_constraints,
        request.placement_strategy,
    )
    check_network(definition, request.network_configuration)
    document: Document = {
        "taskDefinition": definition.arn,
        "desiredCount": desired,
        "schedulingStrategy": request.scheduling,
        "launchType": launch,
        "deploymentConfiguration": deployment_configuration(
            request.scheduling, None, request.deployment
        ),
        "placementConstraints": [dict(c) for c in request.placement_constraints],
        "placementStrategy": [dict(s) for s in request.placement_strategy],
        "propagateTags": request.propagate_tags,
        "enableECSManagedTags": request.enable_ecs_managed_tags,
        "enableExecuteCommand": request.enable_execute_command,
        "loadBalancers": [],
        "serviceRegistries": [],
        "deploymentController": {"type": "ECS"},
        "createdBy": ctx.principal_arn,
    }
    if request.health_check_grace_period is not None:
        document["healthCheckGracePeriodSeconds"] = request.health_check_grace_period
    if request.network_configuration:
        document["networkConfiguration"] = dict(request.network_configuration)
    if request.role:
        document["roleArn"] = _role_arn(ctx, request.role)
    if request.availability_zone_rebalancing:
        document["availabilityZoneRebalancing"] = request.availability_zone_rebalancing
    return document


def updated_document(
    service: Service, update: ServiceUpdate, definition: TaskDefinition | None
) -> Document:
    """The document after ``update``; ``definition``: the new task definition, if any
    (else the current one, for the placement and network checks)."""
    old = service.document
    doc: Document = dict(old)
    scheduling = old["schedulingStrategy"]
    if update.capacity_provider_strategy:
        launch_type(None, update.capacity_provider_strategy)
    if update.platform_version is not None:
        raise InvalidParameterException(
            f"The platform version must be null when specifying an {old.get('launchType')} "
            "launch type."
        )
    if update.desired_count is not None:
        if scheduling == "DAEMON":
            raise InvalidParameterException(DAEMON_DESIRED_COUNT)
        doc["desiredCount"] = update.desired_count
    if definition is not None:
        doc["taskDefinition"] = definition.arn
    if update.deployment is not None:
        doc["deploymentConfiguration"] = deployment_configuration(
            scheduling, old.get("deploymentConfiguration"), update.deployment
        )
    if update.placement_constraints is not None:
        doc["placementConstraints"] = [dict(c) for c in update.placement_constraints]
    if update.placement_strategy is not None:
        doc["placementStrategy"] = [dict(s) for s in update.placement_strategy]
    if update.network_configuration is not None:
        doc["networkConfiguration"] = dict(update.network_configuration)
    if update.health_check_grace_period is not None:
        doc["healthCheckGracePeriodSeconds"] = update.health_check_grace_period
    for name, value in (
        ("propagateTags", update.propagate_tags),
        ("enableECSManagedTags", update.enable_ecs_managed_tags),
        ("enableExecuteCommand", update.enable_execute_command),
        ("availabilityZoneRebalancing", update.availability_zone_rebalancing),
    ):
        if value is not None:
            doc[name] = value
    return doc


def needs_deployment(old: Mapping[str, Any], new: Mapping[str, Any], force: bool) -> bool:
    return force or any(old.get(f) != new.get(f) for f in REDEPLOY_FIELDS)


# Deployments


def new_deployment(
    ctx: RequestContext,
    service: Service,
    definition: TaskDefinition,
    sources: Sequence[ServiceDeployment] = (),
) -> ServiceDeployment:
    """A PRIMARY IN_PROGRESS deployment of the service's document as it is now;
    ``sources``: the deployments whose tasks it replaces (ECS's source revisions)."""
    deployment_id = f"ecs-svc/{secrets.randbelow(10**19):019d}"
    digits = deployment_id.removeprefix("ecs-svc/")
    where = service.arn.split(":service/", 1)[1]  # CLUSTER/NAME
    doc = service.document
    revision_arn = arns.make(ctx, "service-revision", f"{where}/{digits}")
    revision: Document = {
        "serviceRevisionArn": revision_arn,
        "serviceArn": service.arn,
        "clusterArn": service.cluster_arn,
        "taskDefinition": definition.arn,
        "launchType": doc["launchType"],
        "loadBalancers": [],
        "serviceRegistries": [],
        "containerImages": [
            {"containerName": c["name"], "image": c["image"]}
            for c in definition.document.get("containerDefinitions", [])
        ],
        "guardDutyEnabled": False,
        "createdAt": ctx.now,
    }
    if doc.get("networkConfiguration"):
        revision["networkConfiguration"] = doc["networkConfiguration"]
    return ServiceDeployment(
        service_arn=service.arn,
        id=deployment_id,
        status="PRIMARY",
        task_definition_arn=definition.arn,
        desired_count=doc.get("desiredCount", 0),
        rollout_state="IN_PROGRESS",
        rollout_reason=f"ECS deployment {deployment_id} in progress.",
        failed_tasks=0,
        created_at=ctx.now,
        updated_at=ctx.now,
        document={
            "serviceDeploymentArn": arns.make(ctx, "service-deployment", f"{where}/{digits}"),
            "serviceRevisionArn": revision_arn,
            "launchType": doc["launchType"],
            "deploymentConfiguration": doc["deploymentConfiguration"],
            "sourceServiceRevisionArns": [
                s.document["serviceRevisionArn"]
                for s in sources
                if s.document.get("serviceRevisionArn")
            ],
            "revision": revision,
        },
    )


def _role_arn(ctx: RequestContext, role: str) -> str:
    """ECS echoes a role name as its ARN."""
    if role.startswith("arn:"):
        return role
    return f"arn:aws:iam::{ctx.account_id}:role/{role}"
