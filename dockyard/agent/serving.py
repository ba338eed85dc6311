"""Serving the task metadata endpoint (metadata.py) from the agent's process.

``TaskViews`` is the endpoint's picture of this host's tasks, built in a worker thread
from the engine's saved records (state.py) and the runtime's containers, at most every
half second and after every report, so the agent's event loop never waits on Docker or
the disk. Tokens are derived from task ARN and container name, so a container is found
from its task's first report on.

``MetadataServer`` runs the app with uvicorn on 127.0.0.1 and on the Docker bridge's
gateway address (where ``host.docker.internal`` points inside containers). The sockets
are bound up front, so a port in use is reported at start, not swallowed by uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

import uvicorn

from dockyard.agent.assignment import PAUSE_CONTAINER
from dockyard.agent.config import AgentConfig
from dockyard.agent.docker_spec import task_size
from dockyard.agent.metadata import ContainerView, HealthView, TaskView, metadata_app
from dockyard.agent.runtime import ContainerRuntime, ContainerState, EngineError, PortBinding
from dockyard.agent.state import StateStore, TaskRecord
from dockyard.agent.status import ContainerStatus, HealthStatus, advance
from dockyard.agent.steps import CONTAINER_NAME_LABEL, TASK_ARN_LABEL

log = logging.getLogger(__name__)

CLUSTER_LABEL: Final = "com.amazonaws.ecs.cluster"
STATS_MAX_AGE: Final = 5.0  # seconds a container's stats are served before a refresh

StatsFetch = Callable[[str], Mapping[str, Any]]  # Docker id -> one stats sample


class TaskViews:
    """The endpoint's ``provider``. ``fresh()`` rebuilds the views before a request when
    a task changed since (``changed()``, called on every report) or they are older than
    MAX_AGE: containers are created and started without a report, and a container that
    asks for its metadata as soon as it starts must see itself running."""

    MAX_AGE: Final = 0.5  # seconds

    def __init__(self, state: StateStore, runtime: ContainerRuntime, config: AgentConfig) -> None:
        self._state, self._runtime, self._config = state, runtime, config
        self._views: tuple[TaskView, ...] = ()
        self._built_at = float("-inf")
        self._dirty = True
        self._lock = asyncio.Lock()

    def __call__(self) -> tuple[TaskView, ...]:
        return self._views

    def changed(self) -> None:
        self._dirty = True

    async def fresh(self) -> None:
        async with self._lock:  # concurrent requests share one rebuild
            if not self._dirty and time.monotonic() - self._built_at < self.MAX_AGE:
                return
            self._dirty = False
            started = time.monotonic()
            try:
                self._views = await asyncio.to_thread(self.build)
                self._built_at = started
            except Exception:
                log.exception("cannot refresh the task metadata")

    def build(self) -> tuple[TaskView, ...]:
        states = self._runtime.containers({CLUSTER_LABEL: self._config.cluster})
        return tuple(task_view(r, states, self._config) for r in self._state.load())


def task_view(
    record: TaskRecord, states: Iterable[ContainerState], config: AgentConfig
) -> TaskView:
    """The endpoint's view of one task. The runtime is the fresher source (the record is
    saved after the runner hears of a change): its containers, found by id or else by
    label, move the known status forward."""
    assignment = record.assignment
    by_id = {state.id: state for state in states}
    by_name = {
        state.labels.get(CONTAINER_NAME_LABEL): state
        for state in by_id.values()
        if state.labels.get(TASK_ARN_LABEL) == record.task_arn
    }
    definitions = {d["name"]: d for d in assignment.definition.get("containerDefinitions", [])}
    defs = {d.name: d for d in assignment.containers}
    desired = ContainerStatus.desired_for(record.desired).wire
    containers = []
    for c in record.containers:
        state = by_id.get(c.runtime_id) if c.runtime_id else by_name.get(c.name)
        known = c.known
        if state is not None:
            known = advance(known, ContainerStatus.from_runtime(state.status))
        doc: Mapping[str, Any] = definitions.get(c.name, {})
        log_config = doc.get("logConfiguration") or {}
        health = None
        if defs[c.name].health_check:
            health = HealthView(HealthStatus.from_runtime(c.health or "").value)
        containers.append(
            ContainerView(
                name=c.name,
                docker_id=state.id if state else c.runtime_id or "",
                docker_name=state.name if state else "",
                image=state_image(doc, assignment.definition, c.name),
                desired_status=desired,
                known_status=known.wire,
                labels=dict(state.labels) if state else {},
                exit_code=(
                    state.exit_code
                    if state is not None and known is ContainerStatus.STOPPED
                    else c.exit_code
                ),
                cpu=int(doc.get("cpu") or 0),
                memory=int(doc.get("memory") or doc.get("memoryReservation") or 0),
                started_at=c.started_at or (state.started_at if state else None),
                finished_at=state.finished_at if state else None,
                type="CNI_PAUSE" if c.name == PAUSE_CONTAINER else "NORMAL",
                ports=tuple(_binding(b) for b in c.network_bindings),
                health=health,
                log_driver=log_config.get("logDriver"),
                log_options=dict(log_config.get("options") or {}),
            )
        )
    try:
        cpu, memory = task_size(assignment)
    except EngineError:  # a size the engine refuses: the task never ran
        cpu, memory = None, None
    return TaskView(
        cluster=config.cluster,
        task_arn=record.task_arn,
        family=assignment.family,
        revision=str(assignment.revision),
        desired_status=record.desired.wire,
        known_status=record.known.wire,
        network_mode=assignment.network_mode,
        containers=tuple(containers),
        cpu=cpu / 1024 if cpu else None,
        memory=memory,
        pull_started_at=record.pull_started_at,
        pull_stopped_at=record.pull_stopped_at,
        execution_stopped_at=record.execution_stopped_at,
        availability_zone=config.availability_zone,
        launch_type="EC2",
    )


def state_image(doc: Mapping[str, Any], definition: Mapping[str, Any], name: str) -> str:
    """The container's image; the pause container runs the task's first image."""
    if name == PAUSE_CONTAINER:
        containers = definition.get("containerDefinitions") or [{}]
        return str(containers[0].get("image", ""))
    return str(doc.get("image", ""))


def _binding(binding: Mapping[str, Any]) -> PortBinding:
    return PortBinding(
        container_port=int(binding.get("containerPort") or 0),
        host_port=int(binding.get("hostPort") or 0),
        protocol=str(binding.get("protocol") or "tcp"),
        host_ip=str(binding.get("bindIP") or ""),
    )


class StatsCache:
    """The endpoint's ``stats``: the last sample of a container, refreshed in a thread
    when older than STATS_MAX_AGE (Docker takes a second or two per sample, which a
    request on the agent's event loop must not wait for). None until the first sample."""

    def __init__(self, fetch: StatsFetch) -> None:
        self._fetch = fetch
        self._samples: dict[str, tuple[float, Mapping[str, Any]]] = {}
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, docker_id: str) -> Mapping[str, Any] | None:
        with self._lock:
            taken, sample = self._samples.get(docker_id, (0.0, None))
            stale = time.monotonic() - taken > STATS_MAX_AGE and docker_id not in self._busy
            if stale:
                self._busy.add(docker_id)
        if stale:
            threading.Thread(target=self._refresh, args=(docker_id,), daemon=True).start()
        return sample

    def _refresh(self, docker_id: str) -> None:
        try:
            sample = self._fetch(docker_id)
            with self._lock:
                self._samples[docker_id] = (time.monotonic(), sample)
        except Exception as error:
            log.debug("no stats for %s: %s", docker_id, error)
        finally:
            with self._lock:
                self._busy.discard(docker_id)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the agent owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MetadataServer:
    """The endpoint on ``hosts`` at one port (0: any free port, the same on every host)."""

    def __init__(self, app: Any, hosts: tuple[str, ...], port: int) -> None:
        self._sockets = _bind(hosts, port)
        self.port = int(self._sockets[0].getsockname()[1])
        self.hosts = tuple(s.getsockname()[0] for s in self._sockets)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = _Server(config)

    async def serve(self) -> None:
        await self._server.serve(sockets=self._sockets)

    def stop(self) -> None:
        self._server.should_exit = True


def _bind(hosts: tuple[str, ...], port: int) -> list[socket.socket]:
    """Listening sockets: the first host must bind (its error is the caller's), the
    others are skipped with a warning (containers then cannot reach the endpoint)."""
    sockets: list[socket.socket] = []
    for host in hosts:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            sock.close()
            if not sockets:
                raise OSError(f"cannot listen on {host}:{port}: {error.strerror}") from None
            log.warning("metadata endpoint not served on %s:%d: %s", host, port, error.strerror)
            continue
        sock.listen(128)
        sock.setblocking(False)
        sockets.append(sock)
        port = port or int(sock.getsockname()[1])
    return sockets


def metadata_server(
    views: TaskViews, stats: StatsFetch | None, hosts: tuple[str, ...], port: int
) -> MetadataServer:
    app = metadata_app(views, StatsCache(stats) if stats else None)

    async def refreshing(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await views.fresh()
        await app(scope, receive, send)

    return MetadataServer(refreshing, hosts, port)


def docker_host_facts(base_url: str | None = None) -> tuple[str | None, StatsFetch | None]:
    """The default bridge's gateway address (None if there is none) and a Docker stats
    fetcher, from the engine at ``base_url`` (default: DOCKER_HOST)."""
    import docker  # the docker SDK; only the Docker-backed agent needs it

    kwargs: dict[str, Any] = docker.utils.kwargs_from_env()
    if base_url is not None:
        kwargs["base_url"] = base_url
    try:
        api = docker.APIClient(**kwargs)
        configs = (api.inspect_network("bridge").get("IPAM") or {}).get("Config") or []
    except Exception as error:
        log.warning("cannot read the docker bridge network: %s", error)
        return None, None
    gateway = next((c["Gateway"] for c in configs if c.get("Gateway")), None)
    if gateway is None:  # an engine may record only the subnet: its gateway is the first host
        subnet = next((c["Subnet"] for c in configs if ":" not in c.get("Subnet", ":")), None)
        gateway = str(next(ipaddress.ip_network(subnet).hosts())) if subnet else None

    def stats(docker_id: str) -> Mapping[str, Any]:
        sample: Mapping[str, Any] = api.stats(docker_id, stream=False)
        return sample

    return gateway, stats
