"""The instance attributes a task definition needs, as ECS lists in requiresAttributes.

The agent registers the same names for what its host supports, so placement can
match one against the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DOCKER_API = "com.amazonaws.ecs.capability.docker-remote-api."


def required_attributes(doc: Mapping[str, Any]) -> list[dict[str, str]]:
    names: set[str] = set()
    containers = doc.get("containerDefinitions", [])
    if doc.get("networkMode") == "awsvpc":
        names.add("ecs.capability.task-eni")
    if doc.get("taskRoleArn"):
        names.add("com.amazonaws.ecs.capability.task-iam-role")
    if doc.get("executionRoleArn"):
        names.add("ecs.capability.execution-role-awslogs")
    if doc.get("cpu") or doc.get("memory"):
        names.add(DOCKER_API + "1.18")
    for container in containers:
        names |= _container_attributes(container)
    return [{"name": name} for name in sorted(names)]


def _container_attributes(container: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    log = container.get("logConfiguration")
    if log:
        names.add(f"com.amazonaws.ecs.capability.logging-driver.{log['logDriver']}")
        names.add(DOCKER_API + "1.19")
    if container.get("healthCheck"):
        names.add("ecs.capability.container-health-check")
        names.add(DOCKER_API + "1.24")
    if container.get("dependsOn"):
        names.add("ecs.capability.container-ordering")
    if container.get("privileged"):
        names.add("com.amazonaws.ecs.capability.privileged-container")
    if container.get("memoryReservation"):
        names.add(DOCKER_API + "1.21")
    if container.get("ulimits") or container.get("user") or container.get("dockerLabels"):
        names.add(DOCKER_API + "1.18")
    if container.get("repositoryCredentials"):
        names.add("com.amazonaws.ecs.capability.ecr-auth")
    if container.get("secrets"):
        names.add("ecs.capability.secrets.asm.environment-variables")
    linux = container.get("linuxParameters") or {}
    if linux.get("initProcessEnabled"):
        names.add(DOCKER_API + "1.25")
    if linux.get("sharedMemorySize") or linux.get("tmpfs"):
        names.add(DOCKER_API + "1.22")
    if container.get("stopTimeout") or container.get("startTimeout"):
        names.add("ecs.capability.container-ordering")
    return names
