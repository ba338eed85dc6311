"""Task size and the Fargate launch type's rules for task definitions.

A task definition gives its size as strings. ECS accepts CPU units ("256") or
vCPUs ("1 vCPU", "1vcpu", ".25 vCPU"; 1 vCPU = 1024 units) and MiB ("512") or
GB ("2 GB", "2GB", "0.5 GB"; 1 GB = 1024 MiB), and stores the whole number of
units or MiB. Fargate only runs the cpu/memory pairs listed in
``FARGATE_MEMORY_BY_CPU`` (the table in the ECS developer guide, "Task size"),
and refuses some features a container instance allows: see :func:`violations`.

Pure: nothing here raises. :func:`violations` yields reasons and the caller
(``taskdef_rules``) turns the first one into the ClientException ECS answers.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from fractions import Fraction
from typing import Any, Final

CPU_UNITS_PER_VCPU: Final = 1024
MIB_PER_GB: Final = 1024

# Supported range of task-level cpu outside Fargate (0.125 to 192 vCPUs).
EC2_TASK_CPU_MIN: Final = 128
EC2_TASK_CPU_MAX: Final = 196_608

# Windows containers on Fargate need at least 1 vCPU.
FARGATE_WINDOWS_CPU_MIN: Final = 1024

FARGATE_MEMORY_BY_CPU: Final[Mapping[int, Collection[int]]] = {
    256: (512, 1024, 2048),
    512: range(1024, 4096 + 1, 1024),
    1024: range(2048, 8192 + 1, 1024),
    2048: range(4096, 16384 + 1, 1024),
    4096: range(8192, 30720 + 1, 1024),
    8192: range(16384, 61440 + 1, 4096),
    16384: range(32768, 122880 + 1, 8192),
}

_ECR_IMAGE = re.compile(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/")
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_CPU = re.compile(rf"\s*{_NUMBER}\s*(vcpu)?\s*", re.IGNORECASE)
_MEMORY = re.compile(rf"\s*{_NUMBER}\s*(gb)?\s*", re.IGNORECASE)


def parse_cpu(text: str) -> int | None:
    """CPU units for "256", "1 vCPU", ".25 vcpu"; None when it is not one of those."""
    return _parse(text, _CPU, CPU_UNITS_PER_VCPU)


def parse_memory(text: str) -> int | None:
    """MiB for "512", "2 GB", "0.5GB"; None when it is not one of those."""
    return _parse(text, _MEMORY, MIB_PER_GB)


def fargate_supports(cpu: int, memory: int, *, windows: bool = False) -> bool:
    """Whether Fargate offers a task of ``cpu`` units and ``memory`` MiB."""
    if windows and cpu < FARGATE_WINDOWS_CPU_MIN:
        return False
    return memory in FARGATE_MEMORY_BY_CPU.get(cpu, ())


def violations(
    doc: Mapping[str, Any], cpu: int | None, memory: int | None
) -> Iterator[tuple[str, str]]:
    """Why a task definition requiring FARGATE cannot run there, as (message, field)
    pairs, most fundamental first. ``cpu`` and ``memory`` are the parsed task size;
    the messages are ECS's own where they are known."""
    if (doc.get("networkMode") or "bridge") != "awsvpc":
        yield "Fargate only supports network mode 'awsvpc'.", "networkMode"
    if cpu is None:
        yield "Fargate requires that 'cpu' be defined at the task level.", "cpu"
    if memory is None:
        yield "Fargate requires that 'memory' be defined at the task level.", "memory"
    os_family = doc.get("runtimePlatform", {}).get("operatingSystemFamily", "LINUX")
    if cpu and memory and not fargate_supports(cpu, memory, windows=os_family != "LINUX"):
        yield (
            f"No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. "
            "See the Amazon ECS documentation for the valid values.",
            "cpu, memory",
        )
    if "ipcMode" in doc:
        yield "Tasks using the Fargate launch type do not support ipcMode.", "ipcMode"
    if doc.get("pidMode") == "host":
        yield "Tasks using the Fargate launch type do not support pidMode 'host'.", "pidMode"
    for k, volume in enumerate(doc.get("volumes", [])):
        if volume.get("host", {}).get("sourcePath"):
            yield (
                "Fargate compatible task definitions do not support sourcePath.",
                f"volumes[{k}].host.sourcePath",
            )
        if "dockerVolumeConfiguration" in volume:
            yield (
                "Fargate compatible task definitions do not support dockerVolumeConfiguration.",
                f"volumes[{k}].dockerVolumeConfiguration",
            )
    yield from _container_violations(doc.get("containerDefinitions", []), doc)


def _container_violations(
    containers: Sequence[Mapping[str, Any]], doc: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    needs_role = "Fargate requires task definition to have execution role ARN to support"
    for i, container in enumerate(containers):
        name = container.get("name")
        if container.get("privileged"):
            yield (
                "Tasks using the Fargate launch type do not support privileged containers.",
                f"containerDefinitions[{i}].privileged",
            )
        if "executionRoleArn" in doc:
            continue
        if _ECR_IMAGE.match(container.get("image") or ""):
            yield f"{needs_role} ECR images. Container '{name}' pulls from ECR.", "executionRoleArn"
        if container.get("logConfiguration", {}).get("logDriver") == "awslogs":
            yield (
                f"{needs_role} log driver awslogs. Container '{name}' logs to awslogs.",
                "executionRoleArn",
            )


def _parse(text: str, pattern: re.Pattern[str], unit: int) -> int | None:
    match = pattern.fullmatch(text)
    if match is None:
        return None
    amount = Fraction(match.group(1))
    if match.group(2):
        amount *= unit
    # ".1 vCPU" is 102.4 units: not a whole number, so not a valid size.
    if amount.denominator != 1 or amount <= 0:
        return None
    return int(amount)
