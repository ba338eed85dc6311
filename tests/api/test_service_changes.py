"""UpdateService and DeleteService through boto3: new deployments and rescaling,
merged settings, DRAINING and INACTIVE, and every refusal with nothing changed.
Helpers and the loop's part: see test_services.py."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.test_services import (
    SERVICE_ARN,
    create,
    definition,
    described,
    eventually,
    refused,
    register_instance,
    stored,
)


@pytest.fixture
def work(ecs: Any) -> Any:
    ecs.create_cluster(clusterName="work")
    definition(ecs)
    return ecs


# UpdateService


def test_update_desired_count_rescales_the_primary_without_a_new_deployment(work: Any) -> None:
    service = create(work)
    updated = work.update_service(cluster="work", service="web", desiredCount=5)["service"]
    assert updated["desiredCount"] == 5
    [deployment] = updated["deployments"]
    assert deployment["id"] == service["deployments"][0]["id"]
    assert deployment["desiredCount"] == 5


def test_a_new_task_definition_makes_a_new_primary(work: Any) -> None:
    first = create(work)["deployments"][0]
    second = definition(work, image="busybox:1.36")
    updated = work.update_service(cluster="work", service="web", taskDefinition="web")["service"]
    assert updated["taskDefinition"] == second
    primary, active = updated["deployments"]
    assert (primary["status"], primary["taskDefinition"]) == ("PRIMARY", second)
    assert primary["rolloutState"] == "IN_PROGRESS"
    assert (active["id"], active["status"]) == (first["id"], "ACTIVE")
    forced = work.update_service(cluster="work", service="web", forceNewDeployment=True)
    ids = [d["id"] for d in forced["service"]["deployments"]]
    assert len(ids) == 3 and ids[1:] == [primary["id"], first["id"]]


def test_update_merges_the_deployment_configuration_and_settings(work: Any) -> None:
    create(work, deploymentConfiguration={"minimumHealthyPercent": 50})
    updated = work.update_service(
        cluster="work",
        service="web",
        deploymentConfiguration={"maximumPercent": 150},
        healthCheckGracePeriodSeconds=60,
        propagateTags="TASK_DEFINITION",
        enableExecuteCommand=True,
        placementStrategy=[{"type": "spread", "field": "instanceId"}],
    )["service"]
    assert updated["deploymentConfiguration"] == {
        "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        "maximumPercent": 150,
        "minimumHealthyPercent": 50,
    }
    assert updated["healthCheckGracePeriodSeconds"] == 60
    assert updated["propagateTags"] == "TASK_DEFINITION"
    assert updated["enableExecuteCommand"] is True
    assert updated["placementStrategy"] == [{"type": "spread", "field": "instanceId"}]
    assert len(updated["deployments"]) == 2  # a placement change deploys afresh
    cleared = work.update_service(cluster="work", service="web", placementStrategy=[])
    assert cleared["service"]["placementStrategy"] == []


UPDATE_REFUSALS = [
    ("missing", {"service": "nope"}, "ServiceNotFoundException", "Service not found"),
    ("task definition", {"taskDefinition": "other"}, "ClientException", "TaskDefinition not"),
    (
        "minimum",
        {"deploymentConfiguration": {"minimumHealthyPercent": 101}},
        "InvalidParameterException",
        "minimumHealthyPercent must be between 0 and 100",
    ),
    (
        "capacity providers",
        {"capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT"}]},
        "InvalidParameterException",
        "capacityProviderStrategy is not supported yet",
    ),
    (
        "constraint",
        {"placementConstraints": [{"type": "memberOf"}]},
        "InvalidParameterException",
        "placementConstraints[0].expression: memberOf needs an expression",
    ),
]


@pytest.mark.parametrize(
    ("given", "code", "message"),
    [case[1:] for case in UPDATE_REFUSALS],
    ids=[case[0] for case in UPDATE_REFUSALS],
)
def test_update_service_refusals_change_nothing(
    work: Any, given: dict[str, Any], code: str, message: str
) -> None:
    create(work)
    before = stored(work)
    with pytest.raises(ClientError) as excinfo:
        work.update_service(**{"cluster": "work", "service": "web", **given})
    got_code, got_message = refused(excinfo)
    assert (got_code, message in got_message) == (code, True)
    assert stored(work) == before


# DeleteService


def test_delete_refuses_a_scaled_service_without_force(work: Any) -> None:
    create(work)
    before = stored(work)
    with pytest.raises(ClientError) as excinfo:
        work.delete_service(cluster="work", service="web")
    code, message = refused(excinfo)
    assert code == "InvalidParameterException"
    assert message.startswith("The service cannot be stopped while it is scaled above 0.")
    assert stored(work) == before


def test_a_service_without_tasks_is_inactive_at_once(work: Any) -> None:
    create(work, desiredCount=0, tags=[{"key": "old", "value": "1"}])
    deleted = work.delete_service(cluster="work", service="web")["service"]
    assert (deleted["status"], deleted["desiredCount"]) == ("INACTIVE", 0)
    assert work.list_services(cluster="work")["serviceArns"] == []
    described = work.describe_services(cluster="work", services=["web"])["services"]
    assert described[0]["status"] == "INACTIVE"
    with pytest.raises(ClientError) as excinfo:
        work.update_service(cluster="work", service="web", desiredCount=1)
    assert refused(excinfo)[0] == "ServiceNotActiveException"
    again = create(work)  # the name is free again, without the old tags
    assert again["status"] == "ACTIVE"
    assert work.list_tags_for_resource(resourceArn=SERVICE_ARN)["tags"] == []


def test_a_service_with_tasks_drains_until_they_stop(work: Any) -> None:
    register_instance(work)
    service = create(work, desiredCount=1)
    deployment = service["deployments"][0]["id"]
    [task] = eventually(lambda: work.list_tasks(cluster="work", startedBy=deployment)["taskArns"])
    work.submit_task_state_change(cluster="work", task=task, status="RUNNING")
    eventually(lambda: described(work)["runningCount"] == 1)
    deleted = work.delete_service(cluster="work", service="web", force=True)["service"]
    assert (deleted["status"], deleted["desiredCount"]) == ("DRAINING", 0)
    assert deleted["runningCount"] == 1
    assert work.list_services(cluster="work")["serviceArns"] == []
    for reference in ("web", SERVICE_ARN):
        assert described(work, reference)["status"] == "DRAINING"
    with pytest.raises(ClientError) as taken:
        create(work)
    assert refused(taken)[1].startswith("Creation of service was not idempotent.")
    assert "DRAINING" in refused(taken)[1]
    # ECS counts only ACTIVE services in the cluster's activeServicesCount.
    assert work.describe_clusters(clusters=["work"])["clusters"][0]["activeServicesCount"] == 0
    # The loop asks the task to stop; once it has, the service is INACTIVE.
    eventually(lambda: work.describe_tasks(cluster="work", tasks=[task])["tasks"][0][
        "desiredStatus"] == "STOPPED")  # fmt: skip
    work.submit_task_state_change(cluster="work", task=task, status="STOPPED")
    eventually(lambda: described(work)["status"] == "INACTIVE")


def test_delete_cluster_refuses_a_cluster_with_services(work: Any) -> None:
    create(work)
    with pytest.raises(ClientError) as excinfo:
        work.delete_cluster(cluster="work")
    assert refused(excinfo) == (
        "ClusterContainsServicesException",
        "The Cluster cannot be deleted while Services are active.",
    )
