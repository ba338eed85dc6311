"""``ContainerRuntime`` on Docker Engine, through the docker SDK's low-level API client.

Every engine failure becomes an ``EngineError`` whose ``reason`` reads like the ECS
agent's stoppedReason ("CannotPullContainerError: ...", "CannotStartContainerError:
..."), so the task engine can pass it on unchanged.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

import docker
import docker.errors
import docker.types
import docker.utils

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

# The events the task engine acts on; the rest (exec_*, attach, kill, ...) is noise.
_ACTIONS = frozenset({"die", "start", "health_status", "oom"})
# Keys Docker mixes into an event's Actor.Attributes next to the container's labels.
_EVENT_KEYS = frozenset({"image", "name", "exitCode", "signal", "execDuration"})
_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


class DockerRuntime:
    """Docker Engine at ``base_url``, or wherever DOCKER_HOST (and friends) point."""

    def __init__(self, base_url: str | None = None) -> None:
        kwargs: dict[str, Any] = docker.utils.kwargs_from_env()
        if base_url is not None:
            kwargs["base_url"] = base_url
        with _engine_errors("Cannot connect to the Docker daemon"):
            self._api = docker.APIClient(**kwargs)
        self._lock = threading.Lock()
        self._streams: set[Any] = set()

    def info(self) -> EngineInfo:
        with _engine_errors("DockerInfoError"):
            info = self._api.info()
            version = self._api.version()
        return EngineInfo(
            cpus=int(info["NCPU"]),
            memory_bytes=int(info["MemTotal"]),
            version=str(info["ServerVersion"]),
            api_version=str(version["ApiVersion"]),
            os_type=str(info["OSType"]),
            architecture=str(info["Architecture"]),
            logging_drivers=tuple((info.get("Plugins") or {}).get("Log") or ()),
            cgroup_driver=str(info.get("CgroupDriver") or "") or None,
            cgroup_version=str(info.get("CgroupVersion") or "") or None,  # API 1.40+
        )

    def has_image(self, image: str) -> bool:
        try:
            self._api.inspect_image(image)
        except docker.errors.NotFound:
            return False
        except (docker.errors.DockerException, OSError) as exc:
            raise EngineError(f"DockerInspectImageError: {_explain(exc)}") from exc
        return True

    def pull(self, image: str, auth: RegistryAuth | None) -> None:
        auth_config = None
        if auth is not None:
            auth_config = {
                "username": auth.username,
                "password": auth.password,
                "serveraddress": auth.server,
            }
        try:
            # The daemon reports late failures (a missing layer) inside the stream.
            for line in self._api.pull(image, stream=True, decode=True, auth_config=auth_config):
                if "error" in line:
                    raise ImagePullError(f"CannotPullContainerError: {line['error']}")
        except (docker.errors.DockerException, OSError) as exc:
            reason = f"CannotPullContainerError: Error response from daemon: {_explain(exc)}"
            raise ImagePullError(reason) from exc

    def remove_image(self, image: str) -> None:
        try:
            self._api.remove_image(image)
        except docker.errors.NotFound:
            return
        except (docker.errors.DockerException, OSError) as exc:
            raise EngineError(f"CannotRemoveImageError: {_explain(exc)}") from exc

    def create(self, spec: ContainerSpec) -> str:
        try:
            reply = self._api.create_container(**_create_kwargs(self._api, spec))
        except (docker.errors.DockerException, OSError) as exc:
            # A 404 here is the image, not the container: no ContainerNotFound.
            reason = f"CannotCreateContainerError: Error response from daemon: {_explain(exc)}"
            raise EngineError(reason) from exc
        return str(reply["Id"])

    def start(self, container_id: str) -> None:
        with _engine_errors("CannotStartContainerError: Error response from daemon"):
            self._api.start(container_id)

    def stop(self, container_id: str, timeout: float) -> None:
        # The API takes whole seconds; rounding up never cuts a grace period short.
        with _engine_errors("CannotStopContainerError"):
            self._api.stop(container_id, timeout=max(0, math.ceil(timeout)))

    def inspect(self, container_id: str) -> ContainerState:
        with _engine_errors("CannotInspectContainerError"):
            data = self._api.inspect_container(container_id)
        return _state(data)

    def remove(self, container_id: str) -> None:
        try:
            self._api.remove_container(container_id, v=True)
        except docker.errors.NotFound:
            return
        except (docker.errors.DockerException, OSError) as exc:
            raise EngineError(f"CannotRemoveContainerError: {_explain(exc)}") from exc

    def containers(self, labels: Mapping[str, str]) -> list[ContainerState]:
        with _engine_errors("CannotListContainersError"):
            found = self._api.containers(all=True, filters={"label": _label_filter(labels)})
        states = []
        for summary in found:
            try:
                states.append(self.inspect(summary["Id"]))
            except ContainerNotFound:
                continue  # removed between the list and the inspect
        return states

    def events(self, labels: Mapping[str, str]) -> Iterator[RuntimeEvent]:
        # Subscribe now, not at the first next(): events between the call and the
        # first read must not be lost.
        filters: dict[str, Any] = {"type": "container"}
        if labels:
            filters["label"] = _label_filter(labels)
        with _engine_errors("DockerEventsError"):
            stream = self._api.events(decode=True, filters=filters)
        with self._lock:
            self._streams.add(stream)
        return self._read_events(stream)

    def _read_events(self, stream: Any) -> Iterator[RuntimeEvent]:
        # The stream also ends if the daemon drops it (restart): callers resubscribe.
        try:
            for event in stream:
                action = str(event.get("Action") or event.get("status") or "").split(":")[0]
                if action not in _ACTIONS:
                    continue
                actor = event.get("Actor") or {}
                attributes = actor.get("Attributes") or {}
                yield RuntimeEvent(
                    container_id=str(actor.get("ID") or event.get("id")),
                    action=action,
                    labels={k: v for k, v in attributes.items() if k not in _EVENT_KEYS},
                )
        finally:
            with self._lock:
                self._streams.discard(stream)
            with suppress(OSError):  # close() may have shut the socket already
                stream.close()

    def create_volume(
        self, name: str, driver: str, options: Mapping[str, str], labels: Mapping[str, str]
    ) -> None:
        with _engine_errors("CannotCreateVolumeError"):
            self._api.create_volume(
                name=name, driver=driver, driver_opts=dict(options), labels=dict(labels)
            )

    def remove_volume(self, name: str) -> None:
        try:
            self._api.remove_volume(name)
        except docker.errors.NotFound:
            return
        except (docker.errors.DockerException, OSError) as exc:
            raise EngineError(f"CannotRemoveVolumeError: {_explain(exc)}") from exc

    def close(self) -> None:
        """Ends every open ``events()`` stream and releases the connection pool."""
        with self._lock:
            streams, self._streams = list(self._streams), set()
        for stream in streams:
            with suppress(OSError):  # already closed by the daemon
                stream.close()
        self._api.close()


@contextmanager
def _engine_errors(prefix: str) -> Iterator[None]:
    try:
        yield
    except docker.errors.NotFound as exc:
        raise ContainerNotFound(f"{prefix}: {_explain(exc)}") from exc
    except (docker.errors.DockerException, OSError) as exc:
        # requests' errors are OSErrors: a daemon that went away lands here too.
        raise EngineError(f"{prefix}: {_explain(exc)}") from exc


def _explain(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc)


def _label_filter(labels: Mapping[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in labels.items()]


def _create_kwargs(api: Any, spec: ContainerSpec) -> dict[str, Any]:
    """``ContainerSpec`` -> the keyword arguments of ``APIClient.create_container``."""
    bindings: dict[str, list[tuple[str, int | None]]] = {}
    for port in spec.ports:
        # HostPort "" asks Docker for a port from its ephemeral range.
        bindings.setdefault(f"{port.container_port}/{port.protocol}", []).append(
            (port.host_ip, port.host_port or None)
        )
    mounts, tmpfs = [], {}
    for mount in spec.mounts:
        if mount.kind == "tmpfs":
            # HostConfig.Tmpfs (not a tmpfs Mount) takes mount options such as noexec.
            flags = [f"{k}={v}" if v else k for k, v in mount.options.items()]
            tmpfs[mount.target] = ",".join([*flags, *(["ro"] if mount.read_only else [])])
            continue
        driver_config = None
        if mount.kind == "volume" and mount.options:
            opts = dict(mount.options)
            driver_config = docker.types.DriverConfig(opts.pop("driver", "local"), opts)
        mounts.append(
            docker.types.Mount(
                target=mount.target,
                source=mount.source,
                type=mount.kind,
                read_only=mount.read_only,
                driver_config=driver_config,
            )
        )
    host_config = api.create_host_config(
        port_bindings=bindings or None,
        network_mode=spec.network_mode,
        links=[tuple(link.split(":", 1)) if ":" in link else (link, None) for link in spec.links]
        or None,
        extra_hosts=list(spec.extra_hosts) or None,
        dns=list(spec.dns_servers) or None,
        cpu_shares=spec.cpu_shares,
        mem_limit=spec.memory_bytes,
        mem_reservation=spec.memory_reservation_bytes,
        nano_cpus=spec.nano_cpus,
        cgroup_parent=spec.cgroup_parent,
        mounts=mounts or None,
        tmpfs=tmpfs or None,
        volumes_from=list(spec.volumes_from) or None,
        read_only=spec.read_only_root or None,
        ulimits=[docker.types.Ulimit(name=n, soft=s, hard=h) for n, s, h in spec.ulimits] or None,
        privileged=spec.privileged,
        init=spec.init or None,
        cap_add=list(spec.cap_add) or None,
        cap_drop=list(spec.cap_drop) or None,
        shm_size=spec.shm_size_bytes,
        log_config=(
            docker.types.LogConfig(type=spec.log_driver, config=dict(spec.log_options))
            if spec.log_driver
            else None
        ),
    )
    health = spec.health_check
    return {
        "image": spec.image,
        "name": spec.name,
        "labels": dict(spec.labels),
        "command": list(spec.command) if spec.command is not None else None,
        "entrypoint": list(spec.entrypoint) if spec.entrypoint is not None else None,
        "environment": dict(spec.environment) or None,
        "working_dir": spec.working_dir,
        "user": spec.user,
        "hostname": spec.hostname,
        "ports": [(p.container_port, p.protocol) for p in spec.ports] or None,
        "stop_signal": spec.stop_signal,
        "healthcheck": (
            {
                "test": list(health.test),
                "interval": _nanoseconds(health.interval),
                "timeout": _nanoseconds(health.timeout),
                "retries": health.retries,
                "start_period": _nanoseconds(health.start_period),
            }
            if health
            else None
        ),
        "host_config": host_config,
    }


def _nanoseconds(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


def _state(data: Mapping[str, Any]) -> ContainerState:
    state = data.get("State") or {}
    status = str(state.get("Status", ""))
    health = state.get("Health")
    labels = (data.get("Config") or {}).get("Labels") or {}
    return ContainerState(
        id=str(data["Id"]),
        name=str(data.get("Name", "")).lstrip("/"),
        labels=dict(labels),
        status=status,
        exit_code=int(state.get("ExitCode", 0)) if status in ("exited", "dead") else None,
        health=str(health["Status"]) if health else None,
        started_at=_epoch(state.get("StartedAt")),
        finished_at=_epoch(state.get("FinishedAt")),
        ports=_ports(data),
        error=state.get("Error") or None,
        oom_killed=bool(state.get("OOMKilled", False)),
    )


def _ports(data: Mapping[str, Any]) -> tuple[PortBinding, ...]:
    """The bound ports while running; the requested ones (0 = dynamic) otherwise."""
    bound = (data.get("NetworkSettings") or {}).get("Ports") or {}
    if not bound:
        bound = (data.get("HostConfig") or {}).get("PortBindings") or {}
    ports = []
    for key, entries in bound.items():
        container_port, _, protocol = key.partition("/")
        for entry in entries or ():  # None: exposed but not published
            ports.append(
                PortBinding(
                    container_port=int(container_port),
                    host_port=int(entry.get("HostPort") or 0),
                    protocol=protocol or "tcp",
                    host_ip=str(entry.get("HostIp") or "0.0.0.0"),
                )
            )
    return tuple(sorted(ports, key=lambda p: (p.container_port, p.protocol, p.host_ip)))


def _epoch(text: str | None) -> float | None:
    """Docker's RFC 3339 nanosecond timestamps; its zero time means "never"."""
    if not text or text.startswith("0001-01-01"):
        return None
    match = _TIMESTAMP.match(text)
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    moment = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return moment.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)
