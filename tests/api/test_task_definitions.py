"""Task definitions: the study page's webserver, revisions, listing and retirement."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.live import REGION, LiveServer

ARN = f"arn:aws:ecs:{REGION}:000000000000:task-definition/"
TARGET = "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition"


def webserver(**overrides: Any) -> dict[str, Any]:
    """The study page's task definition, made valid (no trailing commas, numbers)."""
    definition: dict[str, Any] = {
        "family": "webserver",
        "containerDefinitions": [{"name": "web", "image": "nginx", "memory": 100, "cpu": 99}],
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "memory": "512",
        "cpu": "256",
    }
    definition.update(overrides)
    return definition


def error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = excinfo.value.response["Error"]
    return str(err["Code"]), str(err["Message"])


def test_webserver_registers_as_revision_1_then_2(ecs: Any) -> None:
    first = ecs.register_task_definition(**webserver())["taskDefinition"]
    assert first["taskDefinitionArn"] == ARN + "webserver:1"
    assert (first["family"], first["revision"], first["status"]) == ("webserver", 1, "ACTIVE")
    assert first["compatibilities"] == ["EC2", "FARGATE"]
    assert first["containerDefinitions"][0]["essential"] is True
    assert {"name": "ecs.capability.task-eni"} in first["requiresAttributes"]
    second = ecs.register_task_definition(**webserver())["taskDefinition"]
    assert second["taskDefinitionArn"] == ARN + "webserver:2"

    latest = ecs.describe_task_definition(taskDefinition="webserver")["taskDefinition"]
    assert latest["revision"] == 2
    by_arn = ecs.describe_task_definition(taskDefinition=ARN + "webserver:1")
    assert by_arn["taskDefinition"]["revision"] == 1


def test_cpu_and_memory_given_in_units_are_normalised(ecs: Any) -> None:
    registered = ecs.register_task_definition(**webserver(cpu="1 vCPU", memory="2 GB"))
    definition = registered["taskDefinition"]
    assert (definition["cpu"], definition["memory"]) == ("1024", "2048")


def test_memory_as_a_string_is_refused_naming_the_field(server: LiveServer, ecs: Any) -> None:
    body = webserver()
    body["containerDefinitions"][0]["memory"] = "100"
    response = server.signed_post(
        "/",
        json.dumps(body).encode(),
        {"X-Amz-Target": TARGET, "Content-Type": "application/x-amz-json-1.1"},
    )
    assert response.status_code == 400
    answer = response.json()
    assert answer["__type"] == "SerializationException"
    assert "containerDefinitions[0].memory" in answer["message"]
    assert ecs.list_task_definitions()["taskDefinitionArns"] == []


def test_the_study_page_json_as_written_is_refused(server: LiveServer, ecs: Any) -> None:
    """Trailing commas and string numbers: invalid JSON, answered clearly, nothing stored."""
    as_written = b"""{
"family": "webserver",
"containerDefinitions": [
{ "name": "web", "image": "nginx", "memory": "100", "cpu": "99" },
],
"requiresCompatibilities": [ "FARGATE" ],
"networkMode": "awsvpc", "memory": "512", "cpu": "256",
}"""
    response = server.signed_post(
        "/", as_written, {"X-Amz-Target": TARGET, "Content-Type": "application/x-amz-json-1.1"}
    )
    assert response.status_code == 400
    assert response.json()["__type"] == "SerializationException"
    assert "not valid JSON" in response.json()["message"]
    assert ecs.list_task_definition_families()["families"] == []


@pytest.mark.parametrize(
    ("overrides", "code", "phrase"),
    [
        ({"memory": "4096"}, "ClientException", "256 CPU, 4096 memory"),
        ({"networkMode": "bridge"}, "ClientException", "awsvpc"),
        ({"containerDefinitions": []}, "ClientException", "containerDefinitions"),
        (
            {
                "containerDefinitions": [
                    {"name": "a", "image": "x", "essential": False},
                ]
            },
            "ClientException",
            "essential",
        ),
        (
            {
                "containerDefinitions": [
                    {"name": "a", "image": "x"},
                    {"name": "a", "image": "y"},
                ]
            },
            "ClientException",
            "a",
        ),
        ({"family": "bad family!"}, "ClientException", "amily"),
    ],
    ids=[
        "fargate-combo",
        "fargate-bridge",
        "no-containers",
        "none-essential",
        "dup-names",
        "family",
    ],
)
def test_ecs_rules_refuse_bad_definitions(
    ecs: Any, overrides: dict[str, Any], code: str, phrase: str
) -> None:
    ecs.register_task_definition(**webserver())
    with pytest.raises(ClientError) as excinfo:
        ecs.register_task_definition(**webserver(**overrides))
    got_code, message = error(excinfo)
    assert got_code == code
    assert phrase in message
    # Nothing changed: still exactly one revision.
    assert ecs.list_task_definitions()["taskDefinitionArns"] == [ARN + "webserver:1"]


def test_ec2_container_needs_memory_unless_task_memory_is_set(ecs: Any) -> None:
    container = {"name": "app", "image": "busybox"}
    with pytest.raises(ClientError) as excinfo:
        ecs.register_task_definition(family="ec2", containerDefinitions=[container])
    assert error(excinfo)[0] == "ClientException"
    assert "memory" in error(excinfo)[1]
    ok = ecs.register_task_definition(family="ec2", containerDefinitions=[container], memory="256")
    assert ok["taskDefinition"]["compatibilities"] == ["EC2"]


def test_tags_describe_include_and_list_filters(ecs: Any) -> None:
    tags = [{"key": "app", "value": "web"}]
    registered = ecs.register_task_definition(**webserver(tags=tags))
    assert registered["tags"] == tags
    described = ecs.describe_task_definition(taskDefinition="webserver:1", include=["TAGS"])
    assert described["tags"] == tags
    assert "tags" not in ecs.describe_task_definition(taskDefinition="webserver:1")
    arn = registered["taskDefinition"]["taskDefinitionArn"]
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == tags


def test_listing_sorting_and_paging(ecs: Any) -> None:
    for family in ("alpha", "beta"):
        for _ in range(3):
            ecs.register_task_definition(**webserver(family=family))
    listed = ecs.list_task_definitions()["taskDefinitionArns"]
    assert listed == [ARN + f"{f}:{r}" for f in ("alpha", "beta") for r in (1, 2, 3)]
    descending = ecs.list_task_definitions(sort="DESC")["taskDefinitionArns"]
    assert descending == list(reversed(listed))
    only_beta = ecs.list_task_definitions(familyPrefix="beta")["taskDefinitionArns"]
    assert only_beta == [ARN + f"beta:{r}" for r in (1, 2, 3)]

    pages = ecs.get_paginator("list_task_definitions").paginate(
        sort="DESC", PaginationConfig={"PageSize": 4}
    )
    assert [a for p in pages for a in p["taskDefinitionArns"]] == descending

    families = ecs.list_task_definition_families(familyPrefix="al")["families"]
    assert families == ["alpha"]


def test_deregister_then_delete(ecs: Any) -> None:
    ecs.register_task_definition(**webserver())
    ecs.register_task_definition(**webserver())
    with pytest.raises(ClientError) as excinfo:
        ecs.deregister_task_definition(taskDefinition="webserver")
    assert error(excinfo)[0] == "ClientException"

    gone = ecs.deregister_task_definition(taskDefinition="webserver:2")["taskDefinition"]
    assert gone["status"] == "INACTIVE"
    assert "deregisteredAt" in gone
    # The latest ACTIVE revision is now 1; INACTIVE ones are listed on request.
    latest = ecs.describe_task_definition(taskDefinition="webserver")["taskDefinition"]
    assert latest["revision"] == 1
    assert ecs.list_task_definitions(status="INACTIVE")["taskDefinitionArns"] == [
        ARN + "webserver:2"
    ]
    assert ecs.list_task_definition_families(status="INACTIVE")["families"] == []

    result = ecs.delete_task_definitions(taskDefinitions=["webserver:2", "webserver:1"])
    assert [d["status"] for d in result["taskDefinitions"]] == ["DELETE_IN_PROGRESS"]
    assert result["failures"][0]["arn"] == ARN + "webserver:1"
    assert "ACTIVE" in result["failures"][0]["reason"]

    ecs.deregister_task_definition(taskDefinition="webserver:1")
    assert ecs.list_task_definition_families(status="INACTIVE")["families"] == ["webserver"]
    assert ecs.list_task_definition_families(status="ACTIVE")["families"] == []


def test_unknown_task_definition(ecs: Any) -> None:
    for reference in ("nothing", "nothing:3", ARN + "nothing:1"):
        with pytest.raises(ClientError) as excinfo:
            ecs.describe_task_definition(taskDefinition=reference)
        assert error(excinfo)[0] == "ClientException"


def test_aws_cli_registers_from_a_json_file(server: LiveServer, ecs: Any, tmp_path: Any) -> None:
    path = tmp_path / "webserver.json"
    path.write_text(json.dumps(webserver()))
    result = server.aws("ecs", "register-task-definition", "--cli-input-json", f"file://{path}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["taskDefinition"]["taskDefinitionArn"] == ARN + "webserver:1"
    described = server.aws("ecs", "describe-task-definition", "--task-definition", "webserver")
    assert json.loads(described.stdout)["taskDefinition"]["cpu"] == "256"
