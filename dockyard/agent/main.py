"""``dockyard agent``: register, then poll for assignments, run them, report back.

Started by the CLI as ``asyncio.run(run_agent(server_url, config, runtime, options))``.
The pieces, each an asyncio task so none can hold up another:

- the **poll loop** registers (or re-registers, keeping the ARN saved in ECS_DATADIR),
  then long-polls and hands every answer to ``TaskEngine.apply`` in full;
- the **report sender** drains what the engine reports, newest state per task, and
  retries with backoff while the server is away (the engine never waits on it);
- **registry credentials**: an ECR token for the server's registry, refreshed at half
  its lifetime, handed to pulls of images from that registry;
- the **metadata endpoint** (serving.py) and the **image cleaner** (image_cleanup.py).

Losing the server changes nothing for running tasks: the engine keeps them as they
are, polls back off (0.5 s doubling to 30 s, jittered) and the first answer after a
reconnect is the full list, which the engine applies (stopping tasks not in it).
SIGTERM or SIGINT stops the agent and leaves containers running, as the ECS agent
does; the next start re-adopts them. Task cleanup runs inside the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from dockyard.agent.assignment import Assignment, AssignmentError, TaskReport
from dockyard.agent.channel import AgentClient, Backoff, ChannelError
from dockyard.agent.config import AgentConfig
from dockyard.agent.docker_spec import SpecOptions, build_spec, volumes_to_create
from dockyard.agent.engine import TaskEngine
from dockyard.agent.image_cleanup import ImageCleaner, task_images
from dockyard.agent.registration import (
    Identity,
    load_identity,
    registration,
    save_identity,
)
from dockyard.agent.reports import RegistryCredentials, ReportSender
from dockyard.agent.runtime import ContainerRuntime, EngineInfo
from dockyard.agent.serving import StatsFetch, TaskViews, metadata_server
from dockyard.agent.state import StateStore
from dockyard.agent.status import StopCode, TaskStatus
from dockyard.agent.task_cgroup import TaskCgroups

log = logging.getLogger("dockyard.agent")

DEFAULT_METADATA_PORT: Final = 51679  # the ECS agent's; in ECS_RESERVED_PORTS by default
EXIT_DEREGISTERED: Final = 5  # the ECS agent's "terminal, do not restart" status
_FLUSH_SECONDS: Final = 3.0  # reports still queued get this long at shutdown
_TOKEN_WAIT: Final = 5.0  # seconds the first assignments wait for a registry token
_WIND_DOWN_EXTRA: Final = 30.0  # seconds beyond the stop timeout to wait when deregistered
_REREGISTER: Final = frozenset({"InvalidParameterException", "ClusterNotFoundException"})


class Deregistered(Exception):
    """The container instance was deregistered; the agent stops for good."""


@dataclass(frozen=True)
class AgentOptions:
    metadata_port: int | None = DEFAULT_METADATA_PORT  # None: no metadata endpoint; 0: any
    metadata_hosts: tuple[str, ...] = ("127.0.0.1",)  # plus the docker bridge's gateway
    publish_ip: str = "127.0.0.1"  # where bridge and awsvpc ports are published
    poll_wait: float = 20.0
    stats: StatsFetch | None = None  # Docker stats for the endpoint's /stats


async def run_agent(
    server_url: str,
    config: AgentConfig,
    runtime: ContainerRuntime,
    options: AgentOptions = AgentOptions(),
    *,
    client: AgentClient | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set). Raises ``ConfigError`` or
    ``OSError`` (the metadata port) at start, ``Deregistered`` when the control plane
    deregistered this instance."""
    own_client = client is None
    client = client or AgentClient.from_environ(server_url, os.environ)
    agent = Agent(config, runtime, client, options)
    try:
        await agent.run(stop or _signalled())
    finally:
        if own_client:
            await client.aclose()


def _signalled() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        runtime: ContainerRuntime,
        client: AgentClient,
        options: AgentOptions,
    ) -> None:
        self._config, self._runtime, self._client, self._options = config, runtime, client, options
        self._state = StateStore(config.data_dir)
        self.instance_arn: str | None = None
        self._sender = ReportSender(client, lambda: self.instance_arn)
        self._registry = RegistryCredentials(client, config)
        self._views = TaskViews(self._state, runtime, config)
        self._refused: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        info = await asyncio.to_thread(self._runtime.info)
        server = None
        if self._options.metadata_port is not None:
            hosts, port = self._options.metadata_hosts, self._options.metadata_port
            server = metadata_server(self._views, self._options.stats, hosts, port)
            log.info("task metadata endpoint on %s port %d", ", ".join(server.hosts), server.port)
        cgroups = TaskCgroups.for_engine(info, enabled=self._config.task_cpu_mem_limit)
        spec_options = SpecOptions(
            metadata_port=server.port if server else None,
            publish_ip=self._options.publish_ip,
            host_cpus=info.cpus,
            cgroup_parent_of=cgroups.parent,
        )
        engine = TaskEngine(
            self._runtime,
            functools.partial(build_spec, config=self._config, options=spec_options),
            self._report,
            self._state,
            time.time,
            self._config,
            auth_for=self._registry.auth_for,
            volumes=volumes_to_create,
            task_cgroups=cgroups,
        )
        cleaner = ImageCleaner(self._runtime, self._config, self._config.data_dir)
        jobs: list[Coroutine[Any, Any, None]] = [
            self._sender.run(),
            self._registry.run(),
            cleaner.run_forever(lambda: task_images(self._state)),
        ]
        if server is not None:
            jobs.append(server.serve())
        background = [asyncio.create_task(job) for job in jobs]
        try:
            restored = await engine.restore()  # before the server answers: it may be away
            if restored:
                log.info("re-adopted %d task(s) from %s", len(restored), self._config.data_dir)
            main = asyncio.create_task(self._connect_and_poll(engine, info))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({main, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in (main, stopping):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await main  # raises what ended it (Deregistered), unless it was stopped
        finally:
            log.info("stopping; containers keep running")
            await self._sender.flush(_FLUSH_SECONDS)
            await engine.close()
            if server is not None:
                server.stop()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)

    def _report(self, report: TaskReport) -> None:
        """The engine's reporter: never blocks, never fails."""
        self._sender.put(report)
        self._views.changed()

    async def _connect_and_poll(self, engine: TaskEngine, info: EngineInfo) -> None:
        self.instance_arn = await self._register(info)
        self._sender.wake()
        await self._registry.wait_ready(_TOKEN_WAIT)
        known: int | None = None
        backoff = Backoff()
        cluster, wait = self._config.cluster, self._options.poll_wait
        while True:
            try:
                answer = await self._client.poll(cluster, self.instance_arn, known, wait)
            except ChannelError as error:
                known = None  # after a reconnect, take the full list at once
                if error.code in _REREGISTER:
                    log.warning("the server does not know this instance (%s); registering", error)
                    self.instance_arn = await self._register(info)
                    continue
                delay = backoff.next()
                log.warning("poll failed (%s); tasks keep running; retry in %.1f s", error, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            if answer.version != known:
                await self._apply(engine, answer.tasks)
            known = answer.version
            if answer.instance_status == "INACTIVE":
                await self._wind_down(engine)
                raise Deregistered(
                    f"container instance {self.instance_arn} was deregistered; start the agent "
                    "again to join as a new instance"
                )

    async def _wind_down(self, engine: TaskEngine) -> None:
        """Deregistered: the answer just applied stops every task; wait (bounded) for the
        engine to stop them and for their reports to go out before the agent exits."""
        limit = self._config.container_stop_timeout.total_seconds() + _WIND_DOWN_EXTRA
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                while any(r.last_status is not TaskStatus.STOPPED for r in engine.reports()):
                    await asyncio.sleep(0.5)

    async def _register(self, info: EngineInfo) -> str:
        """Register, as the saved instance if there is one, retrying until it works."""
        backoff = Backoff()
        config = self._config
        while True:
            saved = load_identity(config.data_dir)
            previous = (
                saved.container_instance_arn if saved and saved.cluster == config.cluster else None
            )
            try:
                instance = await self._client.register(registration(config, info, previous))
            except ChannelError as error:
                if previous and error.code in ("ClientException", "InvalidParameterException"):
                    log.warning("%s is not registered any more (%s); joining anew", previous, error)
                    (config.data_dir / "instance.json").unlink(missing_ok=True)
                    continue
                if error.code == "ClusterNotFoundException" and config.cluster == "default":
                    with contextlib.suppress(ChannelError):  # as the ECS agent does
                        await self._client.create_cluster("default")
                        continue
                delay = backoff.next()
                log.warning(
                    "cannot register in cluster %s (%s); retry in %.1f s",
                    config.cluster,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            arn = str(instance["containerInstanceArn"])
            save_identity(config.data_dir, Identity(arn, config.cluster, self._client.server_url))
            log.info("registered %s in cluster %s", arn, config.cluster)
            return arn

    async def _apply(self, engine: TaskEngine, wires: Sequence[Any]) -> None:
        """Parse each assignment on its own: one bad task must not hold up the rest."""
        assignments = []
        for wire in wires:
            try:
                assignments.append(Assignment.from_wire(wire))
            except AssignmentError as error:
                self._refuse(wire, str(error))
        await engine.apply(assignments)

    def _refuse(self, wire: Any, problem: str) -> None:
        arn = wire.get("taskArn") if isinstance(wire, Mapping) else None
        if not isinstance(arn, str) or arn in self._refused:
            if not isinstance(arn, str):
                log.error("ignoring an assignment without a task ARN: %s", problem)
            return
        log.error("cannot run %s: %s", arn, problem)
        self._refused.add(arn)
        cluster = wire.get("clusterArn")
        self._sender.put(
            TaskReport(
                task_arn=arn,
                last_status=TaskStatus.STOPPED,
                stop_code=StopCode.TASK_FAILED_TO_START,
                stopped_reason=f"Invalid task definition: {problem}",
                execution_stopped_at=time.time(),
                cluster_arn=cluster if isinstance(cluster, str) else None,
            )
        )
