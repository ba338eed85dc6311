"""ListContainerInstances ``filter``: the cluster query language through boto3 and the CLI.

Three instances registered through the public API, as a user without an agent would:

    alpha  t3.micro  eu-west-1a  agent 1.80.0  stack=prod
    bravo  m5.large  eu-west-1b  agent 1.14.0
    charlie t3.micro eu-west-1c  agent 1.9.0
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.live import LiveServer

HOSTS = {
    "alpha": ("t3.micro", "eu-west-1a", "1.80.0", {"stack": "prod"}),
    "bravo": ("m5.large", "eu-west-1b", "1.14.0", {}),
    "charlie": ("t3.micro", "eu-west-1c", "1.9.0", {}),
}
ISSUE_EXAMPLE = (
    "attribute:ecs.instance-type =~ t3.* and "
    "attribute:ecs.availability-zone in [eu-west-1a, eu-west-1b]"
)


def register(ecs: Any, name: str, cluster: str = "hosts") -> str:
    instance_type, zone, agent_version, custom = HOSTS[name]
    attributes = {"ecs.instance-type": instance_type, "ecs.availability-zone": zone, **custom}
    response = ecs.register_container_instance(
        cluster=cluster,
        instanceIdentityDocument=json.dumps({"instanceId": f"i-{name}", "region": "eu-west-1"}),
        totalResources=[
            {"name": "CPU", "type": "INTEGER", "integerValue": 2048},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": 4096},
        ],
        versionInfo={"agentVersion": agent_version},
        attributes=[{"name": k, "value": v} for k, v in attributes.items()],
    )
    return str(response["containerInstance"]["containerInstanceArn"])


@pytest.fixture
def hosts(ecs: Any) -> dict[str, str]:
    """The three instances, by name -> ARN."""
    ecs.create_cluster(clusterName="hosts")
    return {name: register(ecs, name) for name in HOSTS}


def selected(ecs: Any, hosts: dict[str, str], expression: str, **params: Any) -> set[str]:
    response = ecs.list_container_instances(cluster="hosts", filter=expression, **params)
    by_arn = {arn: name for name, arn in hosts.items()}
    return {by_arn[arn] for arn in response["containerInstanceArns"]}


FILTERS = [
    (ISSUE_EXAMPLE, {"alpha"}),
    ("attribute:ecs.instance-type == m5.large", {"bravo"}),
    ("attribute:ecs.instance-type equals 't3.micro'", {"alpha", "charlie"}),
    ("attribute:ecs.availability-zone in [eu-west-1b, eu-west-1c]", {"bravo", "charlie"}),
    ("attribute:ecs.availability-zone not_in [eu-west-1b]", {"alpha", "charlie"}),
    ("not (attribute:ecs.instance-type =~ t3.*)", {"bravo"}),
    ("attribute:ecs.instance-type !~ t3.* || attribute:stack == prod", {"alpha", "bravo"}),
    ("attribute:stack exists", {"alpha"}),
    ("attribute:stack !exists", {"bravo", "charlie"}),
    ("attribute:stack != prod", {"bravo", "charlie"}),  # a missing attribute is not prod
    ("agentVersion < 1.14.5", {"bravo", "charlie"}),
    ("agentVersion >= 1.80", {"alpha"}),
    ("ec2InstanceId in ['i-alpha', 'i-charlie']", {"alpha", "charlie"}),
    ("ec2InstanceId =~ 'i-b.*'", {"bravo"}),
    ("agentConnected == true", {"alpha", "bravo", "charlie"}),  # no agent to lose
    ("runningTasksCount == 0", {"alpha", "bravo", "charlie"}),
    ("registeredAt > 2018-02-13", {"alpha", "bravo", "charlie"}),
    ("registeredAt < 2018-02-13T00:00:00Z", set()),
    ("task:group exists", set()),
    ("not task:group == database", {"alpha", "bravo", "charlie"}),
]


@pytest.mark.parametrize(("expression", "names"), FILTERS, ids=[f[0][:60] for f in FILTERS])
def test_filter_selects_the_instances_the_expression_describes(
    ecs: Any, hosts: dict[str, str], expression: str, names: set[str]
) -> None:
    assert selected(ecs, hosts, expression) == names


def test_filter_with_status_and_pages(ecs: Any, hosts: dict[str, str]) -> None:
    """Pages hold matches only: every page but the last is full, none is empty."""
    names = {arn: name for name, arn in hosts.items()}
    names |= {register(ecs, n): n for n in ("alpha", "bravo", "charlie", "alpha", "bravo")}
    t3 = sorted(arn for arn, name in names.items() if name != "bravo")
    expression = "attribute:ecs.instance-type =~ t3.*"
    seen: list[str] = []
    token: dict[str, str] = {}
    while True:
        page = ecs.list_container_instances(
            cluster="hosts", filter=expression, maxResults=2, **token
        )
        seen += page["containerInstanceArns"]
        if "nextToken" not in page:
            assert 1 <= len(page["containerInstanceArns"]) <= 2
            break
        assert len(page["containerInstanceArns"]) == 2
        token = {"nextToken": page["nextToken"]}
    assert seen == t3
    paginator = ecs.get_paginator("list_container_instances")
    pages = paginator.paginate(cluster="hosts", filter=expression, PaginationConfig={"PageSize": 3})
    assert [arn for p in pages for arn in p["containerInstanceArns"]] == t3

    ecs.update_container_instances_state(
        cluster="hosts", containerInstances=[hosts["alpha"]], status="DRAINING"
    )
    prod = {"cluster": "hosts", "filter": "attribute:stack == prod"}
    drained = ecs.list_container_instances(**prod, status="DRAINING")["containerInstanceArns"]
    assert drained == [hosts["alpha"]]
    active = ecs.list_container_instances(**prod, status="ACTIVE")["containerInstanceArns"]
    assert active == sorted(a for a, n in names.items() if n == "alpha" and a != hosts["alpha"])


def test_malformed_filter_is_refused_with_its_position(ecs: Any, hosts: dict[str, str]) -> None:
    with pytest.raises(ClientError) as excinfo:
        ecs.list_container_instances(cluster="hosts", filter="attribute:ecs.instance-type t3.*")
    error = excinfo.value.response["Error"]
    assert error["Code"] == "InvalidParameterException"
    assert error["Message"] == (
        "Invalid filter expression at position 28: expected an operator after "
        "'attribute:ecs.instance-type', found 't3.*'"
    )
    with pytest.raises(ClientError) as excinfo:
        ecs.list_container_instances(cluster="hosts", filter="runningTasksCount in [0]")
    assert "position 18: runningTasksCount takes" in excinfo.value.response["Error"]["Message"]


def test_aws_cli_filter(server: LiveServer, ecs: Any, hosts: dict[str, str]) -> None:
    listed = server.aws(
        "ecs", "list-container-instances", "--cluster", "hosts", "--filter", ISSUE_EXAMPLE
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["containerInstanceArns"] == [hosts["alpha"]]
    bad = server.aws(
        "ecs", "list-container-instances", "--cluster", "hosts", "--filter", "task:group ="
    )
    assert bad.returncode != 0
    assert "InvalidParameterException" in bad.stderr and "position 11" in bad.stderr
