"""Attributes on container instances: the agent's built-in ones and custom ones."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.live import LiveServer

TYPE = "container-instance"


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def an_instance(ecs: Any, cluster: str = "hosts") -> str:
    """A registered instance with one agent attribute, ecs.os-type=linux."""
    registered = ecs.register_container_instance(
        cluster=cluster, attributes=[{"name": "ecs.os-type", "value": "linux"}]
    )
    return str(registered["containerInstance"]["containerInstanceArn"])


def short_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def listing(ecs: Any, cluster: str = "hosts", **filters: Any) -> list[tuple[str, str, Any]]:
    """(target ARN, name, value) for every attribute, through every page."""
    found: list[tuple[str, str, Any]] = []
    token: dict[str, str] = {}
    while True:
        page = ecs.list_attributes(cluster=cluster, targetType=TYPE, **filters, **token)
        for a in page["attributes"]:
            assert a["targetType"] == TYPE
            found.append((a["targetId"], a["name"], a.get("value")))
        if "nextToken" not in page:
            return found
        token = {"nextToken": page["nextToken"]}


def on(ecs: Any, arn: str) -> dict[str, Any]:
    """The instance's attributes as DescribeContainerInstances shows them."""
    described = ecs.describe_container_instances(cluster="hosts", containerInstances=[arn])
    return {a["name"]: a.get("value") for a in described["containerInstances"][0]["attributes"]}


@pytest.fixture
def hosts(ecs: Any) -> tuple[str, str]:
    ecs.create_cluster(clusterName="hosts")
    return an_instance(ecs), an_instance(ecs)


def test_put_list_replace_delete_story(ecs: Any, hosts: tuple[str, str]) -> None:
    web, db = hosts
    put = ecs.put_attributes(
        cluster="hosts",
        attributes=[
            {"name": "stack", "value": "prod", "targetId": web},  # by ARN
            {"name": "stack", "value": "prod", "targetType": TYPE, "targetId": short_id(db)},
            {"name": "role", "value": "db", "targetId": db},
            {"name": "gpu", "targetId": db},  # a value is optional
        ],
    )
    # The answer echoes the attributes as the request named them.
    assert put["attributes"][1] == {
        "name": "stack",
        "value": "prod",
        "targetType": TYPE,
        "targetId": short_id(db),
    }
    assert on(ecs, web) == {"ecs.os-type": "linux", "stack": "prod"}
    assert on(ecs, db) == {"ecs.os-type": "linux", "stack": "prod", "role": "db", "gpu": None}

    everything = listing(ecs)
    assert len(everything) == 6
    assert everything == sorted(everything, key=lambda a: (a[0], a[1]))
    assert {t for t, _, _ in listing(ecs, attributeName="stack")} == {web, db}
    assert listing(ecs, attributeName="role", attributeValue="db") == [(db, "role", "db")]
    assert listing(ecs, attributeName="role", attributeValue="web") == []
    assert len(listing(ecs, attributeName="ecs.os-type", attributeValue="linux")) == 2

    ecs.put_attributes(
        cluster="hosts", attributes=[{"name": "role", "value": "primary", "targetId": db}]
    )
    assert on(ecs, db)["role"] == "primary"

    deleted = ecs.delete_attributes(
        cluster="hosts",
        attributes=[{"name": "stack", "targetId": web}, {"name": "never-there", "targetId": web}],
    )
    assert deleted["attributes"][0] == {"name": "stack", "targetId": web}
    assert on(ecs, web) == {"ecs.os-type": "linux"}


def test_list_attributes_pages(ecs: Any, hosts: tuple[str, str]) -> None:
    for arn in hosts:
        names = [{"name": f"n{i}", "value": "v", "targetId": arn} for i in range(4)]
        ecs.put_attributes(cluster="hosts", attributes=names)
    pages = [ecs.list_attributes(cluster="hosts", targetType=TYPE, maxResults=3)]
    while "nextToken" in pages[-1]:
        pages.append(
            ecs.list_attributes(
                cluster="hosts", targetType=TYPE, maxResults=3, nextToken=pages[-1]["nextToken"]
            )
        )
    assert [len(p["attributes"]) for p in pages] == [3, 3, 3, 1]
    keys = [(a["targetId"], a["name"]) for p in pages for a in p["attributes"]]
    assert keys == sorted(set(keys))  # every attribute once, in target-then-name order
    assert len(keys) == 10


def test_ten_custom_attributes_per_instance(ecs: Any, hosts: tuple[str, str]) -> None:
    web, db = hosts
    ten = [{"name": f"c{i}", "value": "x", "targetId": web} for i in range(10)]
    ecs.put_attributes(cluster="hosts", attributes=ten)
    # Replacing one of the ten, and adding built-in names, stays within the limit.
    ecs.put_attributes(
        cluster="hosts",
        attributes=[
            {"name": "c0", "value": "y", "targetId": web},
            {"name": "ecs.capability.extra", "targetId": web},
        ],
    )
    before = listing(ecs)
    with pytest.raises(ClientError) as excinfo:
        ecs.put_attributes(
            cluster="hosts",
            attributes=[
                {"name": "fine", "value": "x", "targetId": db},  # would fit, but the call fails
                {"name": "c10", "value": "x", "targetId": web},
            ],
        )
    assert error_code(excinfo) == "AttributeLimitExceededException"
    assert listing(ecs) == before


def test_refused_requests_change_nothing(ecs: Any, hosts: tuple[str, str]) -> None:
    web, db = hosts
    ecs.create_cluster(clusterName="other")
    stranger = an_instance(ecs, "other")
    retired = an_instance(ecs)
    ecs.deregister_container_instance(cluster="hosts", containerInstance=retired)
    good = {"name": "ok", "value": "x", "targetId": web}
    cases = [
        ("no-such-instance", [good, {"name": "a", "targetId": web[:-4] + "0000"}], "Target"),
        ("deregistered", [good, {"name": "a", "targetId": retired}], "Target"),
        ("other-cluster", [good, {"name": "a", "targetId": stranger}], "Target"),
        ("no-target", [good, {"name": "a"}], "Invalid"),
        ("short-id-without-type", [good, {"name": "a", "targetId": short_id(db)}], "Invalid"),
        ("name-with-space", [good, {"name": "a b", "targetId": db}], "Invalid"),
        ("name-too-long", [good, {"name": "n" * 129, "targetId": db}], "Invalid"),
        ("value-bad-char", [good, {"name": "a", "value": "x#y", "targetId": db}], "Invalid"),
        ("value-trailing-space", [good, {"name": "a", "value": "x ", "targetId": db}], "Invalid"),
        ("value-too-long", [good, {"name": "a", "value": "v" * 129, "targetId": db}], "Invalid"),
        ("eleven-in-one-call", [dict(good, name=f"n{i}") for i in range(11)], "Invalid"),
    ]
    codes = {"Target": "TargetNotFoundException", "Invalid": "InvalidParameterException"}
    before = listing(ecs)
    for case, attributes, code in cases:
        for operation in (ecs.put_attributes, ecs.delete_attributes):
            with pytest.raises(ClientError) as excinfo:
                operation(cluster="hosts", attributes=attributes)
            assert error_code(excinfo) == codes[code], (case, operation)
        assert listing(ecs) == before, case
    for operation in (ecs.put_attributes, ecs.delete_attributes):
        with pytest.raises(ClientError) as excinfo:
            operation(cluster="ghost", attributes=[good])
        assert error_code(excinfo) == "ClusterNotFoundException"
    with pytest.raises(ClientError) as excinfo:
        ecs.list_attributes(cluster="hosts", targetType=TYPE, attributeValue="linux")
    assert error_code(excinfo) == "InvalidParameterException"
    assert listing(ecs) == before


def test_aws_cli_put_and_list(server: LiveServer, ecs: Any, hosts: tuple[str, str]) -> None:
    web, _ = hosts
    put = server.aws(
        "ecs",
        "put-attributes",
        "--cluster",
        "hosts",
        "--attributes",
        f"name=stack,value=production,targetId={web}",
    )
    assert put.returncode == 0, put.stderr
    assert json.loads(put.stdout)["attributes"] == [
        {"name": "stack", "value": "production", "targetId": web}
    ]
    listed = server.aws(
        "ecs",
        "list-attributes",
        "--cluster",
        "hosts",
        "--target-type",
        TYPE,
        "--attribute-name",
        "stack",
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["attributes"] == [
        {"name": "stack", "value": "production", "targetType": TYPE, "targetId": web}
    ]
