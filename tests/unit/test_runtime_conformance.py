"""One conformance suite for every ``ContainerRuntime``: FakeRuntime and DockerRuntime.

Each case runs on both. The fake runs no processes, so where a real container's
process acts on its own (exits, ignores SIGTERM, passes its health check) the
``Rig`` tells the fake to do the same; on Docker those calls do nothing and the busybox
commands do the work. Cases that only mean something with real processes (a page
served on a published port, environment seen by the process, every spec field landing
in Docker's HostConfig) take the ``docker_rig`` fixture alone.

Docker cases need an engine (DOCKER_HOST; ``bin/test`` starts one) and carry the
``e2e`` marker. Every container and volume is labelled ``dockyard-test=1`` and removed
after its test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from dockyard.agent.docker_runtime import DockerRuntime
from dockyard.agent.fake_runtime import FakeRuntime
from dockyard.agent.runtime import (
    ContainerNotFound,
    ContainerRuntime,
    ContainerSpec,
    ContainerState,
    EngineError,
    HealthCheckSpec,
    ImagePullError,
    Mount,
    PortBinding,
    RegistryAuth,
    RuntimeEvent,
)

BUSYBOX = "dockyard-test/busybox:latest"
MISSING = "127.0.0.1:1/none:latest"  # a registry that refuses at once: offline and fast
HTTPD = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -h /www -p "
WAIT = 20.0  # seconds any awaited state may take on a busy engine

e2e = pytest.mark.e2e


def _docker_url() -> str | None:
    """DOCKER_HOST, the system socket, else the engine ``bin/test`` leaves running."""
    private = Path(__file__).resolve().parents[2] / ".dockyard" / "docker" / "docker.sock"
    if "DOCKER_HOST" in os.environ or Path("/var/run/docker.sock").exists():
        return None
    return f"unix://{private}" if private.exists() else None


@pytest.fixture(scope="session")
def docker_api() -> Iterator[Any]:
    kwargs = docker.utils.kwargs_from_env()
    if url := _docker_url():
        kwargs["base_url"] = url
    try:
        api = docker.APIClient(**kwargs)
        api.ping()
    except Exception as exc:
        pytest.fail(
            f"no Docker engine reachable ({exc}); run bin/test, which starts one, or set "
            "DOCKER_HOST (DOCKYARD_TEST_DOCKER=0 leaves the e2e cases out)"
        )
    yield api
    _clean(api, {"dockyard-test": "1"})
    api.close()


@pytest.fixture(scope="session")
def busybox_image(docker_api: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """FROM scratch + Debian's static busybox: sh, sleep, httpd, wget; nothing pulled."""
    context = tmp_path_factory.mktemp("busybox-image")
    shutil.copy(shutil.which("busybox") or "/bin/busybox", context / "busybox")
    (context / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
    )
    for chunk in docker_api.build(path=str(context), tag=BUSYBOX, rm=True, decode=True):
        if "error" in chunk:
            pytest.fail(f"building {BUSYBOX}: {chunk['error']}")
    return BUSYBOX


@pytest.fixture(scope="session")
def loopback_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry (distribution) on 127.0.0.1: a real pull, still offline."""
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not Path(binary).exists():
        pytest.fail("docker-registry is missing: apt-get install docker-registry")
    root = tmp_path_factory.mktemp("registry")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    (root / "config.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: {address}\n"
    )
    log = (root / "registry.log").open("wb")
    process = subprocess.Popen([binary, "serve", str(root / "config.yml")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + WAIT
        while not _answers(f"http://{address}/v2/"):
            assert process.poll() is None, (root / "registry.log").read_text()
            assert time.monotonic() < deadline, "docker-registry did not come up"
            time.sleep(0.1)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=WAIT)
        log.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _clean(api: Any, labels: dict[str, str]) -> None:
    selector = [f"{k}={v}" for k, v in labels.items()]
    for summary in api.containers(all=True, filters={"label": selector}):
        api.remove_container(summary["Id"], v=True, force=True)
    for volume in api.volumes(filters={"label": selector}).get("Volumes") or ():
        api.remove_volume(volume["Name"], force=True)


class EventLog:
    """Collects ``runtime.events(labels)`` on a thread, so tests can wait for one."""

    def __init__(self, runtime: ContainerRuntime, labels: dict[str, str]) -> None:
        self.events: list[RuntimeEvent] = []
        self._changed = threading.Condition()
        stream = runtime.events(labels)
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: Iterator[RuntimeEvent]) -> None:
        for event in stream:
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def wait(self, container_id: str, action: str) -> RuntimeEvent:
        def found() -> RuntimeEvent | None:
            return next(
                (e for e in self.events if (e.container_id, e.action) == (container_id, action)),
                None,
            )

        with self._changed:
            self._changed.wait_for(lambda: found() is not None, timeout=WAIT)
            event = found()
        assert event is not None, f"no {action!r} event for {container_id[:12]}: {self.events}"
        return event

    def actions(self, container_id: str) -> list[str]:
        with self._changed:
            return [e.action for e in self.events if e.container_id == container_id]


@dataclass
class Rig:
    runtime: ContainerRuntime
    image: str
    real: bool
    labels: dict[str, str] = field(
        default_factory=lambda: {"dockyard-test": "1", "dockyard-test-case": uuid.uuid4().hex}
    )

    @property
    def fake(self) -> FakeRuntime:
        assert isinstance(self.runtime, FakeRuntime)
        return self.runtime

    def spec(self, *command: str, **fields: Any) -> ContainerSpec:
        labels = {**self.labels, **fields.pop("labels", {})}
        name = f"dockyard-test-{uuid.uuid4().hex[:12]}"
        return ContainerSpec(
            name=name, image=self.image, labels=labels, command=command or None, **fields
        )

    def run(self, *command: str, **fields: Any) -> str:
        container_id = self.runtime.create(self.spec(*command, **fields))
        self.runtime.start(container_id)
        return container_id

    # What a real process does by itself; the fake is told. -------------------------

    def process_exits(self, container_id: str, code: int) -> None:
        if not self.real:
            self.fake.exit(container_id, code)

    def process_ignores_sigterm(self, container_id: str) -> None:
        if not self.real:
            self.fake.ignore_sigterm(container_id)

    def health_check_passes(self, container_id: str) -> None:
        if not self.real:
            self.fake.set_health(container_id, "healthy")

    def start_will_fail(self, container_id: str, error: str) -> None:
        if not self.real:
            self.fake.fail_start(container_id, error)

    def publish(self, request: pytest.FixtureRequest) -> str:
        """An image that is in a registry but not on this host."""
        if not self.real:
            self.fake.add_image("registry.test/pulled:1", cached=False)
            return "registry.test/pulled:1"
        api = request.getfixturevalue("docker_api")
        repository = f"{request.getfixturevalue('loopback_registry')}/dockyard-test/pulled"
        tag = uuid.uuid4().hex[:12]
        api.tag(self.image, repository, tag)
        for chunk in api.push(repository, tag, stream=True, decode=True):
            assert "error" not in chunk, chunk
        api.remove_image(f"{repository}:{tag}")  # only untags: busybox stays
        return f"{repository}:{tag}"

    def wait_until(
        self, container_id: str, done: Callable[[ContainerState], bool]
    ) -> ContainerState:
        deadline = time.monotonic() + WAIT
        while not done(state := self.runtime.inspect(container_id)):
            assert time.monotonic() < deadline, f"gave up waiting; last state {state}"
            time.sleep(0.05)
        return state

    def wait_exited(self, container_id: str) -> ContainerState:
        return self.wait_until(container_id, lambda s: s.status == "exited")


@pytest.fixture(params=["fake", pytest.param("docker", marks=e2e)])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    if request.param == "fake":
        fake = FakeRuntime()
        fake.add_image(BUSYBOX)
        yield Rig(fake, BUSYBOX, real=False)
        fake.close()
    else:
        yield from _docker_rig(request)


@pytest.fixture(params=[pytest.param("docker", marks=e2e)])
def docker_rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    yield from _docker_rig(request)


def _docker_rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    api = request.getfixturevalue("docker_api")
    image = request.getfixturevalue("busybox_image")
    runtime = DockerRuntime(_docker_url())
    rig = Rig(runtime, image, real=True)
    yield rig
    runtime.close()
    _clean(api, rig.labels)


# The cases ----------------------------------------------------------------------------


def test_info_describes_the_engine(rig: Rig) -> None:
    info = rig.runtime.info()
    assert info.cpus >= 1
    assert info.memory_bytes > 0
    assert info.version
    assert info.api_version
    assert info.os_type == "linux"
    assert info.architecture
    assert "json-file" in info.logging_drivers
    assert info.cgroup_driver in (None, "cgroupfs", "systemd")
    assert info.cgroup_version in (None, "1", "2")


def test_a_missing_image_fails_to_pull_with_a_reason(rig: Rig) -> None:
    assert rig.runtime.has_image(rig.image)
    assert not rig.runtime.has_image(MISSING)
    for auth in (None, RegistryAuth("AWS", "secret", "127.0.0.1:1")):
        with pytest.raises(ImagePullError) as raised:
            rig.runtime.pull(MISSING, auth)
        assert raised.value.reason.startswith("CannotPullContainerError:")
    assert not rig.runtime.has_image(MISSING)


def test_pull_fetches_an_image_from_its_registry(rig: Rig, request: pytest.FixtureRequest) -> None:
    image = rig.publish(request)
    assert not rig.runtime.has_image(image)
    rig.runtime.pull(image, RegistryAuth("AWS", "secret", image.split("/")[0]))
    assert rig.runtime.has_image(image)
    rig.runtime.remove_image(image)
    assert not rig.runtime.has_image(image)
    rig.runtime.remove_image(image)  # absent is fine


def test_create_start_and_inspect(rig: Rig) -> None:
    spec = rig.spec("sleep", "60", labels={"com.amazonaws.ecs.container-name": "web"})
    container_id = rig.runtime.create(spec)

    created = rig.runtime.inspect(container_id)
    assert (created.id, created.name, created.status) == (container_id, spec.name, "created")
    assert created.labels["com.amazonaws.ecs.container-name"] == "web"
    assert created.labels["dockyard-test-case"] == rig.labels["dockyard-test-case"]
    assert (created.exit_code, created.started_at, created.health) == (None, None, None)

    before = time.time()
    rig.runtime.start(container_id)
    running = rig.runtime.inspect(container_id)
    assert running.status == "running"
    assert running.exit_code is None
    assert running.started_at is not None and before - 5 < running.started_at < time.time() + 5
    assert rig.runtime.inspect(spec.name).id == container_id  # names resolve like ids


def test_a_process_exit_is_reported_with_its_code_and_a_die_event(rig: Rig) -> None:
    events = EventLog(rig.runtime, rig.labels)
    container_id = rig.run("sh", "-c", "sleep 0.2; exit 3")
    rig.process_exits(container_id, 3)

    die = events.wait(container_id, "die")
    assert die.labels["dockyard-test-case"] == rig.labels["dockyard-test-case"]
    assert events.actions(container_id)[:2] == ["start", "die"]
    state = rig.wait_exited(container_id)
    assert state.exit_code == 3
    assert state.started_at is not None and state.finished_at is not None
    assert state.finished_at >= state.started_at


def test_events_only_for_matching_labels(rig: Rig) -> None:
    events = EventLog(rig.runtime, {**rig.labels, "watched": "yes"})
    ignored = rig.run("true")
    rig.process_exits(ignored, 0)
    rig.wait_exited(ignored)
    watched = rig.run("true", labels={"watched": "yes"})
    rig.process_exits(watched, 0)

    events.wait(watched, "die")
    assert events.actions(ignored) == []


@pytest.mark.parametrize(
    ("command", "fields", "ignores_sigterm", "exit_code"),
    [
        pytest.param(("sleep", "60"), {"init": True}, False, 143, id="SIGTERM-ends-it"),
        pytest.param(
            ("sleep", "60"), {"init": True, "stop_signal": "SIGUSR1"}, False, 138, id="stop-signal"
        ),
        pytest.param(
            ("sh", "-c", "trap '' TERM; sleep 60"), {}, True, 137, id="SIGKILL-after-timeout"
        ),
    ],
)
def test_stop_signals_then_kills(
    rig: Rig,
    command: tuple[str, ...],
    fields: dict[str, Any],
    ignores_sigterm: bool,
    exit_code: int,
) -> None:
    container_id = rig.run(*command, **fields)
    if ignores_sigterm:
        rig.process_ignores_sigterm(container_id)
    rig.runtime.stop(container_id, 1)
    state = rig.wait_exited(container_id)
    assert state.exit_code == exit_code
    if not rig.real:
        assert rig.fake.stop_timeouts[container_id] == 1
    rig.runtime.stop(container_id, 1)  # stopping a stopped container is a no-op


def test_dynamic_host_ports_are_bound_on_loopback(rig: Rig) -> None:
    ports = (PortBinding(container_port=8080, host_port=0),)
    first = rig.run("sh", "-c", HTTPD + "8080", ports=ports)
    second = rig.run("sh", "-c", HTTPD + "8080", ports=ports)

    bound = [rig.runtime.inspect(c).ports for c in (first, second)]
    for (port,) in bound:
        assert (port.container_port, port.protocol, port.host_ip) == (8080, "tcp", "127.0.0.1")
        assert port.host_port > 0
    assert bound[0][0].host_port != bound[1][0].host_port

    rig.runtime.stop(first, 0)
    assert rig.runtime.inspect(first).ports == ports  # stopped: the request again, 0 = dynamic


def test_a_published_port_serves_traffic(docker_rig: Rig) -> None:
    container_id = docker_rig.run(
        "sh", "-c", HTTPD + "8080", ports=(PortBinding(container_port=8080, host_port=0),)
    )
    (port,) = docker_rig.runtime.inspect(container_id).ports
    url = f"http://127.0.0.1:{port.host_port}/index.html"
    deadline = time.monotonic() + WAIT
    while True:
        try:
            reply = httpx.get(url, timeout=2)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.1)
    assert (reply.status_code, reply.text) == (200, "hello\n")


def test_a_health_check_turns_healthy(rig: Rig) -> None:
    events = EventLog(rig.runtime, rig.labels)
    check = HealthCheckSpec(("CMD-SHELL", "true"), interval=1, timeout=5, retries=3, start_period=0)
    container_id = rig.run("sleep", "60", health_check=check)
    assert rig.runtime.inspect(container_id).health in ("starting", "healthy")

    rig.health_check_passes(container_id)
    events.wait(container_id, "health_status")
    assert rig.wait_until(container_id, lambda s: s.health == "healthy").status == "running"


def test_environment_command_and_process_settings_are_honoured(docker_rig: Rig) -> None:
    script = (
        'test "$X" = y && test "$(pwd)" = /work && test "$(id -u)" = 65534 '
        '&& test "$(hostname)" = web && test "$1" = arg'
    )
    container_id = docker_rig.run(
        script,
        "sh",
        "arg",
        entrypoint=("sh", "-c"),
        environment={"X": "y"},
        working_dir="/work",
        user="65534",
        hostname="web",
    )
    assert docker_rig.wait_exited(container_id).exit_code == 0


def test_every_spec_field_reaches_docker(docker_rig: Rig, docker_api: Any) -> None:
    peer = docker_rig.runtime.create(docker_rig.spec("sleep", "60"))
    peer_name = docker_rig.runtime.inspect(peer).name
    spec = docker_rig.spec(
        "sleep",
        "60",
        ports=(PortBinding(8080, 0), PortBinding(5353, 15353, "udp")),
        links=(f"{peer_name}:db",),
        extra_hosts=("registry.local:127.0.0.1",),
        dns_servers=("127.0.0.53",),
        cpu_shares=256,
        memory_bytes=64 << 20,
        memory_reservation_bytes=32 << 20,
        nano_cpus=500_000_000,
        mounts=(
            Mount(target="/host", source="/tmp", read_only=True),
            Mount(target="/scratch", source="", kind="tmpfs", options={"size": "1m"}),
        ),
        volumes_from=(f"{peer}:ro",),
        read_only_root=True,
        ulimits=(("nofile", 1024, 2048),),
        init=True,
        cap_add=("NET_ADMIN",),
        cap_drop=("MKNOD",),
        shm_size_bytes=16 << 20,
        log_driver="json-file",
        log_options={"max-size": "1m"},
        health_check=HealthCheckSpec(("CMD", "true"), 2.5, 1, 4, 0.5),
        stop_signal="SIGINT",
    )
    raw = docker_api.inspect_container(docker_rig.runtime.create(spec))
    host, config = raw["HostConfig"], raw["Config"]
    assert host["PortBindings"] == {
        "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
        "5353/udp": [{"HostIp": "127.0.0.1", "HostPort": "15353"}],
    }
    assert host["Links"] == [f"/{peer_name}:/{spec.name}/db"]
    assert (host["ExtraHosts"], host["Dns"]) == (["registry.local:127.0.0.1"], ["127.0.0.53"])
    assert (host["CpuShares"], host["NanoCpus"]) == (256, 500_000_000)
    assert (host["Memory"], host["MemoryReservation"]) == (64 << 20, 32 << 20)
    assert host["Mounts"] == [
        {"Type": "bind", "Source": "/tmp", "Target": "/host", "ReadOnly": True}
    ]
    assert host["Tmpfs"] == {"/scratch": "size=1m"}
    assert host["VolumesFrom"] == [f"{peer}:ro"]
    assert (host["ReadonlyRootfs"], host["Init"], host["ShmSize"]) == (True, True, 16 << 20)
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert (host["CapAdd"], host["CapDrop"]) == (["NET_ADMIN"], ["MKNOD"])
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    assert config["Healthcheck"] == {
        "Test": ["CMD", "true"],
        "Interval": 2_500_000_000,
        "Timeout": 1_000_000_000,
        "Retries": 4,
        "StartPeriod": 500_000_000,
    }
    assert config["StopSignal"] == "SIGINT"
    assert config["Cmd"] == ["sleep", "60"]


def test_container_network_mode_shares_localhost(rig: Rig) -> None:
    server = rig.runtime.create(rig.spec("sh", "-c", HTTPD + "127.0.0.1:8081"))
    fetch = "for i in $(seq 100); do wget -qO- 127.0.0.1:8081 && exit 0; sleep 0.1; done; exit 1"
    client = rig.runtime.create(rig.spec("sh", "-c", fetch, network_mode=f"container:{server}"))

    with pytest.raises(EngineError) as raised:  # the namespace's owner must run first
        rig.runtime.start(client)
    assert "non running container" in raised.value.reason

    rig.runtime.start(server)
    rig.runtime.start(client)
    rig.process_exits(client, 0)
    assert rig.wait_exited(client).exit_code == 0


def test_volumes_are_shared_and_removed(rig: Rig) -> None:
    name = f"dockyard-test-{uuid.uuid4().hex[:12]}"
    rig.runtime.create_volume(name, "local", {}, rig.labels)
    rig.runtime.create_volume(name, "local", {}, rig.labels)  # idempotent, as Docker's
    data = (Mount(target="/data", source=name, kind="volume"),)
    writer = rig.run("sh", "-c", "echo hi > /data/f", mounts=data)
    rig.process_exits(writer, 0)
    assert rig.wait_exited(writer).exit_code == 0
    reader = rig.run("sh", "-c", 'test "$(cat /data/f)" = hi', mounts=data)
    rig.process_exits(reader, 0)
    assert rig.wait_exited(reader).exit_code == 0

    with pytest.raises(EngineError, match="in use"):
        rig.runtime.remove_volume(name)
    for container_id in (writer, reader):
        rig.runtime.remove(container_id)
    rig.runtime.remove_volume(name)
    rig.runtime.remove_volume(name)  # absent is fine


def test_containers_lists_stopped_ones_too(rig: Rig) -> None:
    exited = rig.run("true", labels={"role": "batch"})
    rig.process_exits(exited, 0)
    rig.wait_exited(exited)
    created = rig.runtime.create(rig.spec("true"))
    running = rig.run("sleep", "60")

    listed = {s.id: s.status for s in rig.runtime.containers(rig.labels)}
    assert listed == {exited: "exited", created: "created", running: "running"}
    assert [s.id for s in rig.runtime.containers({**rig.labels, "role": "batch"})] == [exited]
    assert rig.runtime.containers({**rig.labels, "role": "none"}) == []


def test_remove(rig: Rig) -> None:
    container_id = rig.run("sleep", "60")
    with pytest.raises(EngineError) as raised:
        rig.runtime.remove(container_id)
    assert not isinstance(raised.value, ContainerNotFound)

    rig.runtime.stop(container_id, 0)
    rig.runtime.remove(container_id)
    with pytest.raises(ContainerNotFound):
        rig.runtime.inspect(container_id)
    with pytest.raises(ContainerNotFound):
        rig.runtime.start(container_id)
    rig.runtime.remove(container_id)  # absent is fine
    assert rig.runtime.containers(rig.labels) == []


def test_create_refusals_are_engine_errors(rig: Rig) -> None:
    spec = rig.spec("true")
    rig.runtime.create(spec)
    for refused in (spec, replace(spec, name=spec.name + "-2", image=MISSING)):
        with pytest.raises(EngineError) as raised:
            rig.runtime.create(refused)
        assert raised.value.reason.startswith("CannotCreateContainerError:")
        assert not isinstance(raised.value, ContainerNotFound)


def test_a_failed_start_leaves_the_error_on_the_container(rig: Rig) -> None:
    container_id = rig.runtime.create(rig.spec("/no/such/program"))
    rig.start_will_fail(container_id, 'exec: "/no/such/program": no such file or directory')
    with pytest.raises(EngineError) as raised:
        rig.runtime.start(container_id)
    assert raised.value.reason.startswith("CannotStartContainerError:")
    state = rig.runtime.inspect(container_id)
    assert state.status == "created"
    assert state.error is not None and "/no/such/program" in state.error


def test_close_ends_event_streams(rig: Rig) -> None:
    events = EventLog(rig.runtime, rig.labels)
    rig.runtime.close()
    events.thread.join(WAIT)
    assert not events.thread.is_alive()
