"""The task metadata endpoint, version 4 (and 3, the same routes), as the ECS agent serves it.

Every container gets ``ECS_CONTAINER_METADATA_URI_V4=<base>/v4/<token>`` (docker_spec.py
sets it) and reads, in AWS's JSON shapes:

    GET <base>/v4/<token>              this container
    GET <base>/v4/<token>/task         its task, with every container
    GET <base>/v4/<token>/stats        Docker stats of this container
    GET <base>/v4/<token>/task/stats   Docker stats of every container, by Docker id

The app is pure: ``provider`` returns the engine's current view of its tasks, ``stats``
(optional) returns one container's Docker stats, so it is tested without Docker.

**Tokens.** The real agent draws a random UUID per container and persists it; here the
token is derived from the task ARN and container name (``container_token``), so it
survives an agent restart with no extra state and the engine never has to store it.
The endpoint serves metadata, not credentials, so a guessable token leaks nothing that
``docker inspect`` on the host does not.

**Reachability.** The agent serves this app on 127.0.0.1 *and* on the default bridge's
gateway address (``docker network inspect bridge``: IPAM gateway, usually 172.17.0.1).
Containers on a bridge (and awsvpc tasks, through their pause container) get the extra
host ``host.docker.internal:host-gateway``, which Docker 20.10+ resolves to that gateway,
and use ``http://host.docker.internal:<port>``; host-mode containers share the host's
loopback and use ``http://127.0.0.1:<port>`` (``endpoint_base``). A host firewall that
drops traffic from docker0 to the host must allow that port.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dockyard.agent.runtime import PortBinding

METADATA_HOST: Final = "host.docker.internal"
# Fixed, so tokens are the same after a restart; any UUID would do.
_TOKEN_NAMESPACE: Final = uuid.UUID("5b2f6a52-3c1e-4f0e-9d7a-6f1d2c9e8a40")


@dataclass(frozen=True)
class HealthView:
    status: str  # HEALTHY | UNHEALTHY | UNKNOWN
    since: float | None = None
    output: str | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class ContainerView:
    """One container as the engine knows it. Times are epoch seconds, None if not yet."""

    name: str  # the task definition's name (``~internal~ecs~pause`` for the pause)
    docker_id: str
    docker_name: str
    image: str
    desired_status: str
    known_status: str
    image_id: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    cpu: int = 0  # units
    memory: int = 0  # MiB (hard limit, else reservation)
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    type: str = "NORMAL"  # NORMAL | CNI_PAUSE
    ports: tuple[PortBinding, ...] = ()
    ipv4_addresses: tuple[str, ...] = ()
    health: HealthView | None = None
    log_driver: str | None = None
    log_options: Mapping[str, str] = field(default_factory=dict)
    container_arn: str | None = None
    volumes: tuple[tuple[str, str, str], ...] = ()  # (docker volume name, source, destination)


@dataclass(frozen=True)
class TaskView:
    cluster: str
    task_arn: str
    family: str
    revision: str
    desired_status: str
    known_status: str
    network_mode: str = "bridge"
    containers: tuple[ContainerView, ...] = ()
    cpu: float | None = None  # vCPUs, as the endpoint reports task limits
    memory: int | None = None  # MiB
    pull_started_at: float | None = None
    pull_stopped_at: float | None = None
    execution_stopped_at: float | None = None
    availability_zone: str | None = None
    launch_type: str = "EC2"
    service_name: str | None = None


Provider = Callable[[], Iterable[TaskView]]
StatsProvider = Callable[[str], Mapping[str, Any] | None]  # Docker id -> stats JSON


def container_token(task_arn: str, container_name: str) -> str:
    """The path segment that names one container to the endpoint."""
    return str(uuid.uuid5(_TOKEN_NAMESPACE, f"{task_arn}\n{container_name}"))


def endpoint_base(port: int, network_mode: str) -> str:
    """Where a container in ``network_mode`` reaches the agent's endpoint (see above)."""
    host = "127.0.0.1" if network_mode == "host" else METADATA_HOST
    return f"http://{host}:{port}"


def metadata_app(provider: Provider, stats: StatsProvider | None = None) -> Starlette:
    """The endpoint as an ASGI app; the agent runs it with uvicorn."""

    def find(request: Request) -> tuple[TaskView, ContainerView] | None:
        token = request.path_params["token"]
        for task in provider():
            for container in task.containers:
                if container_token(task.task_arn, container.name) == token:
                    return task, container
        return None

    def not_found(what: str, request: Request) -> JSONResponse:
        # The agent answers a JSON string with 404 for an unknown endpoint id.
        reason = f"unable to get task for container ID {request.path_params['token']}"
        return JSONResponse(f"V4 {what} handler: {reason}", status_code=404)

    def stats_of(container: ContainerView) -> Mapping[str, Any] | None:
        return stats(container.docker_id) if stats is not None else None

    async def container_metadata(request: Request) -> JSONResponse:
        found = find(request)
        if found is None:
            return not_found("container metadata", request)
        return JSONResponse(container_json(*found))

    async def task_metadata(request: Request) -> JSONResponse:
        found = find(request)
        if found is None:
            return not_found("task metadata", request)
        return JSONResponse(task_json(found[0]))

    async def container_stats(request: Request) -> JSONResponse:
        found = find(request)
        if found is None:
            return not_found("container stats", request)
        # No stats yet (not started, or no stats source): an empty object, not an error.
        return JSONResponse(dict(stats_of(found[1]) or {}))

    async def task_stats(request: Request) -> JSONResponse:
        found = find(request)
        if found is None:
            return not_found("task stats", request)
        return JSONResponse(
            {
                c.docker_id: (dict(s) if (s := stats_of(c)) is not None else None)
                for c in found[0].containers
                if c.docker_id
            }
        )

    routes = []
    for version in ("v3", "v4"):
        base = f"/{version}/{{token}}"
        routes += [
            Route(base, container_metadata),
            Route(f"{base}/", container_metadata),
            Route(f"{base}/task", task_metadata),
            Route(f"{base}/stats", container_stats),
            Route(f"{base}/task/stats", task_stats),
        ]
    return Starlette(routes=routes)


def task_json(task: TaskView) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Cluster": task.cluster,
        "TaskARN": task.task_arn,
        "Family": task.family,
        "Revision": task.revision,
        "DesiredStatus": task.desired_status,
        "KnownStatus": task.known_status,
    }
    limits = _limits(task.cpu, task.memory or None)
    if limits:
        body["Limits"] = limits
    _times(
        body,
        PullStartedAt=task.pull_started_at,
        PullStoppedAt=task.pull_stopped_at,
        ExecutionStoppedAt=task.execution_stopped_at,
    )
    if task.availability_zone:
        body["AvailabilityZone"] = task.availability_zone
    body["LaunchType"] = task.launch_type
    if task.service_name:
        body["ServiceName"] = task.service_name
    body["Containers"] = [container_json(task, c) for c in task.containers]
    return body


def container_json(task: TaskView, container: ContainerView) -> dict[str, Any]:
    body: dict[str, Any] = {
        "DockerId": container.docker_id,
        "Name": container.name,
        "DockerName": container.docker_name,
        "Image": container.image,
        "ImageID": container.image_id,
    }
    if container.ports:
        body["Ports"] = [
            {
                "ContainerPort": p.container_port,
                "Protocol": p.protocol,
                "HostPort": p.host_port,
                "HostIp": p.host_ip,
            }
            for p in container.ports
        ]
    if container.labels:
        body["Labels"] = dict(container.labels)
    body["DesiredStatus"] = container.desired_status
    body["KnownStatus"] = container.known_status
    if container.exit_code is not None:
        body["ExitCode"] = container.exit_code
    # The agent always writes a container's Limits, zeros included.
    body["Limits"] = {"CPU": container.cpu, "Memory": container.memory}
    _times(
        body,
        CreatedAt=container.created_at,
        StartedAt=container.started_at,
        FinishedAt=container.finished_at,
    )
    body["Type"] = container.type
    if container.health is not None:
        body["Health"] = _health(container.health)
    if container.log_driver:
        body["LogDriver"] = container.log_driver
        body["LogOptions"] = dict(container.log_options)
    if container.container_arn:
        body["ContainerARN"] = container.container_arn
    network: dict[str, Any] = {"NetworkMode": task.network_mode}
    if container.ipv4_addresses:
        network["IPv4Addresses"] = list(container.ipv4_addresses)
    body["Networks"] = [network]
    if container.volumes:
        body["Volumes"] = [
            {"DockerName": name, "Source": source, "Destination": destination}
            for name, source, destination in container.volumes
        ]
    return body


def timestamp(epoch: float) -> str:
    """RFC 3339 in UTC with a Z, as Go's time.Time marshals (to the microsecond here)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _times(body: dict[str, Any], **moments: float | None) -> None:
    for key, moment in moments.items():
        if moment is not None:
            body[key] = timestamp(moment)


def _limits(cpu: float | None, memory: int | None) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if cpu:
        limits["CPU"] = cpu
    if memory:
        limits["Memory"] = memory
    return limits


def _health(health: HealthView) -> dict[str, Any]:
    # The agent's HealthStatus marshals with lower-case keys.
    body: dict[str, Any] = {"status": health.status}
    if health.since is not None:
        body["statusSince"] = timestamp(health.since)
    if health.exit_code is not None:
        body["exitCode"] = health.exit_code
    if health.output:
        body["output"] = health.output
    return body
