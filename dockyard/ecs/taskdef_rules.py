"""ECS's own rules for RegisterTaskDefinition.

botocore's service model has already checked the request's shape: member types,
required members, enum values. What it cannot know are the rules ECS applies on
top (names, limits, references between containers, what each network mode and
Fargate allow) and the defaults ECS writes into the stored task definition.
:func:`check_task_definition` applies both and returns the normalised document.
It is pure: no I/O, and the request it is given is never modified.

Every rejection is a ``ClientException``, the type ECS answers these failures
with. Where the real ECS wording is known (public bug reports quote it) it is
reused verbatim; where ECS's sentence does not say what is wrong, a second
sentence does. Every message ends by naming the field, for example
``(field: containerDefinitions[0].memory)``.

Glossary: the *effective* network mode is ``bridge`` when the request leaves
``networkMode`` out (ECS's default; like ECS we do not write it back). A
container's *reservation* is its ``memoryReservation``, else its ``memory``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from dockyard.api.errors import ClientException
from dockyard.ecs import fargate

MAX_CONTAINERS: Final = 10
CONTAINER_MEMORY_MIN_MIB: Final = 6  # Docker 20.10+ reserves 6 MiB per container.
FARGATE_TIMEOUT_RANGE: Final = (2, 120)  # stopTimeout and startTimeout, seconds.
# name, lowest, highest, default filled in when absent (None: leave absent).
HEALTH_CHECK_LIMITS: Final = (
    ("interval", 5, 300, 30),
    ("timeout", 2, 60, 5),
    ("retries", 1, 10, 3),
    ("startPeriod", 0, 300, None),
)
# Lists ECS returns empty rather than leaving out.
CONTAINER_LIST_DEFAULTS: Final = (
    "portMappings",
    "environment",
    "mountPoints",
    "volumesFrom",
    "systemControls",
)
TASK_LIST_DEFAULTS: Final = ("volumes", "placementConstraints")

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_PORT_RANGE = re.compile(r"(\d+)-(\d+)")

Doc = dict[str, Any]


@dataclass(frozen=True)
class _Task:
    """Task-wide facts that container rules depend on."""

    network_mode: str  # effective mode, see module glossary
    fargate: bool
    cpu: int | None  # units
    memory: int | None  # MiB


def check_task_definition(request: Mapping[str, Any]) -> dict[str, Any]:
    """Apply ECS's RegisterTaskDefinition rules to a request that already passed
    botocore-model validation (types/required/enums are already right), and return the
    normalised document (a new dict; input untouched)."""
    doc: Doc = copy.deepcopy(dict(request))
    _check_family(doc.get("family", ""))
    containers = _check_container_list(doc)
    names = _check_container_names(containers)
    task = _task_size(doc)  # rewrites cpu and memory as whole units / MiB
    if task.fargate:
        for message, field in fargate.violations(doc, task.cpu, task.memory):
            _reject(message, field)
    for i, container in enumerate(containers):
        _check_container(i, container, task)  # fills essential and healthCheck defaults
    _check_essential(containers)
    _check_task_totals(containers, task)
    _check_links(containers, names, task)
    _check_depends_on(containers, names)
    _check_volumes(doc, containers, names)
    _check_port_mappings(containers, task)  # fills protocol and hostPort
    _fill_list_defaults(doc, containers)
    return doc


# -- helpers -----------------------------------------------------------------------


def _reject(message: str, field: str) -> NoReturn:
    raise ClientException(f"{message} (field: {field})")


def _invalid(i: int, container: Doc, setting: str, reason: str, *path: str | int) -> NoReturn:
    """ECS's "Invalid 'setting' setting for container 'name'.", then what is wrong.
    The field is ``setting`` inside container ``i`` unless ``path`` says otherwise."""
    _reject(
        f"Invalid '{setting}' setting for container '{container['name']}'. {reason}",
        _at(i, *(path or (setting,))),
    )


def _at(i: int, *path: str | int) -> str:
    """Field path in container ``i``: ``_at(0, "portMappings", 1)`` is
    ``containerDefinitions[0].portMappings[1]``."""
    text = f"containerDefinitions[{i}]"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle in ``graph`` as a path that returns to its start, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in graph.get(node, ()):
            if cycle := visit(target, [*path, node]):
                return cycle
        done.add(node)
        return None

    return next((cycle for start in graph if (cycle := visit(start, []))), None)


# -- rules, in the order check_task_definition applies them -------------------------


def _check_family(family: str) -> None:
    if not family:
        _reject("Family can not be blank.", "family")
    if len(family) > 255 or not _NAME.fullmatch(family):
        _reject(
            "Family contains invalid characters. Use up to 255 letters, numbers, hyphens "
            "and underscores.",
            "family",
        )


def _check_container_list(doc: Doc) -> list[Doc]:
    containers: list[Doc] = doc.get("containerDefinitions", [])
    if not containers:
        _reject("Container list cannot be empty.", "containerDefinitions")
    if len(containers) > MAX_CONTAINERS:
        _reject(
            f"Too many containers. The most a task definition holds is {MAX_CONTAINERS}.",
            "containerDefinitions",
        )
    return containers


def _check_container_names(containers: list[Doc]) -> set[str]:
    names: set[str] = set()
    for i, container in enumerate(containers):
        name = container.get("name") or ""
        if not name:
            _reject("Container.name should not be null or empty.", _at(i, "name"))
        if len(name) > 255 or not _NAME.fullmatch(name):
            _reject(
                "Container.name contains invalid characters. Use up to 255 letters, "
                "numbers, hyphens and underscores.",
                _at(i, "name"),
            )
        if name in names:
            _reject("Container names must be unique within a Task Definition.", _at(i, "name"))
        names.add(name)
    return names


def _task_size(doc: Doc) -> _Task:
    fargate_task = "FARGATE" in doc.get("requiresCompatibilities", [])
    cpu: int | None = None
    memory: int | None = None
    if "cpu" in doc:
        if (cpu := fargate.parse_cpu(doc["cpu"])) is None:
            _reject(
                f"Invalid 'cpu' setting for task. {doc['cpu']!r} is neither CPU units "
                '("1024") nor vCPUs ("1 vCPU").',
                "cpu",
            )
        low, high = fargate.EC2_TASK_CPU_MIN, fargate.EC2_TASK_CPU_MAX
        if not fargate_task and not low <= cpu <= high:
            _reject(
                f"Invalid 'cpu' setting for task. Supported values are between {low} "
                f"and {high} CPU units, got {cpu}.",
                "cpu",
            )
        doc["cpu"] = str(cpu)
    if "memory" in doc:
        if (memory := fargate.parse_memory(doc["memory"])) is None:
            _reject(
                f"Invalid 'memory' setting for task. {doc['memory']!r} is neither MiB "
                '("512") nor GB ("2 GB").',
                "memory",
            )
        doc["memory"] = str(memory)
    return _Task(doc.get("networkMode") or "bridge", fargate_task, cpu, memory)


def _check_container(i: int, container: Doc, task: _Task) -> None:
    if not (container.get("image") or "").strip():
        _reject("Container.image should not be null or empty.", _at(i, "image"))
    container.setdefault("essential", True)
    _check_container_memory(i, container, task)
    if "healthCheck" in container:
        _check_health_check(i, container)
    low, high = FARGATE_TIMEOUT_RANGE if task.fargate else (0, None)
    for key in ("startTimeout", "stopTimeout"):
        value = container.get(key)
        if value is not None and (value < low or (high is not None and value > high)):
            allowed = f"between {low} and {high}" if high else "0 or more"
            _invalid(i, container, key, f"It must be {allowed} seconds, got {value}.")
    for j, ulimit in enumerate(container.get("ulimits", [])):
        if ulimit["softLimit"] > ulimit["hardLimit"]:
            _invalid(
                i,
                container,
                "ulimits",
                f"The softLimit of '{ulimit['name']}' "
                f"({ulimit['softLimit']}) is greater than its hardLimit "
                f"({ulimit['hardLimit']}).",
                "ulimits",
                j,
            )
    if task.network_mode == "awsvpc" and container.get("hostname"):
        _reject(
            "hostname is not supported on container when networkMode=awsvpc.", _at(i, "hostname")
        )


def _check_container_memory(i: int, container: Doc, task: _Task) -> None:
    memory, reservation = container.get("memory"), container.get("memoryReservation")
    if memory is None and reservation is None and task.memory is None:
        _reject(
            f"Invalid setting for container '{container['name']}'. At least one of "
            "'memory' or 'memoryReservation' must be specified.",
            _at(i, "memory"),
        )
    for key, value in (("memory", memory), ("memoryReservation", reservation)):
        if value is not None and value < CONTAINER_MEMORY_MIN_MIB:
            _invalid(
                i,
                container,
                key,
                f"A container needs at least {CONTAINER_MEMORY_MIN_MIB} MiB, got {value}.",
            )
    if memory is not None and reservation is not None and reservation > memory:
        _invalid(
            i,
            container,
            "memoryReservation",
            f"It is {reservation} MiB, more than "
            f"'memory' ({memory} MiB); memory must be greater than or equal to it.",
        )
    if memory is not None and task.memory is not None and memory > task.memory:
        _reject(
            f"The 'memory' setting for container '{container['name']}' is greater than "
            "for the task.",
            _at(i, "memory"),
        )


def _check_health_check(i: int, container: Doc) -> None:
    check = container["healthCheck"]
    if not check.get("command"):
        _invalid(
            i, container, "healthCheck", "The command must not be empty.", "healthCheck", "command"
        )
    for key, low, high, default in HEALTH_CHECK_LIMITS:
        value = check.get(key)
        if value is None and default is not None:
            check[key] = default
        elif value is not None and not low <= value <= high:
            _invalid(
                i,
                container,
                "healthCheck",
                f"'{key}' must be between {low} and {high}, got {value}.",
                "healthCheck",
                key,
            )


def _check_essential(containers: list[Doc]) -> None:
    if not any(container["essential"] for container in containers):
        _reject(
            "Task definition doesn't have any essential container. Mark at least one "
            "container essential (it is the default).",
            "containerDefinitions[].essential",
        )


def _check_task_totals(containers: list[Doc], task: _Task) -> None:
    """Containers share the task's size: their reservations and cpu must fit in it."""
    reserved = sum(c.get("memoryReservation") or c.get("memory") or 0 for c in containers)
    if task.memory is not None and reserved > task.memory:
        _reject(
            "The sum of all container 'memoryReservation' values cannot be greater than "
            f"the value of the task 'memory'. Containers reserve {reserved} MiB, the task "
            f"has {task.memory}.",
            "containerDefinitions[].memoryReservation",
        )
    cpu = sum(c.get("cpu") or 0 for c in containers)
    if task.cpu is not None and cpu > task.cpu:
        _reject(
            "The sum of all container 'cpu' values cannot be greater than the value of "
            f"the task 'cpu'. Containers ask for {cpu} units, the task has {task.cpu}.",
            "containerDefinitions[].cpu",
        )


def _check_links(containers: list[Doc], names: set[str], task: _Task) -> None:
    graph: dict[str, list[str]] = {}
    for i, container in enumerate(containers):
        links = container.get("links", [])
        if links and task.network_mode != "bridge":
            _reject(
                f"Links are not supported when networkMode={task.network_mode}.", _at(i, "links")
            )
        graph[container["name"]] = [link.split(":", 1)[0] for link in links]
        for j, target in enumerate(graph[container["name"]]):
            if target not in names:
                _invalid(
                    i,
                    container,
                    "links",
                    f"There is no container '{target}' in this task definition.",
                    "links",
                    j,
                )
    if cycle := _find_cycle(graph):
        _reject(
            f"Container links should not have a cycle: {' -> '.join(cycle)}.",
            "containerDefinitions[].links",
        )


def _check_depends_on(containers: list[Doc], names: set[str]) -> None:
    by_name = {container["name"]: container for container in containers}
    graph: dict[str, list[str]] = {name: [] for name in by_name}
    for i, container in enumerate(containers):
        for j, dependency in enumerate(container.get("dependsOn", [])):
            target, condition = dependency["containerName"], dependency["condition"]
            field = _at(i, "dependsOn", j)
            if target not in names:
                _reject(f"Cannot depend on container '{target}' because it does not exist.", field)
            if condition in ("COMPLETE", "SUCCESS") and by_name[target]["essential"]:
                _reject(
                    "A dependency container with SUCCESS or COMPLETE condition cannot be "
                    f"an essential container. Container '{target}' is essential.",
                    field,
                )
            if condition == "HEALTHY" and "healthCheck" not in by_name[target]:
                _reject(
                    f"Container '{container['name']}' waits for container '{target}' to "
                    f"be HEALTHY, but '{target}' has no healthCheck.",
                    field,
                )
            graph[container["name"]].append(target)
    if cycle := _find_cycle(graph):
        _reject(
            f"Container dependencies should not have a cycle: {' -> '.join(cycle)}.",
            "containerDefinitions[].dependsOn",
        )


def _check_volumes(doc: Doc, containers: list[Doc], names: set[str]) -> None:
    declared: set[str] = set()
    for k, volume in enumerate(doc.get("volumes", [])):
        name = volume.get("name") or ""
        if len(name) > 255 or not _NAME.fullmatch(name):
            _reject(
                "Volume.name contains invalid characters. Use up to 255 letters, "
                "numbers, hyphens and underscores.",
                f"volumes[{k}].name",
            )
        if name in declared:
            _reject("Volume names must be unique within a Task Definition.", f"volumes[{k}].name")
        declared.add(name)
    for i, container in enumerate(containers):
        for j, mount in enumerate(container.get("mountPoints", [])):
            if mount.get("sourceVolume") not in declared:
                _reject(
                    f"Unknown volume '{mount.get('sourceVolume')}'.",
                    _at(i, "mountPoints", j, "sourceVolume"),
                )
        for j, source in enumerate(container.get("volumesFrom", [])):
            if source.get("sourceContainer") not in names - {container["name"]}:
                _invalid(
                    i,
                    container,
                    "volumesFrom",
                    f"'{source.get('sourceContainer')}' is "
                    "not another container of this task definition.",
                    "volumesFrom",
                    j,
                    "sourceContainer",
                )


def _check_port_mappings(containers: list[Doc], task: _Task) -> None:
    claimed: set[tuple[int, str]] = set()  # (host port, protocol) the task binds
    for i, container in enumerate(containers):
        for j, mapping in enumerate(container.get("portMappings", [])):
            if task.network_mode == "none":
                _reject(
                    "Port mappings are not supported when networkMode=none.",
                    _at(i, "portMappings", j),
                )
            mapping.setdefault("protocol", "tcp")
            if "containerPortRange" in mapping:
                _check_port_range(i, j, container, task)
                continue
            mapping["hostPort"] = host_port = _host_port(i, j, container, task)
            if host_port and (host_port, mapping["protocol"]) in claimed:
                _reject(
                    f"{mapping['protocol'].upper()} host port '{host_port}' is mapped "
                    "multiple times in task.",
                    _at(i, "portMappings", j, "hostPort"),
                )
            claimed.add((host_port, mapping["protocol"]))


def _host_port(i: int, j: int, container: Doc, task: _Task) -> int:
    """The host port ECS stores for mapping ``j``: 0 (dynamic) or the given port in
    bridge mode, the container port in awsvpc and host modes."""
    mapping = container["portMappings"][j]
    container_port, host_port = mapping.get("containerPort"), mapping.get("hostPort") or 0
    if container_port is None or not 1 <= container_port <= 65535:
        _invalid(
            i,
            container,
            "containerPort",
            f"It must be between 1 and 65535, got {container_port}.",
            "portMappings",
            j,
            "containerPort",
        )
    if not 0 <= host_port <= 65535:
        _invalid(
            i,
            container,
            "hostPort",
            f"It must be between 0 and 65535, got {host_port}.",
            "portMappings",
            j,
            "hostPort",
        )
    if task.network_mode == "bridge":
        return int(host_port)
    if host_port not in (0, container_port):
        _reject(
            f"When networkMode={task.network_mode}, the host ports and container ports "
            "in port mappings must match.",
            _at(i, "portMappings", j, "hostPort"),
        )
    return int(container_port)


def _check_port_range(i: int, j: int, container: Doc, task: _Task) -> None:
    mapping = container["portMappings"][j]
    path = ("portMappings", j, "containerPortRange")
    if task.network_mode not in ("bridge", "awsvpc"):
        _invalid(
            i,
            container,
            "containerPortRange",
            f"Port ranges need networkMode bridge or awsvpc, not {task.network_mode}.",
            *path,
        )
    if "containerPort" in mapping or "hostPort" in mapping:
        _invalid(
            i,
            container,
            "portMappings",
            "You cannot specify both single port and port range.",
            "portMappings",
            j,
        )
    match = _PORT_RANGE.fullmatch(mapping["containerPortRange"])
    if not match or not 1 <= int(match[1]) < int(match[2]) <= 65535:
        _invalid(
            i,
            container,
            "containerPortRange",
            'Write it as "first-last" with '
            f"1 <= first < last <= 65535, got {mapping['containerPortRange']!r}.",
            *path,
        )


def _fill_list_defaults(doc: Doc, containers: list[Doc]) -> None:
    """Fill the defaults ECS echoes back in DescribeTaskDefinition."""
    for container in containers:
        container.setdefault("cpu", 0)
        for key in CONTAINER_LIST_DEFAULTS:
            container.setdefault(key, [])
    for key in TASK_LIST_DEFAULTS:
        doc.setdefault(key, [])
