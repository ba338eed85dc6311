"""Clusters through boto3 and the AWS CLI, as a user would drive them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.live import REGION, LiveServer

ARN = f"arn:aws:ecs:{REGION}:000000000000:cluster/"


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def test_create_describe_list_delete_story(ecs: Any) -> None:
    created = ecs.create_cluster(clusterName="MyCluster", tags=[{"key": "team", "value": "a"}])
    cluster = created["cluster"]
    assert cluster["clusterArn"] == ARN + "MyCluster"
    assert cluster["status"] == "ACTIVE"
    assert cluster["tags"] == [{"key": "team", "value": "a"}]
    assert cluster["registeredContainerInstancesCount"] == 0

    assert ecs.list_clusters()["clusterArns"] == [ARN + "MyCluster"]

    described = ecs.describe_clusters(
        clusters=["MyCluster", ARN + "MyCluster", "ghost"],
        include=["SETTINGS", "STATISTICS", "TAGS"],
    )
    assert [c["clusterName"] for c in described["clusters"]] == ["MyCluster", "MyCluster"]
    assert described["failures"] == [{"arn": ARN + "ghost", "reason": "MISSING"}]
    first = described["clusters"][0]
    assert first["settings"] == [{"name": "containerInsights", "value": "disabled"}]
    assert {s["name"] for s in first["statistics"]} >= {"runningEC2TasksCount"}
    assert first["tags"] == [{"key": "team", "value": "a"}]

    deleted = ecs.delete_cluster(cluster="MyCluster")["cluster"]
    assert deleted["status"] == "INACTIVE"
    assert ecs.list_clusters()["clusterArns"] == []
    # Like ECS, a deleted cluster is still described, as INACTIVE.
    again = ecs.describe_clusters(clusters=["MyCluster"])["clusters"]
    assert [c["status"] for c in again] == ["INACTIVE"]
    with pytest.raises(ClientError) as excinfo:
        ecs.delete_cluster(cluster="MyCluster")
    assert error_code(excinfo) == "ClusterNotFoundException"


def test_describe_without_include_leaves_out_optional_parts(ecs: Any) -> None:
    ecs.create_cluster(clusterName="plain", tags=[{"key": "k", "value": "v"}])
    cluster = ecs.describe_clusters(clusters=["plain"])["clusters"][0]
    assert "settings" not in cluster
    assert "statistics" not in cluster
    assert "tags" not in cluster


def test_create_is_idempotent_and_recreating_reactivates(ecs: Any) -> None:
    first = ecs.create_cluster(clusterName="twice")["cluster"]
    second = ecs.create_cluster(clusterName="twice")["cluster"]
    assert first["clusterArn"] == second["clusterArn"]
    assert len(ecs.list_clusters()["clusterArns"]) == 1
    ecs.delete_cluster(cluster="twice")
    assert ecs.create_cluster(clusterName="twice")["cluster"]["status"] == "ACTIVE"


def test_default_cluster_when_no_name_given(ecs: Any) -> None:
    assert ecs.create_cluster()["cluster"]["clusterName"] == "default"
    assert ecs.describe_clusters()["clusters"][0]["clusterName"] == "default"


def test_list_clusters_pages(ecs: Any) -> None:
    names = [f"c{i:02d}" for i in range(7)]
    for name in names:
        ecs.create_cluster(clusterName=name)
    seen: list[str] = []
    token: dict[str, str] = {}
    pages = 0
    while True:
        page = ecs.list_clusters(maxResults=3, **token)
        seen += page["clusterArns"]
        pages += 1
        if "nextToken" not in page:
            break
        token = {"nextToken": page["nextToken"]}
    assert pages == 3
    assert seen == [ARN + n for n in names]
    paginated = ecs.get_paginator("list_clusters").paginate(PaginationConfig={"PageSize": 2})
    assert sum(len(p["clusterArns"]) for p in paginated) == 7


def test_clusters_are_per_region(server: LiveServer, ecs: Any) -> None:
    ecs.create_cluster(clusterName="here")
    elsewhere = server.client("ecs", region="us-east-1")
    assert elsewhere.list_clusters()["clusterArns"] == []
    created = elsewhere.create_cluster(clusterName="here")["cluster"]
    assert created["clusterArn"].startswith("arn:aws:ecs:us-east-1:000000000000:cluster/")


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("has space", "InvalidParameterException"),
        ("x" * 256, "InvalidParameterException"),
        ("bad/slash", "InvalidParameterException"),
    ],
    ids=["space", "too-long", "slash"],
)
def test_bad_cluster_names_are_refused(ecs: Any, name: str, code: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        ecs.create_cluster(clusterName=name)
    assert error_code(excinfo) == code
    assert ecs.list_clusters()["clusterArns"] == []


def test_update_cluster_and_settings(ecs: Any) -> None:
    ecs.create_cluster(clusterName="u")
    updated = ecs.update_cluster_settings(
        cluster="u", settings=[{"name": "containerInsights", "value": "enabled"}]
    )["cluster"]
    assert updated["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    configuration = {"executeCommandConfiguration": {"logging": "DEFAULT"}}
    ecs.update_cluster(
        cluster="u",
        configuration=configuration,
        serviceConnectDefaults={"namespace": "arn:aws:servicediscovery:eu-west-1:0:ns/x"},
    )
    described = ecs.describe_clusters(clusters=["u"], include=["CONFIGURATIONS", "SETTINGS"])
    cluster = described["clusters"][0]
    assert cluster["configuration"] == configuration
    assert cluster["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    assert cluster["serviceConnectDefaults"]["namespace"].endswith("ns/x")
    with pytest.raises(ClientError) as excinfo:
        ecs.update_cluster_settings(
            cluster="u", settings=[{"name": "containerInsights", "value": "sometimes"}]
        )
    assert error_code(excinfo) == "InvalidParameterException"
    with pytest.raises(ClientError) as excinfo:
        ecs.update_cluster(cluster="nope", settings=[])
    assert error_code(excinfo) == "ClusterNotFoundException"


def test_capacity_providers(ecs: Any) -> None:
    ecs.create_cluster(clusterName="cp")
    result = ecs.put_cluster_capacity_providers(
        cluster="cp",
        capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[
            {"capacityProvider": "FARGATE", "weight": 1, "base": 1},
            {"capacityProvider": "FARGATE_SPOT", "weight": 4},
        ],
    )["cluster"]
    assert result["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    assert result["defaultCapacityProviderStrategy"][1]["weight"] == 4
    names = [p["name"] for p in ecs.describe_capacity_providers()["capacityProviders"]]
    assert names == ["FARGATE", "FARGATE_SPOT"]

    cases = [
        (["NOPE"], []),
        (["FARGATE"], [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]),
    ]
    for providers, strategy in cases:
        with pytest.raises(ClientError) as excinfo:
            ecs.put_cluster_capacity_providers(
                cluster="cp", capacityProviders=providers, defaultCapacityProviderStrategy=strategy
            )
        assert error_code(excinfo) == "InvalidParameterException"
    unchanged = ecs.describe_clusters(clusters=["cp"])["clusters"][0]
    assert unchanged["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]


def test_aws_cli_create_describe_delete(server: LiveServer, ecs: Any) -> None:
    created = server.aws("ecs", "create-cluster", "--cluster-name", "MyCluster")
    assert created.returncode == 0, created.stderr
    arn = json.loads(created.stdout)["cluster"]["clusterArn"]
    assert arn == ARN + "MyCluster"
    listed = json.loads(server.aws("ecs", "list-clusters").stdout)
    assert listed["clusterArns"] == [arn]
    deleted = server.aws("ecs", "delete-cluster", "--cluster", "MyCluster")
    assert json.loads(deleted.stdout)["cluster"]["status"] == "INACTIVE"
    missing = server.aws("ecs", "delete-cluster", "--cluster", "MyCluster")
    assert missing.returncode != 0
    assert "ClusterNotFoundException" in missing.stderr
