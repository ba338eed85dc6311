"""The runtime calls behind a task's steps: pull, create, start, stop.

Each step runs in threads (runtime calls block) and returns an ``Outcome``; none of
this touches the task's record, which only its runner changes (task_runner.py).
Also here: what the runner and the engine share (``RunnerContext``) and ``observe``,
which folds what the runtime says about a container into its record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from dockyard.agent.assignment import Assignment, ContainerDef, TaskReport
from dockyard.agent.config import AgentConfig, ImagePullBehavior
from dockyard.agent.docker_spec import task_id, task_size
from dockyard.agent.runtime import (
    ContainerNotFound,
    ContainerRuntime,
    ContainerSpec,
    ContainerState,
    EngineError,
    ImagePullError,
    RegistryAuth,
)
from dockyard.agent.state import ContainerRecord, PulledImages, StateStore
from dockyard.agent.status import ContainerStatus, advance
from dockyard.agent.task_cgroup import TaskCgroups
from dockyard.agent.transitions import Step

log = logging.getLogger(__name__)

BuildSpec = Callable[[Assignment, str, Mapping[str, str]], ContainerSpec]
Reporter = Callable[[TaskReport], None]
AuthFor = Callable[[str], RegistryAuth | None]


class VolumeSpec(Protocol):
    """A Docker volume a task needs (docker_spec.VolumeSpec is one)."""

    @property
    def name(self) -> str: ...
    @property
    def driver(self) -> str: ...
    @property
    def options(self) -> Mapping[str, str]: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def task_scoped(self) -> bool: ...


Volumes = Callable[[Assignment], Iterable[VolumeSpec]]

TASK_ARN_LABEL = "com.amazonaws.ecs.task-arn"
CONTAINER_NAME_LABEL = "com.amazonaws.ecs.container-name"
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
_FAILURE_PREFIX = {
    Step.PULL: "CannotPullContainerError",
    Step.CREATE: "CannotCreateContainerError",
    Step.START: "CannotStartContainerError",
    Step.STOP: "CannotStopContainerError",
}


@dataclass(frozen=True)
class RunnerContext:
    """What every task's runner shares with the engine."""

    runtime: ContainerRuntime
    build_spec: BuildSpec
    reporter: Reporter
    state: StateStore
    clock: Callable[[], float]
    config: AgentConfig
    auth_for: AuthFor
    pulled_images: PulledImages  # for ECS_IMAGE_PULL_BEHAVIOR=once
    volumes: Volumes  # the Docker volumes a task needs before its containers
    poll_interval: float
    task_cgroups: TaskCgroups | None = None  # None: task limits are per container


@dataclass(frozen=True)
class Outcome:
    name: str
    step: Step
    runtime_id: str | None = None
    state: ContainerState | None = None
    error: str | None = None
    missing: bool = False  # the runtime has no such container any more


def observe(record: ContainerRecord, state: ContainerState, now: float) -> ContainerRecord:
    """``record`` updated from what the runtime says (known status only moves forward)."""
    seen = ContainerStatus.from_runtime(state.status)
    known = advance(record.known, seen)
    ran = seen is ContainerStatus.RUNNING or state.started_at is not None
    started_at = record.started_at if record.started_at is not None else (now if ran else None)
    reason = record.reason
    if state.oom_killed:
        reason = OOM_REASON
    elif known is ContainerStatus.STOPPED and started_at is None and state.error:
        reason = state.error
    bindings = record.network_bindings
    if seen is ContainerStatus.RUNNING:
        bindings = tuple(
            {
                "bindIP": p.host_ip,
                "containerPort": p.container_port,
                "hostPort": p.host_port,
                "protocol": p.protocol,
            }
            for p in state.ports
        )
    return replace(
        record,
        runtime_id=state.id,
        known=known,
        started_at=started_at if known >= ContainerStatus.RUNNING else None,
        exit_code=state.exit_code if known is ContainerStatus.STOPPED else None,
        health=state.health,
        reason=reason,
        network_bindings=bindings,
    )


class TaskSteps:
    """The steps of one task's containers."""

    def __init__(self, context: RunnerContext, assignment: Assignment) -> None:
        self._ctx = context
        self._assignment = assignment
        self._defs: dict[str, ContainerDef] = {d.name: d for d in assignment.containers}
        self._prepare_lock = asyncio.Lock()
        self._prepared = False

    async def perform(
        self, name: str, step: Step, runtime_id: str | None, created: Mapping[str, str]
    ) -> Outcome:
        """Carry out ``step`` for container ``name``; failures become the outcome's error.
        ``created`` maps the task's created containers to their runtime ids."""
        try:
            return await self._step(name, step, runtime_id or "", created)
        except ContainerNotFound as error:
            return Outcome(name, step, error=error.reason, missing=True)
        except EngineError as error:
            return Outcome(name, step, error=error.reason)
        except Exception as error:  # a bug or a bad spec must not leave the task hanging
            log.exception("%s of %s in %s failed", step, name, self._assignment.task_arn)
            return Outcome(name, step, error=f"{_FAILURE_PREFIX[step]}: {error}")

    async def _step(
        self, name: str, step: Step, runtime_id: str, created: Mapping[str, str]
    ) -> Outcome:
        runtime, definition = self._ctx.runtime, self._defs[name]
        if step is Step.PULL:
            if definition.internal:  # the pause image: whatever the spec names, if missing
                image = self._ctx.build_spec(self._assignment, name, {}).image
                await self._pull(image, ImagePullBehavior.PREFER_CACHED)
            else:
                await self._pull(definition.image, self._ctx.config.image_pull_behavior)
            return Outcome(name, step)
        if step is Step.CREATE:
            await self._prepare()
            spec = self._ctx.build_spec(self._assignment, name, created)
            return Outcome(name, step, runtime_id=await asyncio.to_thread(runtime.create, spec))
        if step is Step.START:
            timeout = self._ctx.config.container_start_timeout.total_seconds()
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.to_thread(runtime.start, runtime_id)
            except TimeoutError:
                raise EngineError(
                    f"CannotStartContainerError: the engine did not start it within {timeout:g} "
                    "seconds (ECS_CONTAINER_START_TIMEOUT)"
                ) from None
        else:  # STOP: SIGTERM, then SIGKILL after stopTimeout
            timeout = definition.stop_timeout or (
                self._ctx.config.container_stop_timeout.total_seconds()
            )
            await asyncio.to_thread(runtime.stop, runtime_id, timeout)
        return Outcome(name, step, state=await asyncio.to_thread(runtime.inspect, runtime_id))

    async def _prepare(self) -> None:
        """The task's cgroup and Docker volumes, before its first container. Both are
        idempotent, so a restarted agent does this again before its next create, and
        build_spec then finds the cgroup (``TaskCgroups.parent``)."""
        async with self._prepare_lock:
            if self._prepared:
                return
            cgroups = self._ctx.task_cgroups
            if cgroups is not None and self._ctx.config.task_cpu_mem_limit:
                cpu, memory = task_size(self._assignment)
                if cpu is not None or memory is not None:
                    task = task_id(self._assignment.task_arn)
                    await asyncio.to_thread(cgroups.create, task, cpu, memory)
            for volume in self._ctx.volumes(self._assignment):
                await asyncio.to_thread(
                    self._ctx.runtime.create_volume,
                    volume.name,
                    volume.driver,
                    volume.options,
                    volume.labels,
                )
            self._prepared = True

    async def _pull(self, image: str, behavior: ImagePullBehavior) -> None:
        """ECS_IMAGE_PULL_BEHAVIOR: when to pull, and whether a cached image may stand in."""
        runtime = self._ctx.runtime
        cached = await asyncio.to_thread(runtime.has_image, image)
        if cached and behavior is ImagePullBehavior.PREFER_CACHED:
            return
        if cached and behavior is ImagePullBehavior.ONCE and image in self._ctx.pulled_images:
            return
        try:
            await asyncio.to_thread(runtime.pull, image, self._ctx.auth_for(image))
        except ImagePullError as error:
            if not (cached and behavior is ImagePullBehavior.DEFAULT):
                raise
            log.warning("pull of %s failed, using the cached image: %s", image, error.reason)
            return
        self._ctx.pulled_images.add(image)
