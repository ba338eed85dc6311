"""Services through boto3 and the AWS CLI: what CreateService, UpdateService,
DeleteService, DescribeServices and ListServices store and answer, and every refusal
with its ECS error type, its message, and nothing stored.

The server's reconciler loop runs: with instances registered by hand (no agent) it
places the service's tasks PENDING; the tests report them RUNNING or STOPPED as an
agent would. Without instances it can place nothing, so the service stays as written.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.live import REGION, LiveServer

ACCOUNT = "000000000000"
SERVICE_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/work/web"
TASK_DEFINITION = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web"
DEPLOYMENT_ID = re.compile(r"ecs-svc/\d{19}")


def refused(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


def definition(ecs: Any, family: str = "web", image: str = "busybox", **extra: Any) -> str:
    container = {"name": "app", "image": image, "cpu": 128, "memory": 256}
    registered = ecs.register_task_definition(
        family=family, containerDefinitions=[container], **extra
    )
    return str(registered["taskDefinition"]["taskDefinitionArn"])


def register_instance(ecs: Any, zone: str = "a") -> str:
    instance = ecs.register_container_instance(
        cluster="work",
        totalResources=[
            {"name": "CPU", "type": "INTEGER", "integerValue": 4096},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": 8192},
        ],
        attributes=[{"name": "ecs.availability-zone", "value": f"{REGION}{zone}"}],
    )["containerInstance"]
    return str(instance["containerInstanceArn"])


def create(ecs: Any, name: str = "web", **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"cluster": "work", "serviceName": name, "taskDefinition": "web"}
    if extra.get("schedulingStrategy") != "DAEMON":
        params["desiredCount"] = 2
    params.update(extra)
    return dict(ecs.create_service(**params)["service"])


def eventually(check: Any, seconds: float = 15.0) -> Any:
    """Poll ``check`` until it returns something truthy: the loop acts on its own time."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, "the service loop did not get there in time"
            return result
        time.sleep(0.2)


def described(ecs: Any, name: str = "web") -> dict[str, Any]:
    return dict(ecs.describe_services(cluster="work", services=[name])["services"][0])


def stored(ecs: Any) -> Any:
    """Everything a refused call could have changed."""
    listed = ecs.list_services(cluster="work")["serviceArns"]
    described = ecs.describe_services(cluster="work", services=["web"], include=["TAGS"])
    for service in described["services"]:
        for volatile in ("events",):
            service.pop(volatile)
    return listed, described["services"], described["failures"]


@pytest.fixture
def work(ecs: Any) -> Any:
    ecs.create_cluster(clusterName="work")
    definition(ecs)
    return ecs


# CreateService


def test_create_service_stores_the_service_and_its_first_deployment(work: Any) -> None:
    service = create(
        work,
        tags=[{"key": "team", "value": "web"}],
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
        healthCheckGracePeriodSeconds=30,
        propagateTags="SERVICE",
        enableECSManagedTags=True,
        placementConstraints=[{"type": "distinctInstance"}],
        placementStrategy=[{"type": "binpack", "field": "memory"}],
    )
    assert service["serviceArn"] == SERVICE_ARN
    assert (service["serviceName"], service["status"]) == ("web", "ACTIVE")
    assert service["clusterArn"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/work"
    assert service["taskDefinition"] == f"{TASK_DEFINITION}:1"
    assert (service["desiredCount"], service["runningCount"], service["pendingCount"]) == (2, 0, 0)
    assert service["launchType"] == "EC2"
    assert service["schedulingStrategy"] == "REPLICA"
    assert service["deploymentController"] == {"type": "ECS"}
    assert service["deploymentConfiguration"] == {
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
    }
    assert service["placementConstraints"] == [{"type": "distinctInstance"}]
    assert service["placementStrategy"] == [{"type": "binpack", "field": "memory"}]
    assert service["healthCheckGracePeriodSeconds"] == 30
    assert (service["propagateTags"], service["enableECSManagedTags"]) == ("SERVICE", True)
    assert service["enableExecuteCommand"] is False
    assert service["createdBy"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert service["events"] == []
    assert service["tags"] == [{"key": "team", "value": "web"}]
    [deployment] = service["deployments"]
    assert DEPLOYMENT_ID.fullmatch(deployment["id"])
    assert deployment["status"] == "PRIMARY"
    assert deployment["taskDefinition"] == f"{TASK_DEFINITION}:1"
    assert (deployment["desiredCount"], deployment["runningCount"]) == (2, 0)
    assert (deployment["pendingCount"], deployment["failedTasks"]) == (0, 0)
    assert deployment["rolloutState"] == "IN_PROGRESS"
    assert deployment["rolloutStateReason"] == f"ECS deployment {deployment['id']} in progress."
    assert deployment["launchType"] == "EC2"
    digits = deployment["id"].removeprefix("ecs-svc/")
    assert service["currentServiceDeployment"] == (
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/work/web/{digits}"
    )

    described = work.describe_services(cluster="work", services=[SERVICE_ARN], include=["TAGS"])
    assert described["failures"] == []
    assert described["services"][0]["tags"] == [{"key": "team", "value": "web"}]
    assert work.list_tags_for_resource(resourceArn=SERVICE_ARN)["tags"] == service["tags"]
    cluster = work.describe_clusters(clusters=["work"])["clusters"][0]
    assert cluster["activeServicesCount"] == 1


def test_the_task_definition_is_found_by_family_revision_or_arn(work: Any) -> None:
    second = definition(work)
    assert create(work, "latest")["taskDefinition"] == second
    assert create(work, "pinned", taskDefinition="web:1")["taskDefinition"].endswith(":1")
    assert create(work, "by-arn", taskDefinition=second)["taskDefinition"] == second
    with pytest.raises(ClientError) as missing:
        create(work, "nope", taskDefinition="nothing:3")
    assert refused(missing) == ("ClientException", "TaskDefinition not found.")
    work.deregister_task_definition(taskDefinition="web:1")
    with pytest.raises(ClientError) as inactive:
        create(work, "old", taskDefinition="web:1")
    code, message = refused(inactive)
    assert code == "InvalidParameterException"
    assert message.startswith("TaskDefinition is inactive")


CREATE_REFUSALS = [
    ("name", {"serviceName": "web app"}, "InvalidParameterException", "Service name must be"),
    ("cluster", {"cluster": "nowhere"}, "ClusterNotFoundException", "Cluster not found."),
    ("no count", {"desiredCount": None}, "InvalidParameterException", "desiredCount is required"),
    ("negative", {"desiredCount": -1}, "InvalidParameterException", "desiredCount must be 0"),
    (
        "daemon count",
        {"schedulingStrategy": "DAEMON", "desiredCount": 1},
        "InvalidParameterException",
        "The daemon scheduling strategy does not support a desired count for services.",
    ),
    (
        "daemon strategy",
        {
            "schedulingStrategy": "DAEMON",
            "desiredCount": None,
            "placementStrategy": [{"type": "random"}],
        },
        "InvalidParameterException",
        "The daemon scheduling strategy does not support placement strategies.",
    ),
    (
        "daemon maximum",
        {
            "schedulingStrategy": "DAEMON",
            "desiredCount": None,
            "deploymentConfiguration": {"maximumPercent": 200},
        },
        "InvalidParameterException",
        "deploymentConfiguration.maximumPercent must be 100 for a service with the DAEMON",
    ),
    (
        "minimum",
        {"deploymentConfiguration": {"minimumHealthyPercent": 120}},
        "InvalidParameterException",
        "deploymentConfiguration.minimumHealthyPercent must be between 0 and 100",
    ),
    (
        "maximum",
        {"deploymentConfiguration": {"maximumPercent": 90}},
        "InvalidParameterException",
        "deploymentConfiguration.maximumPercent must be at least 100",
    ),
    (
        "fargate",
        {"launchType": "FARGATE"},
        "InvalidParameterException",
        "launchType FARGATE is not supported yet",
    ),
    (
        "capacity providers",
        {"capacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1}]},
        "InvalidParameterException",
        "capacityProviderStrategy is not supported yet; use launchType EC2 or EXTERNAL.",
    ),
    (
        "platform version",
        {"platformVersion": "LATEST"},
        "InvalidParameterException",
        "The platform version must be null when specifying an EC2 launch type.",
    ),
    (
        "constraints",
        {"placementConstraints": [{"type": "distinctInstance"}] * 11},
        "InvalidParameterException",
        "placementConstraints: 11 constraints given; the limit is 10",
    ),
    (
        "strategies",
        {"placementStrategy": [{"type": "random"}] * 6},
        "InvalidParameterException",
        "placementStrategy: 6 strategies given; the limit is 5",
    ),
    (
        "memberOf",
        {"placementConstraints": [{"type": "memberOf", "expression": "attribute:x =="}]},
        "InvalidParameterException",
        "placementConstraints[0].expression:",
    ),
    (
        "grace",
        {"healthCheckGracePeriodSeconds": -1},
        "InvalidParameterException",
        "healthCheckGracePeriodSeconds must be between 0 and 2147483647",
    ),
    (
        "load balancers",
        {
            "loadBalancers": [
                {"targetGroupArn": "arn:aws:elasticloadbalancing:x", "containerPort": 80}
            ]
        },
        "InvalidParameterException",
        "loadBalancers is not supported yet",
    ),
    (
        "controller",
        {"deploymentController": {"type": "CODE_DEPLOY"}},
        "InvalidParameterException",
        "deploymentController CODE_DEPLOY is not supported yet",
    ),
    (
        "network",
        {"networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"]}}},
        "InvalidParameterException",
        "Network Configuration is not valid for the given networkMode",
    ),
]


@pytest.mark.parametrize(
    ("given", "code", "message"),
    [case[1:] for case in CREATE_REFUSALS],
    ids=[case[0] for case in CREATE_REFUSALS],
)
def test_create_service_refusals_store_nothing(
    work: Any, given: dict[str, Any], code: str, message: str
) -> None:
    before = stored(work)
    params: dict[str, Any] = {
        "cluster": "work",
        "serviceName": "web",
        "taskDefinition": "web",
        "desiredCount": 2,
        **given,
    }
    with pytest.raises(ClientError) as excinfo:
        work.create_service(**{k: v for k, v in params.items() if v is not None})
    got_code, got_message = refused(excinfo)
    assert got_code == code
    assert message in got_message
    assert stored(work) == before
    assert work.describe_clusters(clusters=["work"])["clusters"][0]["activeServicesCount"] == 0


def test_malformed_member_of_names_the_position(work: Any) -> None:
    bad = [{"type": "memberOf", "expression": "attribute:ecs.instance-type =~ "}]
    with pytest.raises(ClientError) as excinfo:
        create(work, placementConstraints=bad)
    assert "at position" in refused(excinfo)[1]


def test_awsvpc_needs_a_network_configuration(work: Any) -> None:
    definition(work, "vpc", networkMode="awsvpc")
    with pytest.raises(ClientError) as excinfo:
        create(work, "vpc", taskDefinition="vpc")
    assert refused(excinfo) == (
        "InvalidParameterException",
        "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
    )
    network = {"awsvpcConfiguration": {"subnets": ["subnet-1"], "assignPublicIp": "DISABLED"}}
    service = create(work, "vpc", taskDefinition="vpc", networkConfiguration=network)
    assert service["networkConfiguration"] == network
    assert service["deployments"][0]["networkConfiguration"] == network


def test_create_service_is_idempotent_on_the_same_parameters(work: Any) -> None:
    first = create(work, clientToken="token-1")
    again = create(work, clientToken="token-1")
    assert [d["id"] for d in again["deployments"]] == [d["id"] for d in first["deployments"]]
    assert again["createdAt"] == first["createdAt"]
    before = stored(work)
    with pytest.raises(ClientError) as excinfo:
        create(work, desiredCount=3, clientToken="token-2")
    code, message = refused(excinfo)
    assert code == "InvalidParameterException"
    assert message.startswith("Creation of service was not idempotent.")
    assert stored(work) == before


def test_a_daemon_service_has_the_daemon_defaults(work: Any) -> None:
    service = create(work, "agent", schedulingStrategy="DAEMON")
    assert service["schedulingStrategy"] == "DAEMON"
    assert service["desiredCount"] == 0
    assert service["deploymentConfiguration"]["maximumPercent"] == 100
    assert service["deploymentConfiguration"]["minimumHealthyPercent"] == 0
    with pytest.raises(ClientError) as excinfo:
        work.update_service(cluster="work", service="agent", desiredCount=3)
    assert refused(excinfo)[1].startswith(
        "The daemon scheduling strategy does not support a desired count"
    )


def test_counts_come_from_the_deployments_tasks(work: Any) -> None:
    register_instance(work)
    create(work)
    eventually(lambda: described(work)["pendingCount"] == 2)
    # A standalone task of the same group is not the service's.
    work.run_task(cluster="work", taskDefinition="web", group="service:web")
    service = described(work)
    assert (service["pendingCount"], service["runningCount"]) == (2, 0)
    assert service["deployments"][0]["pendingCount"] == 2
    [task, _] = work.list_tasks(cluster="work", startedBy=service["deployments"][0]["id"])[
        "taskArns"
    ]
    work.submit_task_state_change(cluster="work", task=task, status="RUNNING")
    service = eventually(lambda: (s := described(work))["runningCount"] == 1 and s)
    assert (service["pendingCount"], service["deployments"][0]["runningCount"]) == (1, 1)


# DescribeServices and ListServices


def test_describe_reports_missing_services(work: Any) -> None:
    create(work)
    other = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/elsewhere/web"
    described = work.describe_services(cluster="work", services=["web", "ghost", other])
    assert [s["serviceName"] for s in described["services"]] == ["web"]
    assert described["failures"] == [
        {"arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/work/ghost", "reason": "MISSING"},
        {"arn": other, "reason": "MISSING"},
    ]
    with pytest.raises(ClientError) as excinfo:
        work.describe_services(cluster="work", services=[f"s{i}" for i in range(11)])
    assert refused(excinfo)[0] == "InvalidParameterException"


def test_list_services_pages_and_filters(work: Any) -> None:
    names = ["a", "b", "c", "d"]
    for name in names:
        create(work, name)
    create(work, "edge", launchType="EXTERNAL")
    create(work, "daemon", schedulingStrategy="DAEMON")
    seen, token = [], None
    while True:
        page = work.list_services(
            cluster="work", maxResults=2, **({"nextToken": token} if token else {})
        )
        assert len(page["serviceArns"]) <= 2
        seen += page["serviceArns"]
        token = page.get("nextToken")
        if not token:
            break
    assert sorted(arn.rsplit("/", 1)[1] for arn in seen) == sorted([*names, "edge", "daemon"])
    external = work.list_services(cluster="work", launchType="EXTERNAL")["serviceArns"]
    assert [arn.rsplit("/", 1)[1] for arn in external] == ["edge"]
    daemons = work.list_services(cluster="work", schedulingStrategy="DAEMON")["serviceArns"]
    assert [arn.rsplit("/", 1)[1] for arn in daemons] == ["daemon"]
    assert len(work.list_services(cluster="work")["serviceArns"]) == 6
    for bad in ({"maxResults": 101}, {"nextToken": "nonsense"}):
        with pytest.raises(ClientError) as excinfo:
            work.list_services(cluster="work", **bad)
        assert refused(excinfo)[0] == "InvalidParameterException"


def test_services_are_tagged_by_arn(work: Any) -> None:
    create(work)
    work.tag_resource(resourceArn=SERVICE_ARN, tags=[{"key": "a", "value": "1"}])
    work.tag_resource(resourceArn=SERVICE_ARN, tags=[{"key": "b", "value": "2"}])
    work.untag_resource(resourceArn=SERVICE_ARN, tagKeys=["a"])
    assert work.list_tags_for_resource(resourceArn=SERVICE_ARN)["tags"] == [
        {"key": "b", "value": "2"}
    ]
    with pytest.raises(ClientError) as excinfo:
        work.tag_resource(resourceArn=SERVICE_ARN.replace("/web", "/nope"), tags=[])
    assert refused(excinfo)[0] == "ResourceNotFoundException"


def test_aws_cli_creates_a_service(server: LiveServer, work: Any) -> None:
    made = server.aws(
        "ecs", "create-service", "--cluster", "work", "--service-name", "web",
        "--task-definition", "web:1", "--desired-count", "1",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    service = json.loads(made.stdout)["service"]
    assert (service["serviceArn"], service["desiredCount"]) == (SERVICE_ARN, 1)
    listed = server.aws("ecs", "list-services", "--cluster", "work")
    assert json.loads(listed.stdout)["serviceArns"] == [SERVICE_ARN]
