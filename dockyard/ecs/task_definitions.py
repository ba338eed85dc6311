"""Task definitions: register revisions, describe, list, deregister and delete."""

from __future__ import annotations

import re

from dockyard.api.awsjson import Params
from dockyard.api.context import RequestContext
from dockyard.api.errors import ClientException, InvalidParameterException
from dockyard.api.pagination import decode_token, listing, page_size
from dockyard.ecs import arns, shapes
from dockyard.ecs.capabilities import required_attributes
from dockyard.ecs.registry import ECS
from dockyard.ecs.taskdef_rules import check_task_definition
from dockyard.store.models import TaskDefinition

_REFERENCE = re.compile(r"(?P<family>[A-Za-z0-9_-]{1,255})(?::(?P<revision>\d+))?")


def parse_reference(ctx: RequestContext, reference: str) -> tuple[str, int | None]:
    """``family``, ``family:revision`` or a task definition ARN -> (family, revision)."""
    if reference.startswith("arn:"):
        arn = arns.parse(reference)
        if arn is None or arn.kind != "task-definition":
            raise ClientException(f"Invalid task definition ARN: {reference}")
        if (arn.account_id, arn.region) != (ctx.account_id, ctx.region):
            raise ClientException("Unable to describe task definition.")
        reference = arn.resource
    match = _REFERENCE.fullmatch(reference)
    if not match:
        raise ClientException(
            f"Invalid task definition {reference!r}: expected family, family:revision or an ARN."
        )
    revision = match["revision"]
    return match["family"], int(revision) if revision is not None else None


def find_task_definition(ctx: RequestContext, reference: str) -> TaskDefinition:
    family, revision = parse_reference(ctx, reference)
    if revision == 0:
        raise ClientException("Invalid revision number. Number: 0")
    definition = ctx.store.get_task_definition(ctx.account_id, ctx.region, family, revision)
    if definition is None:
        raise ClientException("Unable to describe task definition.")
    return definition


def _wire(definition: TaskDefinition) -> Params:
    return shapes.task_definition_to_wire(definition, required_attributes(definition.document))


@ECS.operation("RegisterTaskDefinition")
def register_task_definition(ctx: RequestContext, params: Params) -> Params:
    document = check_task_definition(params)
    tags = shapes.tags_from_wire(document.pop("tags", None))
    family = document["family"]

    def make(revision: int) -> TaskDefinition:
        return TaskDefinition(
            arn=arns.task_definition(ctx, family, revision),
            account_id=ctx.account_id,
            region=ctx.region,
            family=family,
            revision=revision,
            status="ACTIVE",
            document=document,
            registered_at=ctx.now,
            registered_by=ctx.principal_arn,
        )

    definition = ctx.store.add_task_definition(ctx.account_id, ctx.region, family, make)
    ctx.store.put_tags(definition.arn, tags)
    result: Params = {"taskDefinition": _wire(definition)}
    if tags:
        result["tags"] = shapes.tags_to_wire(tags)
    return result


@ECS.operation("DescribeTaskDefinition")
def describe_task_definition(ctx: RequestContext, params: Params) -> Params:
    definition = find_task_definition(ctx, params["taskDefinition"])
    result: Params = {"taskDefinition": _wire(definition)}
    if "TAGS" in (params.get("include") or []):
        result["tags"] = shapes.tags_to_wire(ctx.store.get_tags(definition.arn))
    return result


@ECS.operation("ListTaskDefinitions")
def list_task_definitions(ctx: RequestContext, params: Params) -> Params:
    after = decode_token(params.get("nextToken"))
    after_key = None
    if after is not None:
        family, _, revision = after.rpartition(":")
        if not family or not revision.isdigit():
            raise InvalidParameterException("Invalid nextToken.")
        after_key = (family, int(revision))
    page = ctx.store.list_task_definitions(
        ctx.account_id,
        ctx.region,
        family=params.get("familyPrefix"),
        status=params.get("status", "ACTIVE"),
        descending=params.get("sort") == "DESC",
        after=after_key,
        limit=page_size(params.get("maxResults")),
    )
    return listing("taskDefinitionArns", [d.arn for d in page.items], page.next_key)


@ECS.operation("ListTaskDefinitionFamilies")
def list_task_definition_families(ctx: RequestContext, params: Params) -> Params:
    status = params.get("status", "ALL")
    page = ctx.store.list_families(
        ctx.account_id,
        ctx.region,
        prefix=params.get("familyPrefix"),
        status=None if status == "ALL" else status,
        after=decode_token(params.get("nextToken")),
        limit=page_size(params.get("maxResults")),
    )
    return listing("families", list(page.items), page.next_key)


@ECS.operation("DeregisterTaskDefinition")
def deregister_task_definition(ctx: RequestContext, params: Params) -> Params:
    reference = params["taskDefinition"]
    if parse_reference(ctx, reference)[1] is None:
        raise ClientException(
            "Invalid revision number: deregistering needs family:revision or the full ARN."
        )
    definition = find_task_definition(ctx, reference)
    if definition.status == "ACTIVE":
        updated = ctx.store.set_task_definition_status(definition.arn, "INACTIVE", ctx.now)
        definition = updated or definition
    return {"taskDefinition": _wire(definition)}


@ECS.operation("DeleteTaskDefinitions")
def delete_task_definitions(ctx: RequestContext, params: Params) -> Params:
    deleted, failures = [], []
    for reference in params["taskDefinitions"]:
        try:
            if parse_reference(ctx, reference)[1] is None:
                raise ClientException("The specified task definition must include a revision.")
            definition = find_task_definition(ctx, reference)
        except ClientException as error:
            failures.append({"arn": reference, "reason": error.message})
            continue
        if definition.status == "ACTIVE":
            failures.append(
                {
                    "arn": definition.arn,
                    "reason": "The specified task definition is still in ACTIVE status. "
                    "Please deregister the target and try again.",
                }
            )
            continue
        updated = ctx.store.set_task_definition_status(definition.arn, "DELETE_IN_PROGRESS", None)
        deleted.append(_wire(updated or definition))
    return {"taskDefinitions": deleted, "failures": failures}
