"""ECS's newer view of deployments: ListServiceDeployments, DescribeServiceDeployments
and DescribeServiceRevisions over the deployments CreateService and UpdateService
write, with their ECS statuses."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.test_services import (
    ACCOUNT,
    SERVICE_ARN,
    create,
    definition,
    described,
    eventually,
    refused,
    register_instance,
)
from tests.live import REGION

CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/work"


@pytest.fixture
def two_deployments(ecs: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """A service (no instances: nothing runs) deployed once, then to a new revision."""
    ecs.create_cluster(clusterName="work")
    definition(ecs)
    first = create(ecs)["deployments"][0]
    definition(ecs, image="busybox:1.36")
    time.sleep(0.1)  # creation times apart by more than the wire's millisecond
    updated = ecs.update_service(cluster="work", service="web", taskDefinition="web")
    second = updated["service"]["deployments"][0]
    return ecs, first, second


def arn_of(kind: str, deployment: dict[str, Any]) -> str:
    digits = deployment["id"].removeprefix("ecs-svc/")
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-{kind}/work/web/{digits}"


def test_list_is_newest_first_with_ecs_statuses(two_deployments: Any) -> None:
    ecs, first, second = two_deployments
    listed = ecs.list_service_deployments(cluster="work", service="web")["serviceDeployments"]
    assert [d["serviceDeploymentArn"] for d in listed] == [
        arn_of("deployment", second),
        arn_of("deployment", first),
    ]
    newest, oldest = listed
    assert (newest["status"], newest["statusReason"]) == (
        "IN_PROGRESS",
        f"ECS deployment {second['id']} in progress.",
    )
    assert newest["targetServiceRevisionArn"] == arn_of("revision", second)
    assert (newest["serviceArn"], newest["clusterArn"]) == (SERVICE_ARN, CLUSTER_ARN)
    assert "finishedAt" not in newest
    assert oldest["status"] == "STOPPED"  # superseded before it completed
    assert "finishedAt" in oldest

    def ids(**filters: Any) -> list[str]:
        found = ecs.list_service_deployments(cluster="work", service=SERVICE_ARN, **filters)
        return [d["serviceDeploymentArn"] for d in found["serviceDeployments"]]

    assert ids(status=["STOPPED"]) == [arn_of("deployment", first)]
    assert ids(status=["SUCCESSFUL"]) == []
    between = first["createdAt"] + (second["createdAt"] - first["createdAt"]) / 2
    assert ids(createdAt={"before": between}) == [arn_of("deployment", first)]
    assert ids(createdAt={"after": between}) == [arn_of("deployment", second)]
    page = ecs.list_service_deployments(cluster="work", service="web", maxResults=1)
    rest = ecs.list_service_deployments(
        cluster="work", service="web", maxResults=1, nextToken=page["nextToken"]
    )
    assert [
        d["serviceDeploymentArn"] for d in page["serviceDeployments"] + rest["serviceDeployments"]
    ] == [
        arn_of("deployment", second),
        arn_of("deployment", first),
    ]
    assert "nextToken" not in rest


def test_describe_deployments_by_arn(two_deployments: Any) -> None:
    ecs, first, second = two_deployments
    missing = arn_of("deployment", {"id": "ecs-svc/1234567890123456789"})
    found = ecs.describe_service_deployments(
        serviceDeploymentArns=[arn_of("deployment", second), missing, "not-an-arn"]
    )
    assert found["failures"] == [
        {"arn": missing, "reason": "MISSING"},
        {"arn": "not-an-arn", "reason": "MISSING"},
    ]
    [deployment] = found["serviceDeployments"]
    assert deployment["status"] == "IN_PROGRESS"
    assert deployment["targetServiceRevision"] == {
        "arn": arn_of("revision", second),
        "requestedTaskCount": 2,
        "runningTaskCount": 0,
        "pendingTaskCount": 0,
    }
    assert [s["arn"] for s in deployment["sourceServiceRevisions"]] == [arn_of("revision", first)]
    assert deployment["deploymentConfiguration"]["maximumPercent"] == 200
    assert deployment["deploymentCircuitBreaker"] == {
        "status": "DISABLED",
        "failureCount": 0,
        "threshold": 3,
    }


def test_describe_revisions_by_arn(two_deployments: Any) -> None:
    ecs, first, second = two_deployments
    found = ecs.describe_service_revisions(
        serviceRevisionArns=[arn_of("revision", first), arn_of("revision", second)]
    )
    assert found["failures"] == []
    old, new = found["serviceRevisions"]
    assert old["taskDefinition"].endswith("task-definition/web:1")
    assert new["taskDefinition"].endswith("task-definition/web:2")
    assert new["containerImages"] == [{"containerName": "app", "image": "busybox:1.36"}]
    assert (new["serviceArn"], new["clusterArn"], new["launchType"]) == (
        SERVICE_ARN,
        CLUSTER_ARN,
        "EC2",
    )
    gone = ecs.describe_service_revisions(serviceRevisionArns=[arn_of("deployment", first)])
    assert gone["failures"] == [{"arn": arn_of("deployment", first), "reason": "MISSING"}]


def test_unknown_services_and_bad_input_are_refused(ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    with pytest.raises(ClientError) as excinfo:
        ecs.list_service_deployments(cluster="work", service="ghost")
    assert refused(excinfo)[0] == "ServiceNotFoundException"
    with pytest.raises(ClientError) as excinfo:
        ecs.describe_service_deployments(serviceDeploymentArns=[])
    assert refused(excinfo)[0] == "InvalidParameterException"


def test_a_completed_deployment_is_successful(ecs: Any) -> None:
    """With the loop: the task it placed reported RUNNING completes the deployment."""
    ecs.create_cluster(clusterName="work")
    definition(ecs)
    register_instance(ecs)
    deployment = create(ecs, desiredCount=1)["deployments"][0]
    [task] = eventually(
        lambda: ecs.list_tasks(cluster="work", startedBy=deployment["id"])["taskArns"]
    )
    ecs.submit_task_state_change(cluster="work", task=task, status="RUNNING")
    eventually(lambda: described(ecs)["deployments"][0]["rolloutState"] == "COMPLETED")
    [brief] = ecs.list_service_deployments(cluster="work", service="web")["serviceDeployments"]
    assert (brief["status"], brief["statusReason"]) == (
        "SUCCESSFUL",
        f"ECS deployment {deployment['id']} completed.",
    )
    assert "finishedAt" in brief
