"""An ECS container definition, with RunTask's overrides, as a Docker ``ContainerSpec``.

What the ECS agent's ``createContainer`` / ``dockerConfig`` / ``dockerHostConfig`` do, as
one pure function. The engine binds the host-wide arguments once::

    spec_for = functools.partial(build_spec, config=config, options=SpecOptions(...))
    spec = spec_for(assignment, container_name, created)

Where a host is not an EC2 instance, these are the choices:

- **awsvpc**: there are no ENIs. A pause container (``PAUSE_CONTAINER``) on the default
  bridge publishes the task's ports on ``publish_ip``, on dynamic host ports unless the
  control plane reserved some (``host_ports``): tasks that use the same container port
  must not collide on one host. Every task container joins its network namespace
  (``container:<pause id>``), so they reach each other on localhost. Docker refuses dns,
  extra hosts, hostname and published ports on a joined container: the containers'
  dnsServers and extraHosts go on the pause container, whose /etc/hosts and
  resolv.conf they share. No pause image can be pulled offline, so unless
  ``SpecOptions.pause_image`` names one, the pause runs the task's first image with
  ``sh -c PAUSE_SCRIPT`` (that image needs a shell; busybox-based ones have one).
- **Task-level cpu/memory** (ECS_ENABLE_TASK_CPU_MEM_LIMIT): as the ECS agent does, the
  engine makes a cgroup per task (task_cgroup.py) and every container of the task,
  the pause container too, gets it as its cgroup parent; ``SpecOptions.cgroup_parent_of``
  says which tasks have one. Where none could be made (the systemd cgroup driver, a
  sandboxed or rootless engine), each container is capped at the task's size instead: a
  container without ``memory`` gets the task's memory as its hard limit, and every
  container gets ``nano_cpus`` worth the task's cpu (at most the host's CPUs). No single
  container exceeds the task; together they could, up to one task size each.
- **Ports on bridge** are published on 127.0.0.1 by default (DESIGN.md: reach containers
  through loopback); ``SpecOptions(publish_ip="0.0.0.0")`` publishes as ECS does.
- **Metadata endpoint**: see metadata.py for how containers reach the agent.

Refused with a ``SpecError`` naming the container and the field: privileged under
ECS_DISABLE_PRIVILEGED, a log driver outside ECS_AVAILABLE_LOGGING_DRIVERS, and what
needs AWS services (environmentFiles, secrets, log secretOptions, EFS/FSx volumes) or
what ``ContainerSpec`` cannot carry (linuxParameters.devices). Left out, as tuning with
no counterpart here: dnsSearchDomains, dockerSecurityOptions, systemControls,
interactive, pseudoTerminal, disableNetworking, maxSwap, swappiness. essential,
dependsOn, startTimeout and stopTimeout are the engine's.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from dockyard.agent.assignment import PAUSE_CONTAINER, Assignment
from dockyard.agent.config import AgentConfig
from dockyard.agent.metadata import METADATA_HOST, container_token, endpoint_base
from dockyard.agent.runtime import (
    ContainerSpec,
    EngineError,
    HealthCheckSpec,
    Mount,
    PortBinding,
)
from dockyard.ecs import fargate

# Exits at once on SIGTERM (as PID 1 it has no default handler) and otherwise sleeps.
PAUSE_SCRIPT: Final = "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"
MIN_CPU_SHARES: Final = 2  # the kernel's floor; the agent raises cpu 0 to it
MIB: Final = 1 << 20
NETWORK_MODES: Final = ("bridge", "host", "none", "awsvpc")
LABEL_PREFIX: Final = "com.amazonaws.ecs."
_NOT_IN_DOCKER_NAMES = re.compile(r"[^a-zA-Z0-9_.-]")
_UNSUPPORTED: Final = (
    ("environmentFiles", "environment files live in S3"),
    ("secrets", "secrets come from Secrets Manager or SSM Parameter Store"),
)

# (container name, container port, protocol) -> the host port the control plane reserved
HostPorts = Mapping[tuple[str, int, str], int]
Doc = Mapping[str, Any]


class SpecError(EngineError):
    """The definition asks for what this host will not or cannot do. ``reason`` reads
    like the agent's stoppedReason for a container that could not be created."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"CannotCreateContainerError: {problem}")


@dataclass(frozen=True)
class SpecOptions:
    """Facts about this host and agent, the same for every task."""

    metadata_port: int | None = None  # None: no metadata endpoint variables
    publish_ip: str = "127.0.0.1"
    pause_image: str | None = None  # None: the task's first image running PAUSE_SCRIPT
    host_cpus: int | None = None  # Docker refuses nano_cpus beyond the host's CPUs
    # Task id -> the task's cgroup, if the engine made one (task_cgroup.TaskCgroups.parent).
    cgroup_parent_of: Callable[[str], str | None] | None = None


DEFAULT_OPTIONS: Final = SpecOptions()


@dataclass(frozen=True)
class VolumeSpec:
    """A Docker volume the engine creates before the task's containers."""

    name: str
    driver: str = "local"
    options: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    task_scoped: bool = True  # removed with the task; shared volumes outlive it


def build_spec(
    assignment: Assignment,
    container_name: str,
    created: Mapping[str, str],
    config: AgentConfig,
    host_ports: HostPorts | None = None,
    *,
    options: SpecOptions = DEFAULT_OPTIONS,
) -> ContainerSpec:
    """The spec for ``container_name`` (or ``PAUSE_CONTAINER``); ``created`` maps the
    task's already-created containers to their runtime ids. Raises ``SpecError``."""
    mode = network_mode(assignment)
    reserved = host_ports or {}
    cgroup_parent = _cgroup_parent(assignment, config, options)
    if container_name == PAUSE_CONTAINER:
        if mode != "awsvpc":
            raise SpecError(f"a pause container is only for awsvpc tasks, not {mode}")
        return _pause_spec(assignment, config, reserved, options, cgroup_parent)
    container = _container_definition(assignment, container_name)
    override = _container_override(assignment.overrides, container_name)
    _refuse_unsupported(container, override, config)
    log = container.get("logConfiguration")
    return ContainerSpec(
        name=docker_name(assignment, container_name),
        image=container["image"],
        labels={
            **(container.get("dockerLabels") or {}),
            **agent_labels(assignment, container_name, config),
        },
        command=_strings(override.get("command") or container.get("command")),
        entrypoint=_strings(container.get("entryPoint")),
        environment=_environment(assignment, container, override, mode, options),
        working_dir=container.get("workingDirectory"),
        user=container.get("user"),
        mounts=_mounts(assignment, container),
        volumes_from=tuple(
            _runtime_id(created, v["sourceContainer"], container_name, "volumesFrom")
            + (":ro" if v.get("readOnly") else ":rw")
            for v in container.get("volumesFrom") or ()
        ),
        read_only_root=bool(container.get("readonlyRootFilesystem")),
        ulimits=tuple(
            (u["name"], u["softLimit"], u["hardLimit"]) for u in container.get("ulimits") or ()
        ),
        privileged=bool(container.get("privileged")),
        log_driver=log["logDriver"] if log else None,
        log_options=dict(log.get("options") or {}) if log else {},
        health_check=_health_check(container),
        **_network(container, created, reserved, mode, options),
        **_resources(assignment, container, override, config, options, cgroup_parent),
        **_linux_parameters(container),
    )


def volumes_to_create(assignment: Assignment) -> list[VolumeSpec]:
    """Task-scoped Docker volumes (named ``ecs-<task id>-<volume>``), and shared ones
    with ``autoprovision``. A shared volume without it must already exist."""
    wanted = []
    for volume in assignment.definition.get("volumes") or ():
        source, kind = volume_source(assignment, volume)
        config = volume.get("dockerVolumeConfiguration") or {}
        shared = config.get("scope") == "shared"
        if kind != "volume" or (shared and not config.get("autoprovision")):
            continue
        labels = dict(config.get("labels") or {})
        if not shared:  # lets the agent find leftovers after a crash
            labels[f"{LABEL_PREFIX}task-arn"] = assignment.task_arn
        wanted.append(
            VolumeSpec(
                name=source,
                driver=config.get("driver") or "local",
                options=dict(config.get("driverOpts") or {}),
                labels=labels,
                task_scoped=not shared,
            )
        )
    return wanted


def volume_source(assignment: Assignment, volume: Doc) -> tuple[str, str]:
    """(host path, "bind") or (Docker volume name, "volume") for a task volume."""
    name = volume["name"]
    for key in ("efsVolumeConfiguration", "fsxWindowsFileServerVolumeConfiguration"):
        if volume.get(key):
            raise SpecError(f"volume '{name}': {key} needs AWS storage; this host has none")
    host_path = (volume.get("host") or {}).get("sourcePath")
    if host_path:
        return host_path, "bind"
    config = volume.get("dockerVolumeConfiguration") or {}
    if config.get("scope") == "shared":
        return name, "volume"
    # Task scope, and a "host" without a path: ECS gives such a volume to the task alone.
    return f"ecs-{task_id(assignment.task_arn)}-{name}", "volume"


def network_mode(assignment: Assignment) -> str:
    mode = assignment.network_mode
    if mode not in NETWORK_MODES:
        raise SpecError(f"network mode '{mode}' is not supported; use one of {NETWORK_MODES}")
    return mode


def agent_labels(
    assignment: Assignment, container_name: str, config: AgentConfig
) -> dict[str, str]:
    """The labels the ECS agent puts on every container; adoption after a crash finds
    containers by them."""
    return {
        f"{LABEL_PREFIX}cluster": config.cluster,
        f"{LABEL_PREFIX}container-name": container_name,
        f"{LABEL_PREFIX}task-arn": assignment.task_arn,
        f"{LABEL_PREFIX}task-definition-family": assignment.family,
        f"{LABEL_PREFIX}task-definition-version": str(assignment.revision),
    }


def docker_name(assignment: Assignment, container_name: str) -> str:
    """``ecs-<family>-<revision>-<container>-<20 hex>``, unique on the host like the agent's."""
    clean = _NOT_IN_DOCKER_NAMES.sub("", container_name)
    return f"ecs-{assignment.family}-{assignment.revision}-{clean}-{secrets.token_hex(10)}"


def task_id(task_arn: str) -> str:
    return task_arn.rsplit("/", 1)[-1]


def task_size(assignment: Assignment) -> tuple[int | None, int | None]:
    """The task's (cpu units, memory MiB), RunTask's overrides first; None where unset."""
    sizes: list[int | None] = []
    for key, parse in (("cpu", fargate.parse_cpu), ("memory", fargate.parse_memory)):
        text = assignment.overrides.get(key) or assignment.definition.get(key)
        value = parse(str(text)) if text else None
        if text and value is None:
            raise SpecError(f"task {key} {text!r} is not a size this agent understands")
        sizes.append(value)
    return sizes[0], sizes[1]


# -- the parts of a spec ------------------------------------------------------------


def _pause_spec(
    assignment: Assignment,
    config: AgentConfig,
    reserved: HostPorts,
    options: SpecOptions,
    cgroup_parent: str | None,
) -> ContainerSpec:
    containers = assignment.definition["containerDefinitions"]
    own_image = options.pause_image is None
    extra_hosts = [host for c in containers for host in _extra_hosts(c)]
    if options.metadata_port is not None:
        extra_hosts.append(f"{METADATA_HOST}:host-gateway")
    return ContainerSpec(
        name=docker_name(assignment, PAUSE_CONTAINER),
        image=options.pause_image or containers[0]["image"],
        labels=agent_labels(assignment, PAUSE_CONTAINER, config),
        entrypoint=("sh", "-c") if own_image else None,
        command=(PAUSE_SCRIPT,) if own_image else None,
        network_mode="bridge",
        ports=tuple(
            port
            for c in containers
            for port in _bindings(c, reserved, options.publish_ip, dynamic=True)
        ),
        extra_hosts=_unique(extra_hosts),
        dns_servers=_unique(d for c in containers for d in c.get("dnsServers") or ()),
        cgroup_parent=cgroup_parent,
    )


def _network(
    container: Doc, created: Mapping[str, str], reserved: HostPorts, mode: str, options: SpecOptions
) -> dict[str, Any]:
    name = container["name"]
    if mode == "awsvpc":
        pause = _runtime_id(created, PAUSE_CONTAINER, name, "its network")
        return {"network_mode": f"container:{pause}"}
    extra_hosts = _extra_hosts(container)
    spec: dict[str, Any] = {
        "network_mode": mode,
        "hostname": container.get("hostname"),
        "dns_servers": tuple(container.get("dnsServers") or ()),
    }
    if mode == "bridge":
        spec["ports"] = _bindings(container, reserved, options.publish_ip, dynamic=False)
        spec["links"] = tuple(_link(link, created, name) for link in container.get("links") or ())
        if options.metadata_port is not None:
            extra_hosts.append(f"{METADATA_HOST}:host-gateway")
    spec["extra_hosts"] = _unique(extra_hosts)
    return spec


def _bindings(
    container: Doc, reserved: HostPorts, ip: str, *, dynamic: bool
) -> tuple[PortBinding, ...]:
    """Published ports; ``dynamic`` ignores the definition's host ports (awsvpc stores
    the container port there, which tasks on one host would fight over)."""
    bindings = []
    for mapping in container.get("portMappings") or ():
        protocol = mapping.get("protocol") or "tcp"
        if "containerPortRange" in mapping:
            first, _, last = mapping["containerPortRange"].partition("-")
            ports = [(port, 0) for port in range(int(first), int(last) + 1)]
        else:
            port = mapping["containerPort"]
            ports = [(port, 0 if dynamic else mapping.get("hostPort") or 0)]
        for port, host_port in ports:
            host_port = reserved.get((container["name"], port, protocol), host_port)
            bindings.append(PortBinding(port, host_port, protocol, ip))
    return tuple(bindings)


def _link(link: str, created: Mapping[str, str], name: str) -> str:
    # The alias defaults to the ECS name: Docker's default, the runtime name, is random.
    target, _, alias = link.partition(":")
    return f"{_runtime_id(created, target, name, 'links')}:{alias or target}"


def _environment(
    assignment: Assignment, container: Doc, override: Doc, mode: str, options: SpecOptions
) -> dict[str, str]:
    env = {e["name"]: e.get("value", "") for e in container.get("environment") or ()}
    env.update({e["name"]: e.get("value", "") for e in override.get("environment") or ()})
    env["AWS_EXECUTION_ENV"] = "AWS_ECS_EC2"
    if options.metadata_port is not None:
        base = endpoint_base(options.metadata_port, mode)
        token = container_token(assignment.task_arn, container["name"])
        env["ECS_CONTAINER_METADATA_URI_V4"] = f"{base}/v4/{token}"
        env["ECS_CONTAINER_METADATA_URI"] = f"{base}/v3/{token}"
    return env


def _resources(
    assignment: Assignment,
    container: Doc,
    override: Doc,
    config: AgentConfig,
    options: SpecOptions,
    cgroup_parent: str | None,
) -> dict[str, Any]:
    def pick(key: str) -> Any:
        return override[key] if override.get(key) is not None else container.get(key)

    cpu, memory, reservation = pick("cpu") or 0, pick("memory"), pick("memoryReservation")
    nano_cpus = None
    if config.task_cpu_mem_limit and cgroup_parent is None:  # the fallback: see the top
        task_cpu, task_memory = task_size(assignment)
        if memory is None:
            memory = task_memory
        if task_cpu is not None:
            nano_cpus = task_cpu * 10**9 // 1024
            if options.host_cpus is not None:
                nano_cpus = min(nano_cpus, options.host_cpus * 10**9)
    if memory is not None and reservation is not None and reservation > memory:
        raise SpecError(
            f"container '{container['name']}': memoryReservation ({reservation} MiB) is "
            f"more than its memory limit ({memory} MiB)"
        )
    return {
        "cpu_shares": max(int(cpu), MIN_CPU_SHARES),
        "memory_bytes": memory * MIB if memory else None,
        "memory_reservation_bytes": reservation * MIB if reservation else None,
        "nano_cpus": nano_cpus,
        "cgroup_parent": cgroup_parent,
    }


def _cgroup_parent(assignment: Assignment, config: AgentConfig, options: SpecOptions) -> str | None:
    if not config.task_cpu_mem_limit or options.cgroup_parent_of is None:
        return None
    return options.cgroup_parent_of(task_id(assignment.task_arn))


def _mounts(assignment: Assignment, container: Doc) -> tuple[Mount, ...]:
    volumes = {v["name"]: v for v in assignment.definition.get("volumes") or ()}
    mounts = []
    for point in container.get("mountPoints") or ():
        volume = volumes.get(point.get("sourceVolume"))
        if volume is None:
            raise SpecError(
                f"container '{container['name']}' mounts volume "
                f"'{point.get('sourceVolume')}', which the task does not declare"
            )
        source, kind = volume_source(assignment, volume)
        read_only = bool(point.get("readOnly"))
        mounts.append(Mount(point["containerPath"], source, kind, read_only))
    for tmpfs in (container.get("linuxParameters") or {}).get("tmpfs") or ():
        opts = {"size": f"{tmpfs['size']}m"} | {o: "" for o in tmpfs.get("mountOptions") or ()}
        mounts.append(Mount(tmpfs["containerPath"], "", "tmpfs", options=opts))
    return tuple(mounts)


def _linux_parameters(container: Doc) -> dict[str, Any]:
    params = container.get("linuxParameters") or {}
    capabilities = params.get("capabilities") or {}
    shm = params.get("sharedMemorySize")
    return {
        "init": bool(params.get("initProcessEnabled")),
        "cap_add": tuple(capabilities.get("add") or ()),
        "cap_drop": tuple(capabilities.get("drop") or ()),
        "shm_size_bytes": shm * MIB if shm else None,
    }


def _health_check(container: Doc) -> HealthCheckSpec | None:
    check = container.get("healthCheck")
    if not check:
        return None
    command = tuple(check["command"])
    if command[0] not in ("CMD", "CMD-SHELL", "NONE"):
        raise SpecError(
            f"container '{container['name']}': healthCheck.command must start with CMD or "
            f"CMD-SHELL, got {command[0]!r}"
        )
    return HealthCheckSpec(
        test=command,
        interval=float(check.get("interval", 30)),
        timeout=float(check.get("timeout", 5)),
        retries=int(check.get("retries", 3)),
        start_period=float(check.get("startPeriod") or 0),
    )


# -- checks and lookups ---------------------------------------------------------------


def _refuse_unsupported(container: Doc, override: Doc, config: AgentConfig) -> None:
    name = container["name"]
    for key, why in _UNSUPPORTED:
        if container.get(key) or override.get(key):
            raise SpecError(f"container '{name}': {key} are not supported here ({why})")
    if container.get("privileged") and config.privileged_disabled:
        raise SpecError(
            f"container '{name}' asks to be privileged, and privileged containers are "
            "disabled on this instance (ECS_DISABLE_PRIVILEGED=true)"
        )
    if (container.get("linuxParameters") or {}).get("devices"):
        raise SpecError(f"container '{name}': linuxParameters.devices are not supported here")
    log = container.get("logConfiguration")
    if log:
        driver = log["logDriver"]
        if driver not in config.available_logging_drivers:
            allowed = json.dumps(list(config.available_logging_drivers))
            raise SpecError(
                f"container '{name}' logs with '{driver}', which this instance does not "
                f"offer (ECS_AVAILABLE_LOGGING_DRIVERS={allowed})"
            )
        if log.get("secretOptions"):
            raise SpecError(f"container '{name}': logConfiguration.secretOptions are not supported")


def _container_definition(assignment: Assignment, name: str) -> Doc:
    for container in assignment.definition["containerDefinitions"]:
        if container["name"] == name:
            return dict(container)
    raise SpecError(
        f"task definition {assignment.family}:{assignment.revision} has no container '{name}'"
    )


def _container_override(overrides: Doc, name: str) -> Doc:
    for override in overrides.get("containerOverrides") or ():
        if override.get("name") == name:
            return dict(override)
    return {}


def _runtime_id(created: Mapping[str, str], target: str, name: str, why: str) -> str:
    if target not in created:
        raise SpecError(f"container '{name}' needs '{target}' for {why}, and it is not created yet")
    return created[target]


def _extra_hosts(container: Doc) -> list[str]:
    return [f"{h['hostname']}:{h['ipAddress']}" for h in container.get("extraHosts") or ()]


def _strings(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return tuple(value) if value else None


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
