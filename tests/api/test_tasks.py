"""Tasks without an agent: instances registered through the API are placement targets,
and the tasks placed on them stay PENDING until something reports on them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.live import REGION, LiveServer

TASK_ARN = re.compile(
    rf"arn:aws:ecs:{REGION}:000000000000:task/(?P<cluster>[\w-]+)/(?P<id>[0-9a-f]{{32}})"
)
WAIT = {"Delay": 1, "MaxAttempts": 10}


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def register_instance(
    ecs: Any, cluster: str = "work", cpu: int = 2048, memory: int = 4096, zone: str = "a"
) -> str:
    """A host as an operator registers one by hand: resources and a zone, no agent."""
    instance = ecs.register_container_instance(
        cluster=cluster,
        totalResources=[
            {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
            {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22"]},
        ],
        attributes=[{"name": "ecs.availability-zone", "value": f"{REGION}{zone}"}],
    )["containerInstance"]
    return str(instance["containerInstanceArn"])


def web_definition(ecs: Any, family: str = "web", **container: Any) -> str:
    definition = {"name": "web", "image": "busybox", "cpu": 256, "memory": 512, **container}
    registered = ecs.register_task_definition(family=family, containerDefinitions=[definition])
    return str(registered["taskDefinition"]["taskDefinitionArn"])


def remaining(ecs: Any, arn: str, cluster: str = "work") -> dict[str, Any]:
    described = ecs.describe_container_instances(cluster=cluster, containerInstances=[arn])
    instance = described["containerInstances"][0]
    left = {r["name"]: r for r in instance["remainingResources"]}
    return {
        "CPU": left["CPU"]["integerValue"],
        "MEMORY": left["MEMORY"]["integerValue"],
        "PORTS": sorted(left["PORTS"]["stringSetValue"]),
        "running": instance["runningTasksCount"],
        "pending": instance["pendingTasksCount"],
    }


def test_run_task_places_a_pending_task_and_reserves_its_resources(ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    instance = register_instance(ecs)
    web_definition(ecs, portMappings=[{"containerPort": 80, "hostPort": 8080}])

    run = ecs.run_task(cluster="work", taskDefinition="web", startedBy="ci-42")
    assert run["failures"] == []
    [task] = run["tasks"]
    match = TASK_ARN.fullmatch(task["taskArn"])
    assert match and match["cluster"] == "work"
    assert (task["lastStatus"], task["desiredStatus"]) == ("PENDING", "RUNNING")
    assert task["containerInstanceArn"] == instance
    assert task["group"] == "family:web"
    assert task["startedBy"] == "ci-42"
    assert task["launchType"] == "EC2"
    assert task["availabilityZone"] == f"{REGION}a"
    assert (task["cpu"], task["memory"], task["version"]) == ("256", "512", 1)
    [container] = task["containers"]
    assert (container["name"], container["image"], container["lastStatus"]) == (
        "web",
        "busybox",
        "PENDING",
    )
    assert container["containerArn"].startswith(f"arn:aws:ecs:{REGION}:000000000000:container/")

    assert remaining(ecs, instance) == {
        "CPU": 2048 - 256,
        "MEMORY": 4096 - 512,
        "PORTS": ["22", "8080"],
        "running": 0,
        "pending": 1,
    }
    cluster = ecs.describe_clusters(clusters=["work"])["clusters"][0]
    assert (cluster["pendingTasksCount"], cluster["runningTasksCount"]) == (1, 0)

    # Described by ARN or by ID, listed with each filter that matches it.
    described = ecs.describe_tasks(cluster="work", tasks=[match["id"]])["tasks"]
    assert [t["taskArn"] for t in described] == [task["taskArn"]]
    for filters in ({}, {"family": "web"}, {"startedBy": "ci-42"}, {"containerInstance": instance}):
        listed = ecs.list_tasks(cluster="work", **filters)["taskArns"]
        assert listed == [task["taskArn"]], filters
    for filters in ({"family": "db"}, {"desiredStatus": "STOPPED"}, {"serviceName": "api"}):
        assert ecs.list_tasks(cluster="work", **filters)["taskArns"] == [], filters


def test_count_three_takes_three_times_the_resources(ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    instance = register_instance(ecs)
    web_definition(ecs)
    run = ecs.run_task(cluster="work", taskDefinition="web", count=3)
    assert len(run["tasks"]) == 3 and run["failures"] == []
    left = remaining(ecs, instance)
    assert (left["CPU"], left["MEMORY"], left["pending"]) == (2048 - 768, 4096 - 1536, 3)
    # ListTasks pages through them.
    first = ecs.list_tasks(cluster="work", maxResults=2)
    second = ecs.list_tasks(cluster="work", nextToken=first["nextToken"])
    every = first["taskArns"] + second["taskArns"]
    assert sorted(every) == sorted(t["taskArn"] for t in run["tasks"])


PLACEMENT_FAILURES = [
    # (case, container definition, reason, detail fragment)
    ("memory", {"memory": 3000}, "RESOURCE:MEMORY", "1024 MiB of memory left"),
    ("cpu", {"cpu": 1536, "memory": 128}, "RESOURCE:CPU", "1024 CPU units left"),
    (
        "ports",
        # Both instances keep port 22 for themselves; the small one also lacks CPU.
        {"cpu": 1024, "memory": 128, "portMappings": [{"containerPort": 22, "hostPort": 22}]},
        "RESOURCE:PORTS",
        "host ports 22",
    ),
]


@pytest.mark.parametrize(
    ("container", "reason", "detail"),
    [case[1:] for case in PLACEMENT_FAILURES],
    ids=[case[0] for case in PLACEMENT_FAILURES],
)
def test_a_task_that_fits_nowhere_fails_naming_the_closest_instance(
    ecs: Any, container: dict[str, Any], reason: str, detail: str
) -> None:
    ecs.create_cluster(clusterName="work")
    register_instance(ecs, cpu=512, memory=512, zone="a")
    closest = register_instance(ecs, cpu=1024, memory=1024, zone="b")
    web_definition(ecs, **container)
    run = ecs.run_task(cluster="work", taskDefinition="web")
    assert run["tasks"] == []
    [failure] = run["failures"]
    assert (failure["reason"], failure["arn"]) == (reason, closest)
    assert detail in failure["detail"]


def test_count_beyond_capacity_places_what_fits(ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    instance = register_instance(ecs, cpu=4096, memory=1200)
    web_definition(ecs)
    run = ecs.run_task(cluster="work", taskDefinition="web", count=3)
    assert len(run["tasks"]) == 2
    assert [(f["arn"], f["reason"]) for f in run["failures"]] == [(instance, "RESOURCE:MEMORY")]


def test_stop_task_never_picked_up_goes_straight_to_stopped(ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    instance = register_instance(ecs)
    web_definition(ecs)
    task = ecs.run_task(cluster="work", taskDefinition="web")["tasks"][0]

    stopped = ecs.stop_task(cluster="work", task=task["taskArn"], reason="not needed")["task"]
    assert (stopped["lastStatus"], stopped["desiredStatus"]) == ("STOPPED", "STOPPED")
    assert (stopped["stopCode"], stopped["stoppedReason"]) == ("UserInitiated", "not needed")
    assert stopped["stoppedAt"] >= stopped["stoppingAt"] >= stopped["createdAt"]
    assert stopped["containers"][0]["lastStatus"] == "STOPPED"
    assert stopped["version"] == 2
    ecs.get_waiter("tasks_stopped").wait(cluster="work", tasks=[task["taskArn"]], WaiterConfig=WAIT)

    left = remaining(ecs, instance)
    assert (left["CPU"], left["MEMORY"], left["pending"]) == (2048, 4096, 0)
    assert ecs.list_tasks(cluster="work")["taskArns"] == []
    assert ecs.list_tasks(cluster="work", desiredStatus="STOPPED")["taskArns"] == [task["taskArn"]]
    # Stopping again changes nothing: the first reason stays.
    again = ecs.stop_task(cluster="work", task=task["taskArn"], reason="twice")["task"]
    assert again["stoppedReason"] == "not needed"


def test_reports_move_a_hand_registered_task_forward_only(ecs: Any) -> None:
    """Without an agent, anyone with access may report (the agent channel tests cover
    the instance check)."""
    ecs.create_cluster(clusterName="work")
    instance = register_instance(ecs)
    web_definition(ecs)
    arn = ecs.run_task(cluster="work", taskDefinition="web")["tasks"][0]["taskArn"]

    ecs.submit_task_state_change(cluster="work", task=arn, status="RUNNING")
    ecs.get_waiter("tasks_running").wait(cluster="work", tasks=[arn], WaiterConfig=WAIT)
    assert remaining(ecs, instance)["running"] == 1
    ecs.submit_task_state_change(cluster="work", task=arn, status="PENDING")  # late, ignored
    task = ecs.describe_tasks(cluster="work", tasks=[arn])["tasks"][0]
    assert task["lastStatus"] == "RUNNING" and "startedAt" in task

    ecs.submit_container_state_change(
        cluster="work", task=arn, containerName="web", status="STOPPED", exitCode=3
    )
    ecs.submit_task_state_change(
        cluster="work", task=arn, status="STOPPED", reason="Essential container in task exited"
    )
    task = ecs.describe_tasks(cluster="work", tasks=[arn])["tasks"][0]
    assert (task["lastStatus"], task["desiredStatus"]) == ("STOPPED", "STOPPED")
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["containers"][0]["exitCode"] == 3
    assert remaining(ecs, instance)["MEMORY"] == 4096


def test_describe_tasks_tags_and_missing(ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    register_instance(ecs)
    definition = web_definition(ecs)
    ecs.tag_resource(resourceArn=definition, tags=[{"key": "team", "value": "web"}])
    run = ecs.run_task(
        cluster="work",
        taskDefinition="web",
        tags=[{"key": "run", "value": "1"}],
        propagateTags="TASK_DEFINITION",
        overrides={"containerOverrides": [{"name": "web", "memory": 1024, "command": ["sh"]}]},
    )
    arn = run["tasks"][0]["taskArn"]
    missing = arn[:-32] + "0" * 32
    described = ecs.describe_tasks(cluster="work", tasks=[arn, missing], include=["TAGS"])
    [task] = described["tasks"]
    assert task["tags"] == [{"key": "run", "value": "1"}, {"key": "team", "value": "web"}]
    assert described["failures"] == [{"arn": missing, "reason": "MISSING"}]
    # The override's memory is what the task reserves and reports.
    assert task["memory"] == "1024" and task["containers"][0]["memory"] == "1024"
    assert task["overrides"]["containerOverrides"][0]["command"] == ["sh"]
    plain = ecs.describe_tasks(cluster="work", tasks=[arn])["tasks"][0]
    assert "tags" not in plain
    # A task is taggable like any ECS resource.
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "stage", "value": "test"}])
    listed = ecs.list_tags_for_resource(resourceArn=arn)["tags"]
    assert {"key": "stage", "value": "test"} in listed
    with pytest.raises(ClientError) as excinfo:
        ecs.tag_resource(resourceArn=missing, tags=[{"key": "k", "value": "v"}])
    assert excinfo.value.response["Error"]["Code"] == "ResourceNotFoundException"


REFUSED_RUNS = [
    ("fargate", {"launchType": "FARGATE"}, "InvalidParameterException"),
    ("count", {"count": 11}, "InvalidParameterException"),
    (
        "unknown-override",
        {"overrides": {"containerOverrides": [{"name": "db"}]}},
        "InvalidParameterException",
    ),
    (
        "bad-strategy",
        {"placementStrategy": [{"type": "binpack", "field": "disk"}]},
        "InvalidParameterException",
    ),
    ("no-definition", {"taskDefinition": "nope"}, "ClientException"),
    ("no-cluster", {"cluster": "nowhere"}, "ClusterNotFoundException"),
]


@pytest.mark.parametrize(
    ("params", "code"), [c[1:] for c in REFUSED_RUNS], ids=[c[0] for c in REFUSED_RUNS]
)
def test_run_task_refusals(ecs: Any, params: dict[str, Any], code: str) -> None:
    ecs.create_cluster(clusterName="work")
    register_instance(ecs)
    web_definition(ecs)
    with pytest.raises(ClientError) as excinfo:
        ecs.run_task(**{"cluster": "work", "taskDefinition": "web", **params})
    assert error_code(excinfo) == code


def test_run_task_needs_an_active_instance(ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    web_definition(ecs)
    with pytest.raises(ClientError) as excinfo:
        ecs.run_task(cluster="work", taskDefinition="web")
    assert "No Container Instances" in str(excinfo.value)
    instance = register_instance(ecs)
    drained = ecs.update_container_instances_state(
        cluster="work", containerInstances=[instance], status="DRAINING"
    )
    assert drained["containerInstances"][0]["status"] == "DRAINING"
    # A draining instance takes no task, and the failure says why.
    run = ecs.run_task(cluster="work", taskDefinition="web")
    assert run["tasks"] == []
    assert [(f["arn"], f["reason"]) for f in run["failures"]] == [(instance, "DRAINING")]
    ecs.update_container_instances_state(
        cluster="work", containerInstances=[instance], status="ACTIVE"
    )
    assert len(ecs.run_task(cluster="work", taskDefinition="web")["tasks"]) == 1


def test_start_task_on_named_instances(ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    big = register_instance(ecs)
    small = register_instance(ecs, memory=256)
    web_definition(ecs)
    missing = big[:-32] + "f" * 32
    started = ecs.start_task(
        cluster="work", taskDefinition="web", containerInstances=[big, small, missing]
    )
    assert [t["containerInstanceArn"] for t in started["tasks"]] == [big]
    reasons = {f["arn"]: f["reason"] for f in started["failures"]}
    assert reasons == {small: "RESOURCE:MEMORY", missing: "MISSING"}


def test_deregistering_an_instance_with_tasks(ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    instance = register_instance(ecs)
    web_definition(ecs)
    arn = ecs.run_task(cluster="work", taskDefinition="web")["tasks"][0]["taskArn"]
    with pytest.raises(ClientError) as excinfo:
        ecs.deregister_container_instance(cluster="work", containerInstance=instance)
    assert error_code(excinfo) == "InvalidParameterException"
    gone = ecs.deregister_container_instance(cluster="work", containerInstance=instance, force=True)
    assert gone["containerInstance"]["status"] == "INACTIVE"
    task = ecs.describe_tasks(cluster="work", tasks=[arn])["tasks"][0]
    assert (task["lastStatus"], task["stopCode"]) == ("STOPPED", "UserInitiated")
    ecs.delete_cluster(cluster="work")  # nothing holds it any more


def test_aws_cli_runs_and_stops_a_task(server: LiveServer, ecs: Any) -> None:
    ecs.create_cluster(clusterName="work")
    register_instance(ecs)
    web_definition(ecs)
    run = server.aws("ecs", "run-task", "--cluster", "work", "--task-definition", "web:1")
    assert run.returncode == 0, run.stderr
    [task] = json.loads(run.stdout)["tasks"]
    assert task["lastStatus"] == "PENDING"
    stop = server.aws("ecs", "stop-task", "--cluster", "work", "--task", task["taskArn"])
    assert stop.returncode == 0, stop.stderr
    assert json.loads(stop.stdout)["task"]["lastStatus"] == "STOPPED"
