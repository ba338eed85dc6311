"""What a task holds on its instance, from its task definition and RunTask's overrides.

``task_resources`` is what the store reserves (and gives back at STOPPED);
``placement_demand`` adds what only placement reads: the capabilities the definition
needs (its ``requiresAttributes``), its group and family.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dockyard.ecs.capabilities import required_attributes
from dockyard.ecs.task_shapes import Overrides
from dockyard.scheduler.model import TaskDemand, parse_required_attributes
from dockyard.store.models import Resources


@dataclass(frozen=True)
class ContainerSize:
    cpu: int
    memory: int | None  # hard limit, MiB
    reservation: int | None  # soft limit (memoryReservation), MiB


def container_size(container: Mapping[str, Any], overrides: Overrides) -> ContainerSize:
    """A container definition's cpu and memory with RunTask's overrides applied."""
    override = next((o for o in overrides.containers if o.name == container["name"]), None)

    def pick(given: int | None, key: str) -> int | None:
        value = given if given is not None else container.get(key)
        return int(value) if value is not None else None

    return ContainerSize(
        cpu=pick(override.cpu if override else None, "cpu") or 0,
        memory=pick(override.memory if override else None, "memory"),
        reservation=pick(override.memory_reservation if override else None, "memoryReservation"),
    )


def task_resources(definition: Mapping[str, Any], overrides: Overrides) -> Resources:
    """What a task holds on its instance: task-level cpu/memory when given (overrides
    first), else the containers' sums (memoryReservation, else memory); static host
    ports in bridge and host mode (awsvpc tasks have their own network namespace); the
    GPUs its containers' resourceRequirements ask for (overrides first)."""
    cpu = memory = gpus = 0
    ports: set[int] = set()
    ports_udp: set[int] = set()
    host_ports = definition.get("networkMode", "bridge") in ("bridge", "host")
    for container in definition["containerDefinitions"]:
        size = container_size(container, overrides)
        cpu += size.cpu
        memory += size.reservation or size.memory or 0
        gpus += _gpus(container, overrides)
        for mapping in container.get("portMappings") or []:
            if host_ports and mapping.get("hostPort"):
                udp = mapping.get("protocol") == "udp"
                (ports_udp if udp else ports).add(int(mapping["hostPort"]))
    task_cpu = overrides.cpu if overrides.cpu is not None else definition.get("cpu")
    task_memory = overrides.memory if overrides.memory is not None else definition.get("memory")
    return Resources(
        cpu=int(task_cpu) if task_cpu is not None else cpu,
        memory=int(task_memory) if task_memory is not None else memory,
        ports=frozenset(ports),
        ports_udp=frozenset(ports_udp),
        gpu_count=gpus,
    )


def _gpus(container: Mapping[str, Any], overrides: Overrides) -> int:
    """The GPUs a container's resourceRequirements (or their override) ask for."""
    requirements = container.get("resourceRequirements") or []
    for override in overrides.wire.get("containerOverrides") or []:
        if override.get("name") == container["name"] and "resourceRequirements" in override:
            requirements = override["resourceRequirements"] or []
    values = [str(r.get("value") or "") for r in requirements if r.get("type") == "GPU"]
    return sum(int(v) for v in values if v.isdigit())


def placement_demand(
    resources: Resources, definition: Mapping[str, Any], family: str, group: str
) -> TaskDemand:
    """The engine's view of one task. Tasks of every launch type Dockyard runs (EC2,
    EXTERNAL) go on any registered instance, so no launch target narrows the field."""
    return TaskDemand(
        cpu=resources.cpu,
        memory=resources.memory,
        ports_tcp=resources.ports,
        ports_udp=resources.ports_udp,
        gpus=resources.gpu_count,
        required_attributes=parse_required_attributes(required_attributes(definition)),
        group=group,
        family=family,
    )
