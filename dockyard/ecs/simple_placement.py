"""Where RunTask puts tasks until the placement engine (issue 5) replaces this module.

Pure: a snapshot of candidate instances and a task's demand in, the chosen instances
and ECS failures out. Random among the instances that fit, as ECS's ``random``
strategy; a task that fits nowhere fails with the reason of the closest instance.
The store re-checks every choice when it writes (``TaskStore.place``), so a stale
snapshot can cost a retry but never an overcommit.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.ecs.task_shapes import Overrides
from dockyard.store.models import Resources
from dockyard.store.tasks import shortfall, take


@dataclass(frozen=True)
class Candidate:
    arn: str
    ec2_instance_id: str
    remaining: Resources
    connected: bool  # the agent is in contact (or the instance has no agent)


@dataclass(frozen=True)
class Failure:
    """An ECS ``failures[]`` entry: the instance's ARN, the reason, what it lacked."""

    arn: str
    reason: str  # AGENT | RESOURCE:CPU | RESOURCE:MEMORY | RESOURCE:PORTS
    detail: str


@dataclass(frozen=True)
class Placement:
    chosen: tuple[str, ...]  # an instance ARN per placed task
    failures: tuple[Failure, ...]  # empty when every task was placed


def choose_instances(
    candidates: Sequence[Candidate], demand: Resources, count: int, rng: random.Random
) -> Placement:
    """Place ``count`` tasks of size ``demand``, each on a random instance that fits.
    With no candidates at all nothing is placed and there is no instance to name."""
    if not candidates:
        return Placement((), ())
    left = {c.arn: c.remaining for c in candidates}
    chosen: list[str] = []
    for _ in range(count):
        fitting = [c for c in candidates if refusal(c, left[c.arn], demand) is None]
        if not fitting:
            return Placement(tuple(chosen), (closest(candidates, left, demand),))
        pick = rng.choice(fitting)
        left[pick.arn] = take(left[pick.arn], demand)
        chosen.append(pick.arn)
    return Placement(tuple(chosen), ())


def refusal(candidate: Candidate, left: Resources, demand: Resources) -> Failure | None:
    """Why the task cannot go on ``candidate`` with ``left`` free; None if it can."""
    name = f"Container instance {candidate.ec2_instance_id}"
    if not candidate.connected:
        return Failure(candidate.arn, "AGENT", f"{name}: its agent is not connected.")
    reason = shortfall(left, demand)
    if reason == "RESOURCE:CPU":
        detail = f"{name} has {left.cpu} CPU units left; the task needs {demand.cpu}."
    elif reason == "RESOURCE:MEMORY":
        detail = f"{name} has {left.memory} MiB of memory left; the task needs {demand.memory}."
    elif reason == "RESOURCE:PORTS":
        taken = sorted(demand.ports & left.ports) + sorted(demand.ports_udp & left.ports_udp)
        detail = f"{name} already uses host ports {', '.join(map(str, taken))}."
    else:
        return None
    return Failure(candidate.arn, reason, detail)


def closest(
    candidates: Sequence[Candidate], left: Mapping[str, Resources], demand: Resources
) -> Failure:
    """The refusal of the instance that came nearest: connected, the fewest resources
    short, then the smallest shortfall relative to the demand."""

    def distance(c: Candidate) -> tuple[bool, int, float, str]:
        have = left[c.arn]
        cpu_gap = max(0, demand.cpu - have.cpu) / max(demand.cpu, 1)
        memory_gap = max(0, demand.memory - have.memory) / max(demand.memory, 1)
        ports = bool(demand.ports & have.ports or demand.ports_udp & have.ports_udp)
        short = (cpu_gap > 0) + (memory_gap > 0) + ports
        return (not c.connected, short, cpu_gap + memory_gap, c.arn)

    nearest = min(candidates, key=distance)
    found = refusal(nearest, left[nearest.arn], demand)
    assert found is not None, "closest() is only asked when nothing fits"
    return found


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


def task_demand(definition: Mapping[str, Any], overrides: Overrides) -> Resources:
    """What a task holds on its instance: task-level cpu/memory when given (overrides
    first), else the containers' sums (memoryReservation, else memory); static host
    ports in bridge and host mode (awsvpc tasks have their own network namespace)."""
    cpu = memory = 0
    ports: set[int] = set()
    ports_udp: set[int] = set()
    host_ports = definition.get("networkMode", "bridge") in ("bridge", "host")
    for container in definition["containerDefinitions"]:
        size = container_size(container, overrides)
        cpu += size.cpu
        memory += size.reservation or size.memory or 0
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
    )
