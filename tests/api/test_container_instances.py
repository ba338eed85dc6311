"""Container instances: an agent registers, users describe, list and deregister."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.live import REGION, LiveServer

ARN = re.compile(
    rf"arn:aws:ecs:{REGION}:000000000000:container-instance/(?P<cluster>[\w-]+)/(?P<id>[0-9a-f]{{32}})"
)

IDENTITY = {
    "instanceId": "i-0abc1234def567890",
    "availabilityZone": "eu-west-1a",
    "instanceType": "m5.large",
    "imageId": "ami-0123",
    "region": REGION,
}
RESOURCES = [
    {"name": "CPU", "type": "INTEGER", "integerValue": 2048},
    {"name": "MEMORY", "type": "INTEGER", "integerValue": 7680},
    {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22", "2375", "51678"]},
    {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []},
]
AGENT_ATTRIBUTES = [
    {"name": "ecs.os-type", "value": "linux"},
    {"name": "com.amazonaws.ecs.capability.docker-remote-api.1.44"},
]


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def register(ecs: Any, cluster: str = "hosts", **params: Any) -> dict[str, Any]:
    """Register as the agent does: identity document, resources, version, capabilities."""
    request: dict[str, Any] = {
        "cluster": cluster,
        "instanceIdentityDocument": json.dumps(IDENTITY),
        "totalResources": RESOURCES,
        "versionInfo": {"agentVersion": "1.80.0", "dockerVersion": "24.0.7"},
        "attributes": AGENT_ATTRIBUTES,
    }
    request.update(params)
    return dict(ecs.register_container_instance(**request)["containerInstance"])


def attributes(instance: dict[str, Any]) -> dict[str, str | None]:
    return {a["name"]: a.get("value") for a in instance["attributes"]}


def instance_count(ecs: Any, cluster: str = "hosts") -> int:
    described = ecs.describe_clusters(clusters=[cluster])["clusters"][0]
    return int(described["registeredContainerInstancesCount"])


def listed(ecs: Any, cluster: str = "hosts", **params: Any) -> list[str]:
    return list(ecs.list_container_instances(cluster=cluster, **params)["containerInstanceArns"])


def test_register_describe_list_deregister_story(ecs: Any) -> None:
    ecs.create_cluster(clusterName="hosts")
    instance = register(ecs, tags=[{"key": "rack", "value": "r1"}])
    match = ARN.fullmatch(instance["containerInstanceArn"])
    assert match and match["cluster"] == "hosts"
    assert instance["ec2InstanceId"] == IDENTITY["instanceId"]
    assert instance["status"] == "ACTIVE"
    assert instance["agentConnected"] is True
    assert instance["version"] == 1
    assert instance["versionInfo"] == {"agentVersion": "1.80.0", "dockerVersion": "24.0.7"}
    assert instance["registeredResources"] == instance["remainingResources"]
    cpu = instance["registeredResources"][0]
    assert (cpu["name"], cpu["type"], cpu["integerValue"]) == ("CPU", "INTEGER", 2048)
    ports = instance["registeredResources"][2]
    assert ports["stringSetValue"] == ["22", "2375", "51678"]
    assert attributes(instance) == {
        "ecs.os-type": "linux",
        "com.amazonaws.ecs.capability.docker-remote-api.1.44": None,
        # What the identity document says becomes built-in attributes.
        "ecs.availability-zone": "eu-west-1a",
        "ecs.instance-type": "m5.large",
        "ecs.ami-id": "ami-0123",
    }
    assert instance["tags"] == [{"key": "rack", "value": "r1"}]
    assert instance_count(ecs) == 1

    arn = instance["containerInstanceArn"]
    assert listed(ecs) == [arn]
    described = ecs.describe_container_instances(
        cluster="hosts",
        containerInstances=[match["id"], arn, "0" * 32],
        include=["TAGS", "CONTAINER_INSTANCE_HEALTH"],
    )
    assert [i["containerInstanceArn"] for i in described["containerInstances"]] == [arn, arn]
    first = described["containerInstances"][0]
    assert first["tags"] == [{"key": "rack", "value": "r1"}]
    assert first["healthStatus"]["overallStatus"] == "INSUFFICIENT_DATA"
    assert described["failures"] == [
        {"arn": arn.replace(match["id"], "0" * 32), "reason": "MISSING"}
    ]
    plain = ecs.describe_container_instances(cluster="hosts", containerInstances=[arn])
    assert "tags" not in plain["containerInstances"][0]
    assert "healthStatus" not in plain["containerInstances"][0]

    gone = ecs.deregister_container_instance(cluster="hosts", containerInstance=match["id"])
    assert gone["containerInstance"]["status"] == "INACTIVE"
    assert instance_count(ecs) == 0
    assert listed(ecs) == []
    # Deregistered instances stay describable, without their attributes.
    again = ecs.describe_container_instances(cluster="hosts", containerInstances=[arn])
    assert [i["status"] for i in again["containerInstances"]] == ["INACTIVE"]
    assert again["containerInstances"][0]["attributes"] == []
    listing = ecs.list_attributes(cluster="hosts", targetType="container-instance")
    assert listing["attributes"] == []


def test_without_identity_document_an_instance_id_is_made_up(ecs: Any) -> None:
    ecs.create_cluster()
    instance = ecs.register_container_instance()["containerInstance"]
    assert re.fullmatch(r"i-[0-9a-f]{17}", instance["ec2InstanceId"])
    match = ARN.fullmatch(instance["containerInstanceArn"])
    assert match and match["cluster"] == "default"
    # The four standard resources are always reported, zero when not given.
    names = [r["name"] for r in instance["registeredResources"]]
    assert names == ["CPU", "MEMORY", "PORTS", "PORTS_UDP"]
    assert instance["registeredResources"][0]["integerValue"] == 0


def test_re_registration_keeps_the_arn_and_custom_attributes(ecs: Any) -> None:
    ecs.create_cluster(clusterName="hosts")
    first = register(ecs)
    arn = first["containerInstanceArn"]
    ecs.put_attributes(
        cluster="hosts", attributes=[{"name": "stack", "value": "prod", "targetId": arn}]
    )

    upgraded = [{"name": "ecs.os-type", "value": "linux"}, {"name": "ecs.capability.new"}]
    second = register(
        ecs,
        containerInstanceArn=arn,
        attributes=upgraded,
        versionInfo={"agentVersion": "1.81.0"},
        instanceIdentityDocument="",
    )
    assert second["containerInstanceArn"] == arn
    assert second["version"] == 2
    assert second["registeredAt"] == first["registeredAt"]
    assert second["ec2InstanceId"] == first["ec2InstanceId"]
    assert second["versionInfo"] == {"agentVersion": "1.81.0"}
    # Built-in attributes follow the agent; the custom one put in between stays.
    assert attributes(second) == {
        "ecs.os-type": "linux",
        "ecs.capability.new": None,
        "stack": "prod",
    }
    assert listed(ecs) == [arn]
    assert instance_count(ecs) == 1


def test_re_registration_refusals(ecs: Any) -> None:
    ecs.create_cluster(clusterName="hosts")
    ecs.create_cluster(clusterName="other")
    elsewhere = register(ecs, cluster="other")["containerInstanceArn"]
    retired = register(ecs)["containerInstanceArn"]
    ecs.deregister_container_instance(cluster="hosts", containerInstance=retired)
    cases = [
        (retired, "ClientException"),  # deregistering is final
        (elsewhere, "InvalidParameterException"),  # an instance of another cluster
        ("arn:aws:ecs:eu-west-1:000000000000:cluster/hosts", "InvalidParameterException"),
    ]
    for reference, code in cases:
        with pytest.raises(ClientError) as excinfo:
            register(ecs, containerInstanceArn=reference)
        assert error_code(excinfo) == code, reference
    assert listed(ecs) == []
    assert listed(ecs, "other") == [elsewhere]


def custom(count: int) -> list[dict[str, str]]:
    return [{"name": f"custom-{i}", "value": "x"} for i in range(count)]


BAD_REGISTRATIONS = [
    ("identity-not-json", {"instanceIdentityDocument": "{nope"}, "InvalidParameterException"),
    ("identity-not-object", {"instanceIdentityDocument": "[1]"}, "InvalidParameterException"),
    (
        "cpu-as-stringset",
        {"totalResources": [{"name": "CPU", "type": "STRINGSET", "stringSetValue": ["1"]}]},
        "InvalidParameterException",
    ),
    (
        "unknown-type",
        {"totalResources": [{"name": "GPU", "type": "FLOAT"}]},
        "InvalidParameterException",
    ),
    (
        "negative-memory",
        {"totalResources": [{"name": "MEMORY", "type": "INTEGER", "integerValue": -1}]},
        "InvalidParameterException",
    ),
    (
        "duplicate-resource",
        {"totalResources": [RESOURCES[0], RESOURCES[0]]},
        "InvalidParameterException",
    ),
    (
        "port-not-a-number",
        {"totalResources": [{"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["http"]}]},
        "InvalidParameterException",
    ),
    ("attribute-name", {"attributes": [{"name": "has space"}]}, "InvalidParameterException"),
    (
        "attribute-value",
        {"attributes": [{"name": "a", "value": " x"}]},
        "InvalidParameterException",
    ),
    ("11-custom-attributes", {"attributes": custom(11)}, "InvalidParameterException"),
    ("aws-tag", {"tags": [{"key": "aws:x", "value": "y"}]}, "InvalidParameterException"),
    ("no-such-cluster", {"cluster": "ghost"}, "ClusterNotFoundException"),
]


@pytest.mark.parametrize(
    ("params", "code"), [c[1:] for c in BAD_REGISTRATIONS], ids=[c[0] for c in BAD_REGISTRATIONS]
)
def test_bad_registrations_register_nothing(ecs: Any, params: dict[str, Any], code: str) -> None:
    ecs.create_cluster(clusterName="hosts")
    with pytest.raises(ClientError) as excinfo:
        register(ecs, **params)
    assert error_code(excinfo) == code
    assert listed(ecs) == []
    assert instance_count(ecs) == 0
    assert ecs.list_attributes(cluster="hosts", targetType="container-instance")["attributes"] == []


def test_ten_custom_attributes_and_any_number_of_built_in_ones(ecs: Any) -> None:
    ecs.create_cluster(clusterName="hosts")
    built_in = [{"name": f"ecs.capability.c{i}"} for i in range(20)]
    instance = register(ecs, attributes=custom(10) + built_in)
    assert len(instance["attributes"]) == 30 + 3  # and three from the identity document


def test_deregister_refusals_change_nothing(ecs: Any) -> None:
    ecs.create_cluster(clusterName="hosts")
    ecs.create_cluster(clusterName="other")
    arn = register(ecs)["containerInstanceArn"]
    cases = [
        ("hosts", "0" * 32, "InvalidParameterException"),
        ("other", arn, "InvalidParameterException"),  # not an instance of that cluster
        ("ghost", arn, "ClusterNotFoundException"),
    ]
    for cluster, reference, code in cases:
        with pytest.raises(ClientError) as excinfo:
            ecs.deregister_container_instance(cluster=cluster, containerInstance=reference)
        assert error_code(excinfo) == code, (cluster, reference)
    assert listed(ecs) == [arn]
    ecs.deregister_container_instance(cluster="hosts", containerInstance=arn, force=True)
    with pytest.raises(ClientError) as excinfo:
        ecs.deregister_container_instance(cluster="hosts", containerInstance=arn)
    assert error_code(excinfo) == "InvalidParameterException"


def test_delete_cluster_waits_for_its_instances(ecs: Any) -> None:
    ecs.create_cluster(clusterName="hosts")
    arn = register(ecs)["containerInstanceArn"]
    with pytest.raises(ClientError) as excinfo:
        ecs.delete_cluster(cluster="hosts")
    assert error_code(excinfo) == "ClusterContainsContainerInstancesException"
    assert ecs.describe_clusters(clusters=["hosts"])["clusters"][0]["status"] == "ACTIVE"
    assert listed(ecs) == [arn]

    ecs.deregister_container_instance(cluster="hosts", containerInstance=arn)
    assert ecs.delete_cluster(cluster="hosts")["cluster"]["status"] == "INACTIVE"


def test_list_pages_and_filters(ecs: Any) -> None:
    ecs.create_cluster(clusterName="hosts")
    arns = sorted(register(ecs)["containerInstanceArn"] for _ in range(5))
    seen: list[str] = []
    token: dict[str, str] = {}
    while True:
        page = ecs.list_container_instances(cluster="hosts", maxResults=2, **token)
        assert len(page["containerInstanceArns"]) <= 2
        seen += page["containerInstanceArns"]
        if "nextToken" not in page:
            break
        token = {"nextToken": page["nextToken"]}
    assert seen == arns
    assert listed(ecs, status="ACTIVE") == arns
    assert listed(ecs, status="DRAINING") == []
    paginator = ecs.get_paginator("list_container_instances")
    pages = paginator.paginate(cluster="hosts", PaginationConfig={"PageSize": 3})
    assert sum(len(p["containerInstanceArns"]) for p in pages) == 5

    refused: list[tuple[dict[str, Any], str]] = [
        ({"filter": "attribute:ecs.os-type = linux"}, "InvalidParameterException"),
        ({"maxResults": 101}, "InvalidParameterException"),
        ({"nextToken": "forged"}, "InvalidParameterException"),
        ({"cluster": "ghost"}, "ClusterNotFoundException"),
    ]
    for params, code in refused:
        with pytest.raises(ClientError) as excinfo:
            ecs.list_container_instances(**{"cluster": "hosts", **params})
        assert error_code(excinfo) == code, params


def test_aws_cli_register_list_describe_deregister(server: LiveServer, ecs: Any) -> None:
    ecs.create_cluster(clusterName="hosts")
    registered = server.aws(
        "ecs",
        "register-container-instance",
        "--cluster",
        "hosts",
        "--total-resources",
        "name=CPU,type=INTEGER,integerValue=1024",
        "name=MEMORY,type=INTEGER,integerValue=2048",
    )
    assert registered.returncode == 0, registered.stderr
    arn = json.loads(registered.stdout)["containerInstance"]["containerInstanceArn"]
    listing = server.aws("ecs", "list-container-instances", "--cluster", "hosts")
    assert json.loads(listing.stdout)["containerInstanceArns"] == [arn]
    described = server.aws(
        "ecs", "describe-container-instances", "--cluster", "hosts", "--container-instances", arn
    )
    instance = json.loads(described.stdout)["containerInstances"][0]
    assert instance["registeredResources"][1]["integerValue"] == 2048
    gone = server.aws(
        "ecs", "deregister-container-instance", "--cluster", "hosts", "--container-instance", arn
    )
    assert json.loads(gone.stdout)["containerInstance"]["status"] == "INACTIVE"
    bad = server.aws("ecs", "list-container-instances", "--cluster", "hosts", "--filter", "x")
    assert bad.returncode != 0
    assert "InvalidParameterException" in bad.stderr
