"""ECS's RegisterTaskDefinition rules (dockyard.ecs.taskdef_rules), case by case.

Each table row is one story: a request built from the factories below, changed in
one place, and what ECS makes of it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.api.errors import AwsError, ClientException
from dockyard.ecs import fargate
from dockyard.ecs.taskdef_rules import check_task_definition

Doc = dict[str, Any]


# -- factories ----------------------------------------------------------------------


def container(**fields: Any) -> Doc:
    """A valid EC2 container named web; a field given as None is left out."""
    base: Doc = {"name": "web", "image": "nginx", "memory": 128}
    return {k: v for k, v in {**base, **fields}.items() if v is not None}


def task(*containers: Doc, **fields: Any) -> Doc:
    """A valid task definition (family webserver); a field given as None is left out."""
    base: Doc = {"family": "webserver", "containerDefinitions": list(containers) or [container()]}
    return {k: v for k, v in {**base, **fields}.items() if v is not None}


def fargate_task(*containers: Doc, **fields: Any) -> Doc:
    defaults = {
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": "256",
        "memory": "512",
    }
    return task(*containers, **{**defaults, **fields})


def sidecar(**fields: Any) -> Doc:
    return container(name="sidecar", image="busybox", **fields)


HEALTH = {"command": ["CMD-SHELL", "true"]}
STUDY_PAGE: Doc = {
    "family": "webserver",
    "containerDefinitions": [{"name": "web", "image": "nginx", "memory": 100, "cpu": 99}],
    "requiresCompatibilities": ["FARGATE"],
    "networkMode": "awsvpc",
    "memory": "512",
    "cpu": "256",
}
ECR_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1"
AWSLOGS = {"logDriver": "awslogs", "options": {"awslogs-group": "g"}}


def ports(*mappings: Doc) -> Doc:
    return container(portMappings=list(mappings))


# -- requests ECS accepts -----------------------------------------------------------

VALID = [
    pytest.param(STUDY_PAGE, id="study-page-fargate-example"),
    pytest.param(task(), id="ec2-minimal"),
    pytest.param(task(container(memory=None), memory="512"), id="task-memory-covers-container"),
    pytest.param(task(container(memory=None, memoryReservation=64)), id="reservation-only"),
    pytest.param(
        task(container(memory=128, memoryReservation=128)), id="reservation-equal-to-memory"
    ),
    pytest.param(task(container(links=["sidecar:db"]), sidecar()), id="bridge-link-with-alias"),
    pytest.param(
        task(container(dependsOn=[{"containerName": "sidecar", "condition": "START"}]), sidecar()),
        id="depends-on-start",
    ),
    pytest.param(
        task(
            container(dependsOn=[{"containerName": "sidecar", "condition": "SUCCESS"}]),
            sidecar(essential=False),
        ),
        id="depends-on-success-of-nonessential",
    ),
    pytest.param(
        task(
            container(dependsOn=[{"containerName": "sidecar", "condition": "HEALTHY"}]),
            sidecar(healthCheck=HEALTH),
        ),
        id="depends-on-healthy-with-health-check",
    ),
    pytest.param(task(container(), sidecar(essential=False)), id="one-essential-is-enough"),
    pytest.param(
        task(ports({"containerPort": 80}), sidecar(portMappings=[{"containerPort": 80}])),
        id="bridge-dynamic-ports-may-repeat",
    ),
    pytest.param(
        task(
            ports(
                {"containerPort": 53, "hostPort": 53, "protocol": "tcp"},
                {"containerPort": 53, "hostPort": 53, "protocol": "udp"},
            )
        ),
        id="same-host-port-tcp-and-udp",
    ),
    pytest.param(
        task(ports({"containerPort": 80, "hostPort": 80}), networkMode="awsvpc"),
        id="awsvpc-matching-ports",
    ),
    pytest.param(task(ports({"containerPortRange": "8000-8100"})), id="bridge-port-range"),
    pytest.param(
        task(
            container(mountPoints=[{"sourceVolume": "data", "containerPath": "/d"}]),
            volumes=[{"name": "data", "host": {"sourcePath": "/srv"}}],
        ),
        id="mount-declared-volume",
    ),
    pytest.param(
        task(container(), sidecar(volumesFrom=[{"sourceContainer": "web"}])),
        id="volumes-from-other-container",
    ),
    pytest.param(
        task(container(ulimits=[{"name": "nofile", "softLimit": 9, "hardLimit": 9}])),
        id="ulimit-soft-equal-hard",
    ),
    pytest.param(task(container(stopTimeout=600)), id="ec2-stop-timeout-not-capped"),
    pytest.param(task(cpu="128", memory="128"), id="ec2-smallest-task-cpu"),
    pytest.param(
        fargate_task(
            container(image=ECR_IMAGE, logConfiguration=AWSLOGS),
            executionRoleArn="arn:aws:iam::123456789012:role/exec",
        ),
        id="fargate-ecr-and-awslogs-with-execution-role",
    ),
    pytest.param(
        fargate_task(
            cpu="1024",
            memory="2048",
            runtimePlatform={"operatingSystemFamily": "WINDOWS_SERVER_2022_CORE"},
        ),
        id="fargate-windows-1-vcpu",
    ),
    pytest.param(
        fargate_task(container(stopTimeout=120, startTimeout=2)), id="fargate-timeouts-at-limits"
    ),
]


@pytest.mark.parametrize("request_", VALID)
def test_accepts(request_: Doc) -> None:
    check_task_definition(request_)


@pytest.mark.parametrize("request_", VALID)
def test_checking_is_idempotent_and_leaves_the_request_alone(request_: Doc) -> None:
    before = copy.deepcopy(request_)
    checked = check_task_definition(request_)
    assert request_ == before
    assert check_task_definition(checked) == checked


@pytest.mark.parametrize(
    ("cpu", "memory"),
    [
        (cpu, memory)
        for cpu, memories in fargate.FARGATE_MEMORY_BY_CPU.items()
        for memory in memories
    ],
)
def test_accepts_every_fargate_size(cpu: int, memory: int) -> None:
    container_ = container(memory=None)
    check_task_definition(fargate_task(container_, cpu=str(cpu), memory=str(memory)))


# -- requests ECS refuses -----------------------------------------------------------

C0 = "containerDefinitions[0]"
REJECTED = [
    # family
    pytest.param(
        task(family=""), ClientException, "Family can not be blank", "family", id="family-blank"
    ),
    pytest.param(
        task(family="web.server"),
        ClientException,
        "Family contains invalid characters",
        "family",
        id="family-invalid-characters",
    ),
    pytest.param(
        task(family="f" * 256), ClientException, "up to 255", "family", id="family-too-long"
    ),
    # the container list and names
    pytest.param(
        {"family": "f", "containerDefinitions": []},
        ClientException,
        "Container list cannot be empty",
        "containerDefinitions",
        id="no-containers",
    ),
    pytest.param(
        task(*[container(name=f"c{n}") for n in range(11)]),
        ClientException,
        "Too many containers",
        "containerDefinitions",
        id="eleven-containers",
    ),
    pytest.param(
        task(container(name="")),
        ClientException,
        "Container.name should not be null or empty",
        f"{C0}.name",
        id="name-empty",
    ),
    pytest.param(
        task(container(name="my web")),
        ClientException,
        "Container.name contains invalid characters",
        f"{C0}.name",
        id="name-space",
    ),
    pytest.param(
        task(container(), container()),
        ClientException,
        "Container names must be unique",
        "containerDefinitions[1].name",
        id="name-duplicate",
    ),
    pytest.param(
        task(container(image=None)),
        ClientException,
        "Container.image should not be null or empty",
        f"{C0}.image",
        id="image-missing",
    ),
    pytest.param(
        task(container(image="  ")),
        ClientException,
        "Container.image should not be null or empty",
        f"{C0}.image",
        id="image-blank",
    ),
    pytest.param(
        task(container(essential=False)),
        ClientException,
        "doesn't have any essential container",
        "containerDefinitions[].essential",
        id="nothing-essential",
    ),
    # container memory and the task's size
    pytest.param(
        task(container(memory=None)),
        ClientException,
        "Invalid setting for container 'web'. At least one of 'memory' or "
        "'memoryReservation' must be specified.",
        f"{C0}.memory",
        id="ec2-container-without-memory",
    ),
    pytest.param(
        task(container(memory=4)),
        ClientException,
        "at least 6 MiB",
        f"{C0}.memory",
        id="memory-below-6",
    ),
    pytest.param(
        task(container(memory=None, memoryReservation=5)),
        ClientException,
        "at least 6 MiB",
        f"{C0}.memoryReservation",
        id="reservation-below-6",
    ),
    pytest.param(
        task(container(memory=128, memoryReservation=256)),
        ClientException,
        "greater than or equal",
        f"{C0}.memoryReservation",
        id="reservation-above-memory",
    ),
    pytest.param(
        task(container(memory=1024), memory="512"),
        ClientException,
        "The 'memory' setting for container 'web' is greater than for the task",
        f"{C0}.memory",
        id="container-memory-above-task",
    ),
    pytest.param(
        task(
            container(memory=None, memoryReservation=300),
            sidecar(memory=None, memoryReservation=300),
            memory="512",
        ),
        ClientException,
        "The sum of all container 'memoryReservation' values",
        "containerDefinitions[].memoryReservation",
        id="reservations-above-task",
    ),
    pytest.param(
        task(container(cpu=200), sidecar(cpu=200), cpu="256"),
        ClientException,
        "The sum of all container 'cpu' values",
        "containerDefinitions[].cpu",
        id="container-cpu-above-task",
    ),
    pytest.param(
        task(cpu="lots"),
        ClientException,
        "Invalid 'cpu' setting for task",
        "cpu",
        id="task-cpu-unparseable",
    ),
    pytest.param(
        task(cpu="0.1 vCPU"),
        ClientException,
        "Invalid 'cpu' setting for task",
        "cpu",
        id="task-cpu-fraction-of-a-unit",
    ),
    pytest.param(
        task(cpu="100"),
        ClientException,
        "between 128 and 196608",
        "cpu",
        id="ec2-task-cpu-below-range",
    ),
    pytest.param(
        task(cpu="200 vCPU"),
        ClientException,
        "between 128 and 196608",
        "cpu",
        id="ec2-task-cpu-above-range",
    ),
    pytest.param(
        task(memory="2 TB"),
        ClientException,
        "Invalid 'memory' setting for task",
        "memory",
        id="task-memory-unparseable",
    ),
    # Fargate
    pytest.param(
        fargate_task(networkMode="bridge"),
        ClientException,
        "Fargate only supports network mode 'awsvpc'",
        "networkMode",
        id="fargate-bridge",
    ),
    pytest.param(
        fargate_task(networkMode=None),
        ClientException,
        "Fargate only supports network mode 'awsvpc'",
        "networkMode",
        id="fargate-default-network-mode",
    ),
    pytest.param(
        fargate_task(cpu=None),
        ClientException,
        "Fargate requires that 'cpu' be defined at the task level",
        "cpu",
        id="fargate-no-cpu",
    ),
    pytest.param(
        fargate_task(memory=None),
        ClientException,
        "Fargate requires that 'memory' be defined at the task level",
        "memory",
        id="fargate-no-memory",
    ),
    pytest.param(
        fargate_task(cpu="256", memory="4096"),
        ClientException,
        "No Fargate configuration exists for given values: 256 CPU, 4096 memory",
        "cpu, memory",
        id="fargate-size-not-in-table",
    ),
    pytest.param(
        fargate_task(cpu="8192", memory="18432"),
        ClientException,
        "No Fargate configuration exists",
        "cpu, memory",
        id="fargate-8-vcpu-needs-4gb-steps",
    ),
    pytest.param(
        fargate_task(
            cpu="512",
            memory="1024",
            runtimePlatform={"operatingSystemFamily": "WINDOWS_SERVER_2019_FULL"},
        ),
        ClientException,
        "No Fargate configuration exists",
        "cpu, memory",
        id="fargate-windows-below-1-vcpu",
    ),
    pytest.param(
        fargate_task(ipcMode="task"),
        ClientException,
        "do not support ipcMode",
        "ipcMode",
        id="fargate-ipc-mode",
    ),
    pytest.param(
        fargate_task(pidMode="host"),
        ClientException,
        "do not support pidMode 'host'",
        "pidMode",
        id="fargate-pid-mode-host",
    ),
    pytest.param(
        fargate_task(container(privileged=True)),
        ClientException,
        "do not support privileged containers",
        f"{C0}.privileged",
        id="fargate-privileged",
    ),
    pytest.param(
        fargate_task(volumes=[{"name": "v", "host": {"sourcePath": "/srv"}}]),
        ClientException,
        "do not support sourcePath",
        "volumes[0].host.sourcePath",
        id="fargate-host-source-path",
    ),
    pytest.param(
        fargate_task(volumes=[{"name": "v", "dockerVolumeConfiguration": {}}]),
        ClientException,
        "do not support dockerVolumeConfiguration",
        "volumes[0].dockerVolumeConfiguration",
        id="fargate-docker-volume",
    ),
    pytest.param(
        fargate_task(container(image=ECR_IMAGE)),
        ClientException,
        "Fargate requires task definition to have execution role ARN to support ECR images",
        "executionRoleArn",
        id="fargate-ecr-image-without-role",
    ),
    pytest.param(
        fargate_task(container(logConfiguration=AWSLOGS)),
        ClientException,
        "execution role ARN to support log driver awslogs",
        "executionRoleArn",
        id="fargate-awslogs-without-role",
    ),
    pytest.param(
        fargate_task(container(stopTimeout=121)),
        ClientException,
        "between 2 and 120",
        f"{C0}.stopTimeout",
        id="fargate-stop-timeout-121",
    ),
    pytest.param(
        fargate_task(container(startTimeout=1)),
        ClientException,
        "between 2 and 120",
        f"{C0}.startTimeout",
        id="fargate-start-timeout-1",
    ),
    pytest.param(
        task(container(stopTimeout=-1)),
        ClientException,
        "0 or more",
        f"{C0}.stopTimeout",
        id="ec2-negative-stop-timeout",
    ),
    # links
    pytest.param(
        task(container(links=["sidecar"]), sidecar(), networkMode="awsvpc"),
        ClientException,
        "Links are not supported when networkMode=awsvpc",
        f"{C0}.links",
        id="links-awsvpc",
    ),
    pytest.param(
        task(container(links=["sidecar"]), sidecar(), networkMode="host"),
        ClientException,
        "Links are not supported when networkMode=host",
        f"{C0}.links",
        id="links-host",
    ),
    pytest.param(
        task(container(links=["db:database"])),
        ClientException,
        "There is no container 'db'",
        f"{C0}.links[0]",
        id="link-to-unknown",
    ),
    pytest.param(
        task(container(links=["sidecar"]), sidecar(links=["web"])),
        ClientException,
        "Container links should not have a cycle: web -> sidecar -> web",
        "containerDefinitions[].links",
        id="link-cycle",
    ),
    # dependsOn
    pytest.param(
        task(container(dependsOn=[{"containerName": "db", "condition": "START"}])),
        ClientException,
        "Cannot depend on container 'db' because it does not exist",
        f"{C0}.dependsOn[0]",
        id="depends-on-unknown",
    ),
    pytest.param(
        task(container(dependsOn=[{"containerName": "web", "condition": "START"}])),
        ClientException,
        "should not have a cycle: web -> web",
        "containerDefinitions[].dependsOn",
        id="depends-on-itself",
    ),
    pytest.param(
        task(
            container(dependsOn=[{"containerName": "sidecar", "condition": "START"}]),
            sidecar(dependsOn=[{"containerName": "web", "condition": "START"}]),
        ),
        ClientException,
        "Container dependencies should not have a cycle",
        "containerDefinitions[].dependsOn",
        id="depends-on-cycle",
    ),
    pytest.param(
        task(
            container(dependsOn=[{"containerName": "sidecar", "condition": "COMPLETE"}]), sidecar()
        ),
        ClientException,
        "A dependency container with SUCCESS or COMPLETE condition cannot be an "
        "essential container",
        f"{C0}.dependsOn[0]",
        id="complete-on-essential",
    ),
    pytest.param(
        task(
            container(dependsOn=[{"containerName": "sidecar", "condition": "SUCCESS"}]),
            sidecar(essential=True),
        ),
        ClientException,
        "cannot be an essential container",
        f"{C0}.dependsOn[0]",
        id="success-on-essential",
    ),
    pytest.param(
        task(
            container(dependsOn=[{"containerName": "sidecar", "condition": "HEALTHY"}]), sidecar()
        ),
        ClientException,
        "'sidecar' has no healthCheck",
        f"{C0}.dependsOn[0]",
        id="healthy-without-health-check",
    ),
    # healthCheck
    pytest.param(
        task(container(healthCheck={"command": []})),
        ClientException,
        "The command must not be empty",
        f"{C0}.healthCheck.command",
        id="health-check-empty-command",
    ),
    *[
        pytest.param(
            task(container(healthCheck={**HEALTH, key: value})),
            ClientException,
            f"'{key}' must be between",
            f"{C0}.healthCheck.{key}",
            id=f"health-check-{key}-{value}",
        )
        for key, value in [
            ("interval", 4),
            ("interval", 301),
            ("timeout", 1),
            ("timeout", 61),
            ("retries", 0),
            ("retries", 11),
            ("startPeriod", -1),
            ("startPeriod", 301),
        ]
    ],
    # ulimits and hostname
    pytest.param(
        task(container(ulimits=[{"name": "nofile", "softLimit": 10, "hardLimit": 9}])),
        ClientException,
        "softLimit of 'nofile' (10) is greater than its hardLimit",
        f"{C0}.ulimits[0]",
        id="ulimit-soft-above-hard",
    ),
    pytest.param(
        task(container(hostname="web"), networkMode="awsvpc"),
        ClientException,
        "hostname is not supported on container when networkMode=awsvpc",
        f"{C0}.hostname",
        id="hostname-awsvpc",
    ),
    # port mappings
    pytest.param(
        task(ports({"containerPort": 0})),
        ClientException,
        "Invalid 'containerPort' setting for container 'web'",
        f"{C0}.portMappings[0].containerPort",
        id="container-port-0",
    ),
    pytest.param(
        task(ports({"containerPort": 65536})),
        ClientException,
        "Invalid 'containerPort' setting",
        f"{C0}.portMappings[0].containerPort",
        id="container-port-65536",
    ),
    pytest.param(
        task(ports({"hostPort": 80})),
        ClientException,
        "Invalid 'containerPort' setting",
        f"{C0}.portMappings[0].containerPort",
        id="container-port-missing",
    ),
    pytest.param(
        task(ports({"containerPort": 80, "hostPort": 70000})),
        ClientException,
        "Invalid 'hostPort' setting",
        f"{C0}.portMappings[0].hostPort",
        id="host-port-70000",
    ),
    pytest.param(
        task(ports({"containerPort": 80, "hostPort": 8080}), networkMode="awsvpc"),
        ClientException,
        "When networkMode=awsvpc, the host ports and container ports in port mappings must match",
        f"{C0}.portMappings[0].hostPort",
        id="awsvpc-ports-differ",
    ),
    pytest.param(
        task(ports({"containerPort": 80, "hostPort": 8080}), networkMode="host"),
        ClientException,
        "When networkMode=host, the host ports",
        f"{C0}.portMappings[0].hostPort",
        id="host-mode-ports-differ",
    ),
    pytest.param(
        task(ports({"containerPort": 80}), networkMode="none"),
        ClientException,
        "Port mappings are not supported when networkMode=none",
        f"{C0}.portMappings[0]",
        id="none-mode-with-ports",
    ),
    pytest.param(
        task(
            ports({"containerPort": 3000, "hostPort": 3000}),
            sidecar(portMappings=[{"containerPort": 3001, "hostPort": 3000}]),
        ),
        ClientException,
        "TCP host port '3000' is mapped multiple times in task",
        "containerDefinitions[1].portMappings[0].hostPort",
        id="bridge-host-port-twice",
    ),
    pytest.param(
        fargate_task(ports({"containerPort": 80}), sidecar(portMappings=[{"containerPort": 80}])),
        ClientException,
        "TCP host port '80' is mapped multiple times",
        "containerDefinitions[1].portMappings[0].hostPort",
        id="awsvpc-container-port-twice",
    ),
    pytest.param(
        task(ports({"containerPortRange": "8000-8100"}), networkMode="host"),
        ClientException,
        "Port ranges need networkMode bridge or awsvpc",
        f"{C0}.portMappings[0].containerPortRange",
        id="port-range-host-mode",
    ),
    pytest.param(
        task(ports({"containerPortRange": "8000-8100", "containerPort": 80})),
        ClientException,
        "both single port and port range",
        f"{C0}.portMappings[0]",
        id="port-range-and-single-port",
    ),
    pytest.param(
        task(ports({"containerPortRange": "9000-8000"})),
        ClientException,
        "Invalid 'containerPortRange' setting",
        f"{C0}.portMappings[0].containerPortRange",
        id="port-range-backwards",
    ),
    # volumes
    pytest.param(
        task(container(mountPoints=[{"sourceVolume": "data", "containerPath": "/d"}])),
        ClientException,
        "Unknown volume 'data'",
        f"{C0}.mountPoints[0].sourceVolume",
        id="mount-unknown-volume",
    ),
    pytest.param(
        task(volumes=[{"name": "data"}, {"name": "data"}]),
        ClientException,
        "Volume names must be unique",
        "volumes[1].name",
        id="volume-name-duplicate",
    ),
    pytest.param(
        task(volumes=[{"name": "my data"}]),
        ClientException,
        "Volume.name contains invalid characters",
        "volumes[0].name",
        id="volume-name-invalid",
    ),
    pytest.param(
        task(container(volumesFrom=[{"sourceContainer": "db"}])),
        ClientException,
        "Invalid 'volumesFrom' setting for container 'web'",
        f"{C0}.volumesFrom[0].sourceContainer",
        id="volumes-from-unknown",
    ),
    pytest.param(
        task(container(volumesFrom=[{"sourceContainer": "web"}])),
        ClientException,
        "'web' is not another container",
        f"{C0}.volumesFrom[0].sourceContainer",
        id="volumes-from-itself",
    ),
]


@pytest.mark.parametrize(("request_", "error", "phrase", "field"), REJECTED)
def test_rejects(request_: Doc, error: type[AwsError], phrase: str, field: str) -> None:
    before = copy.deepcopy(request_)
    with pytest.raises(error) as caught:
        check_task_definition(request_)
    assert caught.value.code == error.code
    assert phrase in caught.value.message
    assert caught.value.message.endswith(f"(field: {field})")
    assert request_ == before


# -- what ECS writes back -----------------------------------------------------------


@pytest.mark.parametrize(
    ("given_", "stored"),
    [
        ("256", "256"),
        ("1 vCPU", "1024"),
        ("1vcpu", "1024"),
        (".25 vCPU", "256"),
        ("0.5 vCPU", "512"),
        ("2 VCPU", "2048"),
        (" 4096 ", "4096"),
    ],
    ids=lambda value: repr(value),
)
def test_task_cpu_is_stored_in_units(given_: str, stored: str) -> None:
    assert check_task_definition(task(cpu=given_))["cpu"] == stored


@pytest.mark.parametrize(
    ("given_", "stored"),
    [("512", "512"), ("2 GB", "2048"), ("2GB", "2048"), ("0.5 GB", "512"), ("1gb", "1024")],
    ids=lambda value: repr(value),
)
def test_task_memory_is_stored_in_mib(given_: str, stored: str) -> None:
    assert check_task_definition(task(memory=given_))["memory"] == stored


def test_fargate_sizes_may_be_written_in_vcpu_and_gb() -> None:
    checked = check_task_definition(fargate_task(cpu="1 vCPU", memory="2 GB"))
    assert (checked["cpu"], checked["memory"]) == ("1024", "2048")


def first_container(request_: Doc) -> Doc:
    result: Doc = check_task_definition(request_)["containerDefinitions"][0]
    return result


@pytest.mark.parametrize(
    ("request_", "key", "stored"),
    [
        pytest.param(task(), "essential", True, id="essential-defaults-to-true"),
        pytest.param(
            task(container(essential=True), sidecar(essential=False)),
            "essential",
            True,
            id="essential-kept",
        ),
        pytest.param(
            task(container(healthCheck=HEALTH)),
            "healthCheck",
            {**HEALTH, "interval": 30, "timeout": 5, "retries": 3},
            id="health-check-defaults-without-start-period",
        ),
        pytest.param(
            task(container(healthCheck={**HEALTH, "interval": 10, "startPeriod": 0})),
            "healthCheck",
            {**HEALTH, "interval": 10, "timeout": 5, "retries": 3, "startPeriod": 0},
            id="health-check-given-values-kept",
        ),
        pytest.param(
            task(ports({"containerPort": 80}), networkMode="awsvpc"),
            "portMappings",
            [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}],
            id="awsvpc-host-port-is-container-port",
        ),
        pytest.param(
            task(ports({"containerPort": 80, "hostPort": 0}), networkMode="awsvpc"),
            "portMappings",
            [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}],
            id="awsvpc-host-port-0-becomes-container-port",
        ),
        pytest.param(
            task(ports({"containerPort": 53, "protocol": "udp"}), networkMode="host"),
            "portMappings",
            [{"containerPort": 53, "hostPort": 53, "protocol": "udp"}],
            id="host-mode-host-port-is-container-port",
        ),
        pytest.param(
            task(ports({"containerPort": 80})),
            "portMappings",
            [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
            id="bridge-host-port-dynamic",
        ),
        pytest.param(
            task(ports({"containerPort": 80, "hostPort": 8080})),
            "portMappings",
            [{"containerPort": 80, "hostPort": 8080, "protocol": "tcp"}],
            id="bridge-host-port-kept",
        ),
        pytest.param(
            task(ports({"containerPortRange": "8000-8100"})),
            "portMappings",
            [{"containerPortRange": "8000-8100", "protocol": "tcp"}],
            id="port-range-gets-protocol-only",
        ),
        pytest.param(task(), "cpu", 0, id="container-cpu-defaults-to-0"),
        pytest.param(task(), "environment", [], id="environment-defaults-to-empty"),
        pytest.param(task(), "mountPoints", [], id="mount-points-default-to-empty"),
        pytest.param(task(), "volumesFrom", [], id="volumes-from-default-to-empty"),
    ],
)
def test_container_defaults_are_filled(request_: Doc, key: str, stored: Any) -> None:
    assert first_container(request_)[key] == stored


def test_task_level_defaults_are_filled_and_network_mode_is_not() -> None:
    checked = check_task_definition(task())
    assert checked["volumes"] == [] and checked["placementConstraints"] == []
    assert "networkMode" not in checked


def test_study_page_example_comes_back_normalised() -> None:
    checked = check_task_definition(STUDY_PAGE)
    assert checked["cpu"] == "256" and checked["memory"] == "512"
    assert checked["containerDefinitions"][0] == {
        "name": "web",
        "image": "nginx",
        "memory": 100,
        "cpu": 99,
        "essential": True,
        "portMappings": [],
        "environment": [],
        "mountPoints": [],
        "volumesFrom": [],
        "systemControls": [],
    }


def test_result_is_a_new_document() -> None:
    request_ = task(container(healthCheck=dict(HEALTH)))
    checked = check_task_definition(request_)
    checked["containerDefinitions"][0]["healthCheck"]["interval"] = 99
    assert "interval" not in request_["containerDefinitions"][0]["healthCheck"]


# -- task size parsing, as properties ------------------------------------------------


@given(st.integers(min_value=1, max_value=192))
def test_whole_vcpus_are_1024_units_each(vcpus: int) -> None:
    assert fargate.parse_cpu(f"{vcpus} vCPU") == vcpus * 1024
    assert fargate.parse_cpu(str(vcpus * 1024)) == vcpus * 1024


@given(st.integers(min_value=1, max_value=512))
def test_whole_gigabytes_are_1024_mib_each(gigabytes: int) -> None:
    assert fargate.parse_memory(f"{gigabytes} GB") == gigabytes * 1024
    assert fargate.parse_memory(f"{gigabytes}GB") == gigabytes * 1024


@pytest.mark.parametrize("text", ["", "vCPU", "1.5", "-1", "0", "1 GB", "1e3", "one"])
def test_cpu_that_is_not_a_whole_number_of_units_is_refused(text: str) -> None:
    assert fargate.parse_cpu(text) is None
