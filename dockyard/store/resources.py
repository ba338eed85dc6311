"""Resources arithmetic on what instances have and tasks hold, and the wire shape of an
instance's registered and remaining resources. As what an instance has left, ``ports``
are the ports already taken (ECS reports PORTS that way)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from dockyard.store.models import Resources


def shortfall(left: Resources, demand: Resources) -> str | None:
    """Why ``demand`` does not fit in ``left``, as an ECS failure reason; None if it fits."""
    if demand.cpu > left.cpu:
        return "RESOURCE:CPU"
    if demand.memory > left.memory:
        return "RESOURCE:MEMORY"
    if demand.gpu_count > len(left.gpus):
        return "RESOURCE:GPU"
    if demand.ports & left.ports or demand.ports_udp & left.ports_udp:
        return "RESOURCE:PORTS"
    return None


def assign_gpus(left: Resources, demand: Resources) -> Resources:
    """``demand`` with the GPUs it is to hold: the first ``gpu_count`` free ones."""
    if not demand.gpu_count:
        return demand
    return replace(demand, gpus=frozenset(sorted(left.gpus)[: demand.gpu_count]))


def take(left: Resources, held: Resources) -> Resources:
    """``held``: with its GPUs assigned (``assign_gpus``)."""
    return Resources(
        cpu=left.cpu - held.cpu,
        memory=left.memory - held.memory,
        ports=left.ports | held.ports,
        ports_udp=left.ports_udp | held.ports_udp,
        gpus=left.gpus - held.gpus,
    )


def give_back(
    left: Resources, held: Resources, reserved: frozenset[int], reserved_udp: frozenset[int]
) -> Resources:
    """``reserved``: the host's own ports (registered PORTS), which stay taken."""
    return Resources(
        cpu=left.cpu + held.cpu,
        memory=left.memory + held.memory,
        ports=(left.ports - held.ports) | reserved,
        ports_udp=(left.ports_udp - held.ports_udp) | reserved_udp,
        gpus=left.gpus | held.gpus,
    )


def registered_resources(document: Mapping[str, Any]) -> Resources:
    return from_wire(document.get("registeredResources") or [])


def remaining_resources(document: Mapping[str, Any]) -> Resources:
    items = document.get("remainingResources")
    return from_wire(items if items is not None else document.get("registeredResources") or [])


def from_wire(items: Iterable[Mapping[str, Any]]) -> Resources:
    by_name = {item["name"]: item for item in items}

    def integer(name: str) -> int:
        return int(by_name.get(name, {}).get("integerValue") or 0)

    def strings(name: str) -> list[str]:
        return [str(s) for s in by_name.get(name, {}).get("stringSetValue") or []]

    def ports(name: str) -> frozenset[int]:
        return frozenset(int(p) for p in strings(name))

    return Resources(
        integer("CPU"),
        integer("MEMORY"),
        ports("PORTS"),
        ports("PORTS_UDP"),
        gpus=frozenset(strings("GPU")),  # the agent registers each GPU's ID
    )


def as_read(left: Resources, items: Iterable[Mapping[str, Any]]) -> Resources:
    """What ``from_wire`` gives for ``items``, the remaining resources ``with_remaining``
    wrote for ``left`` (without parsing them again): ``left`` but for the kinds the
    instance did not register."""
    names = {item["name"] for item in items}
    return Resources(
        left.cpu if "CPU" in names else 0,
        left.memory if "MEMORY" in names else 0,
        left.ports if "PORTS" in names else frozenset(),
        left.ports_udp if "PORTS_UDP" in names else frozenset(),
        gpus=left.gpus if "GPU" in names else frozenset(),
    )


def with_remaining(document: Mapping[str, Any], left: Resources) -> dict[str, Any]:
    """The document with its standard remaining resources set to ``left`` (GPU: the
    free ones); any other resource the instance registered stays as registered."""
    values: dict[str, Any] = {
        "CPU": {"integerValue": left.cpu},
        "MEMORY": {"integerValue": left.memory},
        "PORTS": {"stringSetValue": [str(p) for p in sorted(left.ports)]},
        "PORTS_UDP": {"stringSetValue": [str(p) for p in sorted(left.ports_udp)]},
        "GPU": {"stringSetValue": sorted(left.gpus)},
    }
    items = [
        {**item, **values.get(item["name"], {})}
        for item in document.get("registeredResources") or []
    ]
    return {**document, "remainingResources": items}
