"""The response checker itself: good bodies pass, each kind of drift is named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from tests.shapecheck import check_error, check_output, check_response, install

ECS = botocore.session.get_session().get_service_model("ecs")

CLUSTER = {
    "clusterArn": "arn:aws:ecs:us-east-1:000000000000:cluster/default",
    "clusterName": "default",
    "status": "ACTIVE",
    "registeredContainerInstancesCount": 0,
    "tags": [{"key": "team", "value": "infra"}],
    "settings": [{"name": "containerInsights", "value": "disabled"}],
}


def cluster(**changes: Any) -> dict[str, Any]:
    return {"cluster": {**CLUSTER, **changes}}


GOOD = [
    pytest.param("CreateCluster", cluster(), id="cluster"),
    pytest.param("CreateCluster", {}, id="empty-object"),
    pytest.param("ListClusters", {"clusterArns": [], "nextToken": "t"}, id="list"),
    pytest.param(
        "DescribeClusters",
        {"clusters": [CLUSTER], "failures": [{"arn": "a", "reason": "MISSING"}]},
        id="clusters-and-failures",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        {
            "taskDefinition": {
                "family": "web",
                "revision": 1,
                "networkMode": "bridge",
                "registeredAt": 1714564800.123,
                "containerDefinitions": [{"name": "app", "dockerLabels": {"a": "b"}}],
            }
        },
        id="task-definition-float-timestamp-map",
    ),
]


@pytest.mark.parametrize(("operation", "body"), GOOD)
def test_good_output_has_no_problems(operation: str, body: object) -> None:
    assert check_output(ECS.operation_model(operation), body) == []


BAD = [
    pytest.param(
        "CreateCluster",
        cluster(colour="blue"),
        "cluster.colour: not a member of Cluster",
        id="unknown-member",
    ),
    pytest.param(
        "ListClusters",
        {"clusterArns": [], "count": 0},
        "count: not a member of ListClustersResponse",
        id="unknown-top-level-member",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        {"taskDefinition": {"registeredAt": "2024-05-01T12:00:00Z"}},
        "taskDefinition.registeredAt: expected a number of epoch seconds, got str",
        id="string-timestamp",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        {"taskDefinition": {"networkMode": "XYZ"}},
        "taskDefinition.networkMode: 'XYZ' is not in the enum set",
        id="bad-enum",
    ),
    pytest.param(
        "CreateCluster",
        cluster(registeredContainerInstancesCount="3"),
        "cluster.registeredContainerInstancesCount: expected an integer, got str",
        id="string-for-integer",
    ),
    pytest.param(
        "CreateCluster",
        cluster(registeredContainerInstancesCount=3.0),
        "cluster.registeredContainerInstancesCount: expected an integer, got float",
        id="float-for-integer",
    ),
    pytest.param(
        "CreateCluster",
        cluster(registeredContainerInstancesCount=True),
        "cluster.registeredContainerInstancesCount: expected an integer, got bool",
        id="bool-for-integer",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        {"taskDefinition": {"containerDefinitions": [{"essential": "true"}]}},
        "taskDefinition.containerDefinitions[0].essential: expected a boolean, got str",
        id="string-for-boolean",
    ),
    pytest.param(
        "CreateCluster",
        cluster(clusterName=None),
        "cluster.clusterName: null; omit the member instead",
        id="null-member",
    ),
    pytest.param(
        "DescribeClusters",
        {"clusters": CLUSTER},
        "clusters: expected a list, got dict",
        id="object-for-list",
    ),
    pytest.param(
        "CreateCluster",
        cluster(tags=[{"key": "team"}, "oops"]),
        "cluster.tags[1]: expected an object, got str",
        id="string-in-list-of-structures",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        {"taskDefinition": {"containerDefinitions": [{"dockerLabels": {"a": 1}}]}},
        "taskDefinition.containerDefinitions[0].dockerLabels.a: expected a string, got int",
        id="map-value",
    ),
    pytest.param(
        "RegisterTaskDefinition",
        {"taskDefinition": {"containerDefinitions": [{"secrets": [{"name": "x"}]}]}},
        "taskDefinition.containerDefinitions[0].secrets[0].valueFrom: required by Secret",
        id="required-member-missing",
    ),
    pytest.param("ListClusters", [], "body: expected an object, got list", id="body-not-object"),
]


@pytest.mark.parametrize(("operation", "body", "problem"), BAD)
def test_bad_output_is_named(operation: str, body: object, problem: str) -> None:
    problems = check_output(ECS.operation_model(operation), body)
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem)


def test_every_problem_is_reported() -> None:
    body = cluster(colour="blue", status=None, runningTasksCount="1")
    assert len(check_output(ECS.operation_model("CreateCluster"), body)) == 3


ERRORS = [
    pytest.param(
        "DescribeClusters",
        {"__type": "InvalidParameterException", "message": "bad"},
        [],
        id="declared",
    ),
    pytest.param(
        "DescribeClusters",
        {"__type": "com.amazonaws.ecs#ClientException", "Message": "bad"},
        [],
        id="namespaced-type-capital-Message",
    ),
    pytest.param(
        "ListClusters",
        {"__type": "UnrecognizedClientException", "message": "who?"},
        [],
        id="common-error",
    ),
    pytest.param(
        "DescribeClusters",
        {"__type": "ClusterNotFoundException", "message": "no"},
        ["__type 'ClusterNotFoundException' is neither declared by DescribeClusters"],
        id="undeclared-for-this-operation",
    ),
    pytest.param(
        "DeleteCluster",
        {"__type": "ClusterNotFoundException"},
        ["message (or Message) must be a string"],
        id="missing-message",
    ),
    pytest.param(
        "DeleteCluster",
        {"message": "no", "__type": 404},
        ["__type must be a string"],
        id="type-not-a-string",
    ),
    pytest.param("DeleteCluster", "boom", ["error body must be an object"], id="not-object"),
]


@pytest.mark.parametrize(("operation", "body", "problems"), ERRORS)
def test_error_bodies(operation: str, body: object, problems: list[str]) -> None:
    found = check_error(ECS.operation_model(operation), body)
    assert len(found) == len(problems), found
    for got, expected in zip(found, problems, strict=True):
        assert got.startswith(expected)


def test_response_that_is_not_json() -> None:
    problems = check_response(ECS.operation_model("ListClusters"), 200, b"<html>")
    assert problems and problems[0].startswith("body is not JSON")


# install(): a boto3 client whose HTTP layer is replaced by canned responses, via
# botocore's before-send event, so the real before-parse hook runs without a server.


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def client_answering(status: int, body: object) -> Any:
    client = boto3.client(
        "ecs",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 0}),
    )

    def send(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, status, {}, _Raw(json.dumps(body).encode()))

    client.meta.events.register("before-send.ecs.*", send)
    install(client)
    return client


def test_install_passes_a_good_response() -> None:
    client = client_answering(200, {"clusterArns": ["arn:a"]})
    assert client.list_clusters()["clusterArns"] == ["arn:a"]


def test_install_fails_the_call_on_a_bad_response() -> None:
    client = client_answering(200, {"clusterArns": ["arn:a"], "total": 1})
    with pytest.raises(AssertionError, match="ListClusters response breaks the model"):
        client.list_clusters()


def test_install_checks_error_responses() -> None:
    client = client_answering(400, {"__type": "NoSuchThingException", "message": "x"})
    with pytest.raises(AssertionError, match="NoSuchThingException"):
        client.list_clusters()


def test_install_lets_a_declared_error_through() -> None:
    client = client_answering(400, {"__type": "ClusterNotFoundException", "message": "gone"})
    with pytest.raises(client.exceptions.ClusterNotFoundException):
        client.delete_cluster(cluster="gone")
