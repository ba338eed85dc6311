"""What the agent tells RegisterContainerInstance, and the identity it keeps.

Pure: the host's facts (``EngineInfo``) and the configuration in, the request out.

- **Resources**: CPU is 1024 units per core the engine sees (``DOCKYARD_INSTANCE_CPU``
  instead, for labs where several agents share one engine), MEMORY the engine's memory
  in MiB (or ``DOCKYARD_INSTANCE_MEMORY``) less ECS_RESERVED_MEMORY, PORTS and PORTS_UDP
  the reserved ports, as the ECS agent registers them.
- **Attributes**: the ones the ECS agent sets for what the host supports, so placement
  can match a task definition's ``requiresAttributes`` (dockyard/ecs/capabilities.py
  lists the same names), plus ECS_INSTANCE_ATTRIBUTES.
- **Identity**: ``<ECS_DATADIR>/instance.json`` holds the instance ARN; a restarted agent
  registers with it and stays the same container instance.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from dockyard import __version__
from dockyard.agent.config import AgentConfig, ConfigError
from dockyard.agent.runtime import EngineInfo

log = logging.getLogger(__name__)

MIB: Final = 1 << 20
CPU_UNITS_PER_CORE: Final = 1024
CAPABILITY: Final = "com.amazonaws.ecs.capability."
# Docker remote API versions the ECS agent advertises; an engine supports every one
# up to its own.
DOCKER_API_VERSIONS: Final = tuple(f"1.{minor}" for minor in range(17, 45))
# What every Dockyard agent can do, whatever the host: health checks and dependsOn
# are the engine's; awsvpc is a pause container (docker_spec.py); ECR auth is automatic.
_ALWAYS: Final = (
    "ecs.capability.task-eni",
    "ecs.capability.container-health-check",
    "ecs.capability.container-ordering",
    f"{CAPABILITY}ecr-auth",
)
_ARCHITECTURES: Final = {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64"}
IDENTITY_FILE: Final = "instance.json"


@dataclass(frozen=True)
class Identity:
    container_instance_arn: str
    cluster: str
    server: str  # the server URL it registered with


def load_identity(data_dir: Path) -> Identity | None:
    """The identity saved by an earlier run, or None (first start, or unreadable)."""
    path = data_dir / IDENTITY_FILE
    try:
        document = json.loads(path.read_text())
        return Identity(
            str(document["containerInstanceArn"]),
            str(document["cluster"]),
            str(document.get("server", "")),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("ignoring %s (%s): registering as a new instance", path, error)
        return None


def save_identity(data_dir: Path, identity: Identity) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / IDENTITY_FILE
    temporary = path.with_suffix(".tmp")
    document = {
        "containerInstanceArn": identity.container_instance_arn,
        "cluster": identity.cluster,
        "server": identity.server,
    }
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(temporary, path)  # atomic: a crash leaves the old file or the new one


def registration(
    config: AgentConfig, info: EngineInfo, container_instance_arn: str | None
) -> dict[str, Any]:
    """RegisterContainerInstance's input; with an ARN, it refreshes that instance."""
    params: dict[str, Any] = {
        "cluster": config.cluster,
        "totalResources": resources(config, info),
        "versionInfo": version_info(info),
        "attributes": [
            {"name": n, "value": v} if v else {"name": n}
            for n, v in attributes(config, info).items()
        ],
    }
    if container_instance_arn:
        params["containerInstanceArn"] = container_instance_arn
    return params


def resources(config: AgentConfig, info: EngineInfo) -> list[dict[str, Any]]:
    cpu = config.instance_cpu or CPU_UNITS_PER_CORE * info.cpus
    total_memory = config.instance_memory or info.memory_bytes // MIB
    memory = total_memory - config.reserved_memory
    if memory <= 0:
        raise ConfigError(
            f"ECS_RESERVED_MEMORY={config.reserved_memory}: must be less than the instance's "
            f"{total_memory} MiB of memory",
            "ECS_RESERVED_MEMORY",
        )
    return [
        {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
        {"name": "PORTS", "type": "STRINGSET", "stringSetValue": _ports(config.reserved_ports)},
        {
            "name": "PORTS_UDP",
            "type": "STRINGSET",
            "stringSetValue": _ports(config.reserved_ports_udp),
        },
    ]


def attributes(config: AgentConfig, info: EngineInfo) -> dict[str, str | None]:
    """Attribute name -> value (None: a capability, which has no value)."""
    found: dict[str, str | None] = {
        "ecs.os-type": info.os_type,
        "ecs.cpu-architecture": _ARCHITECTURES.get(info.architecture, info.architecture),
    }
    if config.availability_zone:
        found["ecs.availability-zone"] = config.availability_zone
    for name in capabilities(config, info):
        found[name] = None
    found.update(config.instance_attributes)
    return found


def capabilities(config: AgentConfig, info: EngineInfo) -> list[str]:
    names = [f"{CAPABILITY}docker-remote-api.{v}" for v in supported_api_versions(info)]
    names += [f"{CAPABILITY}logging-driver.{d}" for d in logging_drivers(config, info)]
    if not config.privileged_disabled:
        names.append(f"{CAPABILITY}privileged-container")
    if config.task_iam_role_enabled:
        names.append(f"{CAPABILITY}task-iam-role")
        if config.task_iam_role_network_host:
            names.append(f"{CAPABILITY}task-iam-role-network-host")
    if config.task_cpu_mem_limit:
        names.append("ecs.capability.task-cpu-mem-limit")
    names += _ALWAYS
    return names


def supported_api_versions(info: EngineInfo) -> list[str]:
    engine = _version_key(info.api_version)
    return [v for v in DOCKER_API_VERSIONS if _version_key(v) <= engine]


def logging_drivers(config: AgentConfig, info: EngineInfo) -> list[str]:
    """ECS_AVAILABLE_LOGGING_DRIVERS that the engine has (``none`` needs no plugin)."""
    available = set(info.logging_drivers) | {"none"}
    drivers = []
    for driver in config.available_logging_drivers:
        if driver in available:
            drivers.append(driver)
        else:
            log.warning("ECS_AVAILABLE_LOGGING_DRIVERS lists %s, which the engine lacks", driver)
    return drivers


def version_info(info: EngineInfo) -> dict[str, str]:
    # agentHash starting "dockyard" is how the server tells an agent's instance (which
    # can lose its agent) from one registered through the plain API.
    return {
        "agentVersion": __version__,
        "agentHash": f"dockyard-{__version__}",
        "dockerVersion": f"DockerVersion: {info.version}",
    }


def _ports(ports: tuple[int, ...]) -> list[str]:
    return [str(port) for port in sorted(set(ports))]


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)
