"""An in-memory ``ContainerRuntime`` with Docker's state machine, for fast engine tests.

No process runs: a started container stays running until a test says otherwise
(``exit``, ``oom``) or ``stop`` is called. What Docker enforces, the fake enforces too
(a container name is unique, a running container can't be removed, ``container:<id>``
needs that container running, a used volume can't be removed), with Docker's wording,
so the task engine meets the same refusals in unit tests as on a real host.
"""

from __future__ import annotations

import itertools
import queue
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from dockyard.agent.runtime import (
    ContainerNotFound,
    ContainerSpec,
    ContainerState,
    EngineError,
    EngineInfo,
    ImagePullError,
    PortBinding,
    RegistryAuth,
    RuntimeEvent,
)

# Where Docker's userland proxy takes dynamic ports from (Linux's default ephemeral range).
DYNAMIC_PORTS = range(32768, 61000)


@dataclass
class _Container:
    id: str
    spec: ContainerSpec
    status: str = "created"
    exit_code: int | None = None
    health: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    ports: tuple[PortBinding, ...] = ()  # as bound while running
    error: str | None = None
    oom_killed: bool = False
    ignores_sigterm: bool = False
    start_error: str | None = None


@dataclass
class _Subscriber:
    labels: Mapping[str, str]
    events: queue.Queue[RuntimeEvent | None] = field(default_factory=queue.Queue)


class FakeRuntime:
    """Thread-safe; every hook (``exit``, ``set_health``, ...) emits the events Docker would."""

    def __init__(
        self,
        *,
        cpus: int = 2,
        memory_bytes: int = 4 << 30,
        clock: Callable[[], float] = time.time,
        ports: range = DYNAMIC_PORTS,
    ) -> None:
        self._cpus = cpus
        self._memory = memory_bytes
        self._clock = clock
        self._port_range = ports
        self._lock = threading.RLock()
        self._registry: dict[str, RegistryAuth | None] = {}  # pullable image -> auth needed
        self._images: set[str] = set()  # pulled (local) images
        self._containers: dict[str, _Container] = {}
        self._volumes: dict[str, str] = {}  # name -> driver
        self._subscribers: list[_Subscriber] = []
        self._closed = False
        self._next_port = itertools.cycle(ports)
        self.pulls: list[tuple[str, RegistryAuth | None]] = []
        self.stop_timeouts: dict[str, float] = {}  # container id -> last stop timeout

    # Test hooks -----------------------------------------------------------------

    def add_image(
        self, image: str, *, cached: bool = True, auth: RegistryAuth | None = None
    ) -> None:
        """Make ``image`` pullable (with ``auth`` required, if given), and local if ``cached``."""
        with self._lock:
            self._registry[_normalize(image)] = auth
            if cached:
                self._images.add(_normalize(image))

    def exit(self, container_id: str, code: int) -> None:
        """The container's main process exits with ``code`` (no-op unless running)."""
        with self._lock:
            self._die(self._get(container_id), code)

    def oom(self, container_id: str) -> None:
        """The kernel's OOM killer takes the main process."""
        with self._lock:
            container = self._get(container_id)
            if container.status == "running":
                container.oom_killed = True
                self._emit(container, "oom")
                self._die(container, 137)

    def set_health(self, container_id: str, health: str) -> None:
        with self._lock:
            container = self._get(container_id)
            container.health = health
            self._emit(container, "health_status")

    def ignore_sigterm(self, container_id: str, ignores: bool = True) -> None:
        """The process ignores the stop signal, so ``stop`` ends with SIGKILL (137)."""
        with self._lock:
            self._get(container_id).ignores_sigterm = ignores

    def fail_start(self, container_id: str, error: str) -> None:
        """The next ``start`` fails like an OCI runtime error (e.g. a missing entrypoint)."""
        with self._lock:
            self._get(container_id).start_error = error

    def spec(self, container_id: str) -> ContainerSpec:
        with self._lock:
            return self._get(container_id).spec

    # ContainerRuntime -------------------------------------------------------------

    def info(self) -> EngineInfo:
        return EngineInfo(
            cpus=self._cpus,
            memory_bytes=self._memory,
            version="20.10.24-fake",
            api_version="1.41",
            os_type="linux",
            architecture="x86_64",
            logging_drivers=("json-file", "local", "none"),
        )

    def has_image(self, image: str) -> bool:
        with self._lock:
            return _normalize(image) in self._images

    def pull(self, image: str, auth: RegistryAuth | None) -> None:
        name = _normalize(image)
        with self._lock:
            self.pulls.append((image, auth))
            if name not in self._registry:
                raise ImagePullError(
                    "CannotPullContainerError: Error response from daemon: "
                    f"manifest for {name} not found: manifest unknown: manifest unknown"
                )
            needed = self._registry[name]
            if needed is not None and needed != auth:
                raise ImagePullError(
                    "CannotPullContainerError: Error response from daemon: "
                    f"pull access denied for {name}: no basic auth credentials"
                )
            self._images.add(name)

    def remove_image(self, image: str) -> None:
        with self._lock:
            name = _normalize(image)
            if any(_normalize(c.spec.image) == name for c in self._containers.values()):
                raise EngineError(f"CannotRemoveImageError: image {name} is in use by a container")
            self._images.discard(name)

    def create(self, spec: ContainerSpec) -> str:
        with self._lock:
            if _normalize(spec.image) not in self._images:
                raise self._create_error(f"No such image: {_normalize(spec.image)}")
            if any(c.spec.name == spec.name for c in self._containers.values()):
                raise self._create_error(
                    f'Conflict. The container name "/{spec.name}" is already in use'
                )
            for link in spec.links:
                if self._find(name := link.split(":")[0]) is None:
                    raise self._create_error(
                        f"could not get container for {name}: No such container: {name}"
                    )
            for source in spec.volumes_from:
                if self._find(name := source.split(":")[0]) is None:
                    raise self._create_error(f"No such container: {name}")
            for mount in spec.mounts:
                if mount.kind == "volume":
                    self._volumes.setdefault(mount.source, "local")  # as Docker auto-creates
            container = _Container(id=secrets.token_hex(32), spec=spec)
            self._containers[container.id] = container
            return container.id

    def start(self, container_id: str) -> None:
        prefix = "CannotStartContainerError: Error response from daemon"
        with self._lock:
            container = self._get(container_id)
            if container.status == "running":
                return
            if container.start_error is not None:
                # Docker leaves such a container "created", with the error recorded.
                container.error, container.start_error = container.start_error, None
                raise EngineError(f"{prefix}: {container.error}")
            mode = container.spec.network_mode
            if mode.startswith("container:"):
                peer = self._find(mode.removeprefix("container:"))
                if peer is None or peer.status != "running":
                    raise EngineError(
                        f"{prefix}: cannot join network of a non running container: {mode[10:]}"
                    )
            container.ports = self._bind(container)
            container.status, container.exit_code, container.error = "running", None, None
            container.started_at, container.finished_at = self._clock(), None
            container.oom_killed = False
            container.health = "starting" if container.spec.health_check else None
            self._emit(container, "start")

    def stop(self, container_id: str, timeout: float) -> None:
        with self._lock:
            container = self._get(container_id)
            self.stop_timeouts[container.id] = timeout
            if container.status != "running":
                return
            signum = _signal_number(container.spec.stop_signal or "SIGTERM")
            self._die(container, 137 if container.ignores_sigterm else 128 + signum)

    def inspect(self, container_id: str) -> ContainerState:
        with self._lock:
            c = self._get(container_id)
            return ContainerState(
                id=c.id,
                name=c.spec.name,
                labels=dict(c.spec.labels),
                status=c.status,
                exit_code=c.exit_code,
                health=c.health,
                started_at=c.started_at,
                finished_at=c.finished_at,
                ports=_sorted(c.ports if c.status == "running" else c.spec.ports),
                error=c.error,
                oom_killed=c.oom_killed,
            )

    def remove(self, container_id: str) -> None:
        with self._lock:
            container = self._find(container_id)
            if container is None:
                return
            if container.status == "running":
                raise EngineError(
                    f"CannotRemoveContainerError: You cannot remove a running container "
                    f"{container.id}. Stop the container before attempting removal or force remove"
                )
            del self._containers[container.id]

    def containers(self, labels: Mapping[str, str]) -> list[ContainerState]:
        with self._lock:
            ids = [c.id for c in self._containers.values() if _matches(c.spec.labels, labels)]
            return [self.inspect(container_id) for container_id in ids]

    def events(self, labels: Mapping[str, str]) -> Iterator[RuntimeEvent]:
        subscriber = _Subscriber(dict(labels))
        with self._lock:
            if self._closed:
                subscriber.events.put(None)
            self._subscribers.append(subscriber)
        return _drain(subscriber.events)

    def create_volume(
        self, name: str, driver: str, options: Mapping[str, str], labels: Mapping[str, str]
    ) -> None:
        with self._lock:
            self._volumes.setdefault(name, driver)

    def remove_volume(self, name: str) -> None:
        with self._lock:
            users = [
                c.id
                for c in self._containers.values()
                if any(m.kind == "volume" and m.source == name for m in c.spec.mounts)
            ]
            if users:
                raise EngineError(
                    f"CannotRemoveVolumeError: remove {name}: volume is in use - [{users[0]}]"
                )
            self._volumes.pop(name, None)

    def volumes(self) -> dict[str, str]:
        """Volume name -> driver (Docker's `volume ls`, for tests)."""
        with self._lock:
            return dict(self._volumes)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            subscribers, self._subscribers = self._subscribers, []
        for subscriber in subscribers:
            subscriber.events.put(None)

    # Internals -------------------------------------------------------------------

    def _get(self, container_id: str) -> _Container:
        container = self._find(container_id)
        if container is None:
            raise ContainerNotFound(f"No such container: {container_id}")
        return container

    def _find(self, ref: str) -> _Container | None:
        """By id, unique id prefix, or name, as Docker resolves references."""
        if ref in self._containers:
            return self._containers[ref]
        named = [c for c in self._containers.values() if c.spec.name == ref.lstrip("/")]
        prefixed = [c for c in self._containers.values() if ref and c.id.startswith(ref)]
        matches = named or prefixed
        return matches[0] if len(matches) == 1 else None

    def _create_error(self, message: str) -> EngineError:
        return EngineError(f"CannotCreateContainerError: Error response from daemon: {message}")

    def _bind(self, container: _Container) -> tuple[PortBinding, ...]:
        taken = {
            (p.host_ip, p.host_port, p.protocol)
            for c in self._containers.values()
            if c.status == "running"
            for p in c.ports
        }
        bound = []
        for port in container.spec.ports:
            host_port = port.host_port
            if host_port == 0:
                host_port = self._free_port(taken, port)
            elif (port.host_ip, host_port, port.protocol) in taken:
                raise EngineError(
                    "CannotStartContainerError: Error response from daemon: driver failed "
                    f"programming external connectivity on endpoint {container.spec.name}: "
                    f"Bind for {port.host_ip}:{host_port} failed: port is already allocated"
                )
            taken.add((port.host_ip, host_port, port.protocol))
            bound.append(replace(port, host_port=host_port))
        return tuple(bound)

    def _free_port(self, taken: set[tuple[str, int, str]], port: PortBinding) -> int:
        for _ in self._port_range:
            candidate = next(self._next_port)
            if (port.host_ip, candidate, port.protocol) not in taken:
                return candidate
        raise EngineError("CannotStartContainerError: no free host port in the dynamic range")

    def _die(self, container: _Container, code: int) -> None:
        if container.status != "running":
            return
        container.status, container.exit_code = "exited", code
        container.finished_at = self._clock()
        if container.health is not None:
            container.health = "unhealthy"  # what Docker reports for an exited container
        self._emit(container, "die")

    def _emit(self, container: _Container, action: str) -> None:
        event = RuntimeEvent(container.id, action, dict(container.spec.labels))
        for subscriber in self._subscribers:
            if _matches(container.spec.labels, subscriber.labels):
                subscriber.events.put(event)


def _drain(events: queue.Queue[RuntimeEvent | None]) -> Iterator[RuntimeEvent]:
    while (event := events.get()) is not None:
        yield event


def _matches(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in wanted.items())


def _sorted(ports: tuple[PortBinding, ...]) -> tuple[PortBinding, ...]:
    return tuple(sorted(ports, key=lambda p: (p.container_port, p.protocol, p.host_ip)))


def _normalize(image: str) -> str:
    """Docker's default tag: "busybox" is "busybox:latest"; digests stay as they are."""
    last = image.rsplit("/", 1)[-1]
    return image if "@" in image or ":" in last else f"{image}:latest"


def _signal_number(name: str) -> int:
    if name.isdigit():
        return int(name)
    name = name.upper()
    return int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])
