"""docker_spec: an ECS container definition (normalised as RegisterTaskDefinition stores
it) plus RunTask overrides becomes the ContainerSpec the runtime creates."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

from dockyard.agent.assignment import PAUSE_CONTAINER, Assignment
from dockyard.agent.config import AgentConfig
from dockyard.agent.docker_spec import (
    MIB,
    PAUSE_SCRIPT,
    HostPorts,
    SpecError,
    SpecOptions,
    VolumeSpec,
    build_spec,
    volumes_to_create,
)
from dockyard.agent.fake_runtime import FakeRuntime
from dockyard.agent.metadata import container_token
from dockyard.agent.runtime import ContainerSpec, HealthCheckSpec, Mount, PortBinding
from dockyard.agent.status import TaskStatus
from dockyard.ecs.taskdef_rules import check_task_definition

TASK_ID = "0123456789abcdef0123456789abcdef"
TASK_ARN = f"arn:aws:ecs:us-east-1:000000000000:task/default/{TASK_ID}"
CLUSTER_ARN = "arn:aws:ecs:us-east-1:000000000000:cluster/default"
CONFIG = AgentConfig(cluster="default")
IMAGE = "127.0.0.1:5000/busybox:latest"


# -- factories --------------------------------------------------------------------


def container(name: str = "web", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "memory": 128, **fields}


def task(
    *containers: dict[str, Any], overrides: Mapping[str, Any] | None = None, **fields: Any
) -> Assignment:
    """An assignment whose definition went through RegisterTaskDefinition's rules."""
    definition = check_task_definition(
        {"family": "web", "containerDefinitions": list(containers) or [container()], **fields}
    )
    return Assignment(
        task_arn=TASK_ARN,
        cluster_arn=CLUSTER_ARN,
        family="web",
        revision=3,
        desired_status=TaskStatus.RUNNING,
        definition=definition,
        overrides=dict(overrides or {}),
    )


def spec(
    assignment: Assignment,
    name: str = "web",
    created: Mapping[str, str] | None = None,
    config: AgentConfig = CONFIG,
    host_ports: HostPorts | None = None,
    **options: Any,
) -> ContainerSpec:
    return build_spec(
        assignment, name, created or {}, config, host_ports, options=SpecOptions(**options)
    )


# -- one field at a time ----------------------------------------------------------

FIELDS = [
    pytest.param({}, {"image": IMAGE, "command": None, "entrypoint": None}, id="image"),
    pytest.param(
        {"command": ["httpd", "-f"], "entryPoint": ["/bin/sh", "-c"]},
        {"command": ("httpd", "-f"), "entrypoint": ("/bin/sh", "-c")},
        id="command-entryPoint",
    ),
    pytest.param(
        {"workingDirectory": "/srv", "user": "1000:1000", "hostname": "web1"},
        {"working_dir": "/srv", "user": "1000:1000", "hostname": "web1"},
        id="workingDirectory-user-hostname",
    ),
    pytest.param({"cpu": 0}, {"cpu_shares": 2}, id="cpu-0-is-2-shares"),
    pytest.param({"cpu": 512}, {"cpu_shares": 512}, id="cpu-shares"),
    pytest.param(
        {"memory": 256, "memoryReservation": 64},
        {"memory_bytes": 256 * MIB, "memory_reservation_bytes": 64 * MIB},
        id="memory-hard-and-soft",
    ),
    pytest.param(
        {"memory": None, "memoryReservation": 64},
        {"memory_bytes": None, "memory_reservation_bytes": 64 * MIB},
        id="memoryReservation-only",
    ),
    pytest.param(
        {"readonlyRootFilesystem": True, "privileged": True},
        {"read_only_root": True, "privileged": True},
        id="readonly-privileged",
    ),
    pytest.param(
        {"ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}]},
        {"ulimits": (("nofile", 1024, 4096),)},
        id="ulimits",
    ),
    pytest.param(
        {
            "extraHosts": [{"hostname": "db.test", "ipAddress": "10.0.0.5"}],
            "dnsServers": ["10.0.0.2"],
        },
        {"extra_hosts": ("db.test:10.0.0.5",), "dns_servers": ("10.0.0.2",)},
        id="extraHosts-dnsServers",
    ),
    pytest.param(
        {
            "linuxParameters": {
                "initProcessEnabled": True,
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]},
                "sharedMemorySize": 64,
                "tmpfs": [{"containerPath": "/run", "size": 16, "mountOptions": ["noexec"]}],
            }
        },
        {
            "init": True,
            "cap_add": ("NET_ADMIN",),
            "cap_drop": ("MKNOD",),
            "shm_size_bytes": 64 * MIB,
            "mounts": (Mount("/run", "", "tmpfs", options={"size": "16m", "noexec": ""}),),
        },
        id="linuxParameters",
    ),
    pytest.param(
        {"logConfiguration": {"logDriver": "json-file", "options": {"max-size": "1m"}}},
        {"log_driver": "json-file", "log_options": {"max-size": "1m"}},
        id="logConfiguration",
    ),
    pytest.param(
        {"healthCheck": {"command": ["CMD-SHELL", "wget -q localhost"], "startPeriod": 10}},
        {"health_check": HealthCheckSpec(("CMD-SHELL", "wget -q localhost"), 30, 5, 3, 10)},
        id="healthCheck-defaults-filled",
    ),
]


@pytest.mark.parametrize(("fields", "expected"), FIELDS)
def test_a_container_definition_field_maps_to_docker(
    fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    # None removes the factory's default.
    definition = {k: v for k, v in container(**fields).items() if v is not None}
    built = spec(task(definition))
    assert {key: getattr(built, key) for key in expected} == expected


def test_environment_overrides_and_agent_variables() -> None:
    assignment = task(
        container(environment=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
        overrides={
            "containerOverrides": [{"name": "web", "environment": [{"name": "B", "value": "3"}]}]
        },
    )
    built = spec(assignment, metadata_port=51679)
    token = container_token(TASK_ARN, "web")
    assert built.environment == {
        "A": "1",
        "B": "3",
        "AWS_EXECUTION_ENV": "AWS_ECS_EC2",
        "ECS_CONTAINER_METADATA_URI_V4": f"http://host.docker.internal:51679/v4/{token}",
        "ECS_CONTAINER_METADATA_URI": f"http://host.docker.internal:51679/v3/{token}",
    }
    # Bridge containers resolve host.docker.internal to the bridge gateway.
    assert built.extra_hosts == ("host.docker.internal:host-gateway",)


def test_host_mode_containers_reach_the_metadata_endpoint_on_loopback() -> None:
    built = spec(task(container(), networkMode="host"), metadata_port=51679)
    assert built.environment["ECS_CONTAINER_METADATA_URI_V4"].startswith(
        "http://127.0.0.1:51679/v4/"
    )
    assert built.extra_hosts == ()


def test_overrides_replace_command_cpu_and_memory() -> None:
    override = {"name": "web", "command": ["echo", "hi"], "cpu": 256, "memory": 512}
    built = spec(
        task(
            container(command=["sleep", "1"], cpu=128), overrides={"containerOverrides": [override]}
        )
    )
    assert (built.command, built.cpu_shares, built.memory_bytes) == (("echo", "hi"), 256, 512 * MIB)


def test_an_override_below_the_reservation_is_refused() -> None:
    assignment = task(
        container(memory=None, memoryReservation=256),
        overrides={"containerOverrides": [{"name": "web", "memory": 128}]},
    )
    with pytest.raises(SpecError, match=r"memoryReservation \(256 MiB\) is more than"):
        spec(assignment)


# -- task-level limits ------------------------------------------------------------

TASK_LIMITS = [
    pytest.param(CONFIG, {}, 2, (512 * MIB, 500_000_000), id="task-size-caps-each-container"),
    pytest.param(CONFIG, {"cpu": "2048"}, 2, (512 * MIB, 2_000_000_000), id="task-cpu-override"),
    pytest.param(CONFIG, {"cpu": "4096"}, 2, (512 * MIB, 2_000_000_000), id="capped-at-host"),
    pytest.param(CONFIG, {"memory": "1 GB"}, None, (1024 * MIB, 500_000_000), id="memory-ovr"),
    pytest.param(
        AgentConfig(task_cpu_mem_limit=False),
        {},
        2,
        (None, None),
        id="ECS_ENABLE_TASK_CPU_MEM_LIMIT=false",
    ),
]


@pytest.mark.parametrize(("config", "overrides", "host_cpus", "expected"), TASK_LIMITS)
def test_task_cpu_and_memory_limit_the_containers(
    config: AgentConfig,
    overrides: dict[str, Any],
    host_cpus: int | None,
    expected: tuple[int | None, int | None],
) -> None:
    assignment = task(
        container(memory=None, memoryReservation=64), cpu="512", memory="512", overrides=overrides
    )
    built = spec(assignment, config=config, host_cpus=host_cpus)
    assert (built.memory_bytes, built.nano_cpus) == expected
    assert built.memory_reservation_bytes == 64 * MIB


def test_a_container_memory_stays_under_the_task_memory() -> None:
    built = spec(task(container(memory=128), cpu="256", memory="512"))
    assert built.memory_bytes == 128 * MIB


@pytest.mark.parametrize("name", ["web", PAUSE_CONTAINER])
def test_with_a_task_cgroup_every_container_goes_in_it_uncapped(name: str) -> None:
    parents = {TASK_ID: f"/ecs/{TASK_ID}"}
    assignment = task(
        container(memory=None, memoryReservation=64), cpu="512", memory="512", networkMode="awsvpc"
    )
    created = {PAUSE_CONTAINER: "pause-id"}
    built = spec(assignment, name, created, cgroup_parent_of=parents.get, host_cpus=2)
    assert built.cgroup_parent == f"/ecs/{TASK_ID}"
    assert (built.memory_bytes, built.nano_cpus) == (None, None)  # the cgroup limits the task


def test_without_a_task_cgroup_the_fallback_applies() -> None:
    assignment = task(container(memory=None), cpu="512", memory="512")
    built = spec(assignment, cgroup_parent_of=lambda task_id: None)
    assert built.cgroup_parent is None
    assert built.memory_bytes == 512 * MIB


def test_a_task_cgroup_is_ignored_when_task_limits_are_off() -> None:
    built = spec(
        task(container(), cpu="512", memory="512"),
        config=AgentConfig(task_cpu_mem_limit=False),
        cgroup_parent_of=lambda task_id: f"/ecs/{task_id}",
    )
    assert built.cgroup_parent is None


# -- network modes ----------------------------------------------------------------


def test_bridge_publishes_on_loopback_dynamic_or_fixed() -> None:
    web = container(
        portMappings=[
            {"containerPort": 80},
            {"containerPort": 53, "hostPort": 5353, "protocol": "udp"},
        ]
    )
    built = spec(task(web))
    assert built.network_mode == "bridge"
    assert built.ports == (
        PortBinding(80, 0, "tcp", "127.0.0.1"),
        PortBinding(53, 5353, "udp", "127.0.0.1"),
    )


def test_reserved_host_ports_and_publish_ip() -> None:
    web = container(portMappings=[{"containerPort": 80}, {"containerPortRange": "9000-9001"}])
    built = spec(task(web), host_ports={("web", 80, "tcp"): 32800}, publish_ip="0.0.0.0")
    assert built.ports == (
        PortBinding(80, 32800, "tcp", "0.0.0.0"),
        PortBinding(9000, 0, "tcp", "0.0.0.0"),
        PortBinding(9001, 0, "tcp", "0.0.0.0"),
    )


@pytest.mark.parametrize("mode", ["host", "none"])
def test_host_and_none_publish_nothing(mode: str) -> None:
    ports = [{"containerPort": 80}] if mode == "host" else []
    built = spec(task(container(portMappings=ports, hostname="h"), networkMode=mode))
    assert (built.network_mode, built.ports, built.hostname) == (mode, (), "h")


def test_awsvpc_containers_join_the_pause_container() -> None:
    assignment = task(
        container("web", portMappings=[{"containerPort": 80}], dnsServers=["10.0.0.2"]),
        container(
            "sidecar",
            portMappings=[{"containerPort": 9090}],
            extraHosts=[{"hostname": "db.test", "ipAddress": "10.0.0.5"}],
        ),
        networkMode="awsvpc",
    )
    pause = spec(assignment, PAUSE_CONTAINER, metadata_port=51679)
    assert pause.network_mode == "bridge"
    assert pause.image == IMAGE  # the task's first image: nothing to pull
    assert (pause.entrypoint, pause.command) == (("sh", "-c"), (PAUSE_SCRIPT,))
    # awsvpc stores hostPort = containerPort; tasks on one host must not collide: dynamic.
    assert pause.ports == (PortBinding(80, 0), PortBinding(9090, 0))
    assert pause.dns_servers == ("10.0.0.2",)
    assert pause.extra_hosts == ("db.test:10.0.0.5", "host.docker.internal:host-gateway")
    assert pause.labels["com.amazonaws.ecs.container-name"] == PAUSE_CONTAINER
    assert pause.name.startswith("ecs-web-3-internalecspause-")

    web = spec(assignment, "web", {PAUSE_CONTAINER: "p4use"}, metadata_port=51679)
    assert web.network_mode == "container:p4use"
    assert (web.ports, web.dns_servers, web.extra_hosts, web.hostname) == ((), (), (), None)
    assert web.environment["ECS_CONTAINER_METADATA_URI_V4"].startswith(
        "http://host.docker.internal:51679/v4/"
    )


def test_a_configured_pause_image_runs_its_own_command() -> None:
    pause = spec(task(container(), networkMode="awsvpc"), PAUSE_CONTAINER, pause_image="pause:1")
    assert (pause.image, pause.entrypoint, pause.command) == ("pause:1", None, None)


def test_awsvpc_task_shares_localhost_on_the_fake_runtime() -> None:
    """The specs, in the engine's order, are accepted by the runtime."""
    assignment = task(container("web"), container("client"), networkMode="awsvpc")
    runtime = FakeRuntime()
    runtime.add_image(IMAGE)
    created: dict[str, str] = {}
    for name in (PAUSE_CONTAINER, "web", "client"):
        created[name] = runtime.create(spec(assignment, name, created))
        runtime.start(created[name])
    assert runtime.spec(created["client"]).network_mode == f"container:{created[PAUSE_CONTAINER]}"


def test_pause_is_only_for_awsvpc() -> None:
    with pytest.raises(SpecError, match="only for awsvpc"):
        spec(task(), PAUSE_CONTAINER)


# -- links and volumes ------------------------------------------------------------


def test_links_name_the_created_container_and_keep_the_alias() -> None:
    assignment = task(
        container("db"), container("app", links=["db:database", "cache"]), container("cache")
    )
    built = spec(assignment, "app", {"db": "id-db", "cache": "id-cache"})
    assert built.links == ("id-db:database", "id-cache:cache")


def test_a_link_to_a_container_not_yet_created_is_an_error() -> None:
    assignment = task(container("db"), container("app", links=["db"]))
    with pytest.raises(SpecError, match="needs 'db' for links"):
        spec(assignment, "app")


VOLUMES = [
    pytest.param(
        {"host": {"sourcePath": "/srv/data"}},
        Mount("/data", "/srv/data", "bind"),
        None,
        id="host-path",
    ),
    pytest.param(
        {"dockerVolumeConfiguration": {"scope": "task", "driver": "local", "labels": {"a": "b"}}},
        Mount("/data", f"ecs-{TASK_ID}-data", "volume"),
        VolumeSpec(
            f"ecs-{TASK_ID}-data", labels={"a": "b", "com.amazonaws.ecs.task-arn": TASK_ARN}
        ),
        id="task-scope",
    ),
    pytest.param(
        {},
        Mount("/data", f"ecs-{TASK_ID}-data", "volume"),
        VolumeSpec(f"ecs-{TASK_ID}-data", labels={"com.amazonaws.ecs.task-arn": TASK_ARN}),
        id="empty-host-is-task-scope",
    ),
    pytest.param(
        {
            "dockerVolumeConfiguration": {
                "scope": "shared",
                "autoprovision": True,
                "driverOpts": {"type": "tmpfs", "device": "tmpfs"},
            }
        },
        Mount("/data", "data", "volume"),
        VolumeSpec("data", options={"type": "tmpfs", "device": "tmpfs"}, task_scoped=False),
        id="shared-autoprovision",
    ),
    pytest.param(
        {"dockerVolumeConfiguration": {"scope": "shared"}},
        Mount("/data", "data", "volume"),
        None,
        id="shared-must-exist",
    ),
]


@pytest.mark.parametrize(("volume", "mount", "created"), VOLUMES)
def test_volumes_mount_and_create(
    volume: dict[str, Any], mount: Mount, created: VolumeSpec | None
) -> None:
    assignment = task(
        container(mountPoints=[{"sourceVolume": "data", "containerPath": "/data"}]),
        volumes=[{"name": "data", **volume}],
    )
    assert spec(assignment).mounts == (mount,)
    assert volumes_to_create(assignment) == ([created] if created else [])


def test_read_only_mount_points_and_volumes_from() -> None:
    assignment = task(
        container("data"),
        container(
            "web",
            mountPoints=[{"sourceVolume": "v", "containerPath": "/v", "readOnly": True}],
            volumesFrom=[{"sourceContainer": "data", "readOnly": True}],
        ),
        volumes=[{"name": "v", "host": {"sourcePath": "/srv/v"}}],
    )
    built = spec(assignment, "web", {"data": "id-data"})
    assert built.mounts == (Mount("/v", "/srv/v", "bind", read_only=True),)
    assert built.volumes_from == ("id-data:ro",)


# -- labels and names --------------------------------------------------------------


def test_labels_are_the_agents_over_the_users() -> None:
    labels = {"team": "a", "com.amazonaws.ecs.cluster": "spoofed"}
    built = spec(task(container(dockerLabels=labels)))
    assert built.labels == {
        "team": "a",
        "com.amazonaws.ecs.cluster": "default",
        "com.amazonaws.ecs.container-name": "web",
        "com.amazonaws.ecs.task-arn": TASK_ARN,
        "com.amazonaws.ecs.task-definition-family": "web",
        "com.amazonaws.ecs.task-definition-version": "3",
    }


def test_runtime_name_is_unique_like_the_agents() -> None:
    first, second = spec(task()).name, spec(task()).name
    assert re.fullmatch(r"ecs-web-3-web-[0-9a-f]{20}", first)
    assert first != second


# -- refusals -----------------------------------------------------------------------

REFUSALS = [
    pytest.param(
        {"privileged": True},
        AgentConfig(privileged_disabled=True),
        r"privileged.*ECS_DISABLE_PRIVILEGED=true",
        id="privileged-disabled",
    ),
    pytest.param(
        {"logConfiguration": {"logDriver": "awslogs"}},
        CONFIG,
        r"'awslogs'.*ECS_AVAILABLE_LOGGING_DRIVERS=\[\"json-file\", \"none\"\]",
        id="logging-driver-not-available",
    ),
    pytest.param(
        {"secrets": [{"name": "A", "valueFrom": "arn:x"}]},
        CONFIG,
        "secrets are not supported",
        id="secrets",
    ),
    pytest.param(
        {"environmentFiles": [{"value": "arn:aws:s3:::b/f.env", "type": "s3"}]},
        CONFIG,
        "environmentFiles are not supported",
        id="environmentFiles",
    ),
    pytest.param(
        {"healthCheck": {"command": ["curl", "localhost"]}},
        CONFIG,
        "must start with CMD",
        id="healthCheck-without-CMD",
    ),
]


@pytest.mark.parametrize(("fields", "config", "message"), REFUSALS)
def test_refusals_say_what_and_why(
    fields: dict[str, Any], config: AgentConfig, message: str
) -> None:
    with pytest.raises(SpecError, match=message) as refused:
        spec(task(container(**fields)), config=config)
    assert "'web'" in refused.value.reason


def test_efs_volumes_are_refused() -> None:
    assignment = task(
        container(mountPoints=[{"sourceVolume": "efs", "containerPath": "/efs"}]),
        volumes=[{"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}],
    )
    with pytest.raises(SpecError, match="efsVolumeConfiguration"):
        spec(assignment)


def test_a_refusal_reads_like_a_stopped_reason() -> None:
    with pytest.raises(SpecError) as refused:
        spec(task(container(secrets=[{"name": "A", "valueFrom": "arn:x"}])))
    assert refused.value.reason.startswith("CannotCreateContainerError: container 'web'")
