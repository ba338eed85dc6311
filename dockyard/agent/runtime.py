"""The container runtime seam: what the agent asks of a container engine.

``DockerRuntime`` (docker_runtime.py) talks to Docker Engine through the docker SDK;
``FakeRuntime`` (fake_runtime.py) simulates one in memory for fast engine tests. Both
pass the one conformance suite in ``tests/unit/test_runtime_conformance.py``.

A ``ContainerSpec`` is already Docker's vocabulary: the translation from an ECS
container definition happens in ``docker_spec.py``, not here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol


class EngineError(Exception):
    """The engine refused or failed; ``reason`` is fit for a task's stoppedReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ImagePullError(EngineError):
    """The image could not be pulled (missing, no access, registry down)."""


class ContainerNotFound(EngineError):
    """No container with that id (removed behind our back)."""


@dataclass(frozen=True)
class RegistryAuth:
    username: str
    password: str
    server: str  # registry host[:port]


@dataclass(frozen=True)
class PortBinding:
    container_port: int
    host_port: int  # 0: let the engine choose (bridge dynamic ports)
    protocol: str = "tcp"
    host_ip: str = "127.0.0.1"


@dataclass(frozen=True)
class Mount:
    target: str  # path in the container
    source: str  # host path or volume name
    kind: str = "bind"  # bind | volume | tmpfs
    read_only: bool = False
    options: Mapping[str, str] = field(default_factory=dict)  # tmpfs size/mode, driver opts


@dataclass(frozen=True)
class HealthCheckSpec:
    test: tuple[str, ...]  # ("CMD-SHELL", "...") or ("CMD", ...)
    interval: float
    timeout: float
    retries: int
    start_period: float


@dataclass(frozen=True)
class ContainerSpec:
    name: str  # the engine's container name (unique on the host)
    image: str
    labels: Mapping[str, str]
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None
    hostname: str | None = None
    # "bridge" | "host" | "none" | "container:<id>" (awsvpc tasks join the pause container)
    network_mode: str = "bridge"
    ports: tuple[PortBinding, ...] = ()
    links: tuple[str, ...] = ()  # "container-name:alias"
    extra_hosts: tuple[str, ...] = ()  # "host:ip"
    dns_servers: tuple[str, ...] = ()
    cpu_shares: int | None = None
    memory_bytes: int | None = None  # hard limit
    memory_reservation_bytes: int | None = None  # soft limit
    nano_cpus: int | None = None
    cgroup_parent: str | None = None  # the task's cgroup when task-level limits apply
    mounts: tuple[Mount, ...] = ()
    volumes_from: tuple[str, ...] = ()  # "container-id[:ro]"
    read_only_root: bool = False
    ulimits: tuple[tuple[str, int, int], ...] = ()  # (name, soft, hard)
    privileged: bool = False
    init: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    shm_size_bytes: int | None = None
    log_driver: str | None = None
    log_options: Mapping[str, str] = field(default_factory=dict)
    health_check: HealthCheckSpec | None = None
    stop_signal: str | None = None


@dataclass(frozen=True)
class ContainerState:
    id: str
    name: str
    labels: Mapping[str, str]
    status: str  # created | running | exited | dead | removing | paused
    exit_code: int | None = None
    health: str | None = None  # starting | healthy | unhealthy | None without a check
    started_at: float | None = None
    finished_at: float | None = None
    ports: tuple[PortBinding, ...] = ()  # as bound (dynamic host ports resolved)
    error: str | None = None  # the engine's error text, if the start failed
    oom_killed: bool = False


@dataclass(frozen=True)
class RuntimeEvent:
    """Something happened to a container: "die", "start", "health_status", "oom"."""

    container_id: str
    action: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class EngineInfo:
    cpus: int
    memory_bytes: int
    version: str  # the engine's version, e.g. "20.10.24"
    api_version: str
    os_type: str  # "linux"
    architecture: str  # "x86_64" / "aarch64"
    logging_drivers: tuple[str, ...] = ()
    cgroup_driver: str | None = None  # "cgroupfs" | "systemd"; None: not known
    cgroup_version: str | None = None  # "1" | "2"; None: not known


class ContainerRuntime(Protocol):
    def info(self) -> EngineInfo: ...

    def has_image(self, image: str) -> bool: ...

    def pull(self, image: str, auth: RegistryAuth | None) -> None:
        """Pull ``image``; raises ImagePullError with a reason fit for stoppedReason."""

    def remove_image(self, image: str) -> None: ...

    def create(self, spec: ContainerSpec) -> str:
        """Create (not start) a container; returns its id. EngineError on refusal."""

    def start(self, container_id: str) -> None: ...

    def stop(self, container_id: str, timeout: float) -> None:
        """SIGTERM (or the stop signal), then SIGKILL after ``timeout`` seconds."""

    def inspect(self, container_id: str) -> ContainerState:
        """Raises ContainerNotFound when the container is gone."""

    def remove(self, container_id: str) -> None:
        """Remove a stopped container (and its anonymous volumes); absent is fine."""

    def containers(self, labels: Mapping[str, str]) -> list[ContainerState]:
        """Every container (running or not) carrying all of ``labels``."""

    def events(self, labels: Mapping[str, str]) -> Iterator[RuntimeEvent]:
        """Blocking stream of events for containers carrying ``labels``; ends on close()."""

    def create_volume(
        self, name: str, driver: str, options: Mapping[str, str], labels: Mapping[str, str]
    ) -> None: ...

    def remove_volume(self, name: str) -> None: ...

    def close(self) -> None: ...
