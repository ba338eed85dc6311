"""The task engine: one ``TaskRunner`` (an asyncio task) per ECS task on this host.

The engine itself only routes: assignments from the control plane become runners or
stop requests, runtime events go to the runner whose container they concern, and
stopped tasks are removed after ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION. Each runner
owns its task's status (see task_runner.py).

Usage, by the agent's main loop::

    state = StateStore(config.data_dir)
    engine = TaskEngine(runtime, build_spec, reporter, state, time.time, config)
    await engine.restore()           # re-adopt the containers of a previous run
    await engine.apply(assignments)  # on every answer from the control plane
    ...
    await engine.close()             # tasks keep running, as they do when the ECS agent stops
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable

from dockyard.agent.assignment import Assignment, AssignmentError, TaskReport
from dockyard.agent.config import AgentConfig, credentials_for
from dockyard.agent.docker_spec import task_id
from dockyard.agent.runtime import ContainerRuntime, EngineError, RegistryAuth, RuntimeEvent
from dockyard.agent.state import PulledImages, StateStore
from dockyard.agent.status import StopCode, TaskStatus
from dockyard.agent.steps import (
    TASK_ARN_LABEL,
    AuthFor,
    BuildSpec,
    Reporter,
    RunnerContext,
    Volumes,
)
from dockyard.agent.task_cgroup import TaskCgroups
from dockyard.agent.task_runner import TaskRunner, new_record

log = logging.getLogger(__name__)

NOT_ASSIGNED = "Task is no longer assigned to this container instance"
_RESUBSCRIBE_DELAY = 1.0  # seconds between attempts to reopen the runtime's event stream


class TaskEngine:
    def __init__(
        self,
        runtime: ContainerRuntime,
        build_spec: BuildSpec,
        reporter: Reporter,
        state: StateStore,
        clock: Callable[[], float],
        config: AgentConfig,
        *,
        auth_for: AuthFor | None = None,
        volumes: Volumes | None = None,
        task_cgroups: TaskCgroups | None = None,
        poll_interval: float = 10.0,
    ) -> None:
        """``auth_for(image)`` gives registry credentials for a pull (default: those in
        ECS_ENGINE_AUTH_DATA); ``volumes(assignment)`` the Docker volumes to create before
        a task's containers (docker_spec.volumes_to_create; task-scoped ones are removed
        with the task); ``task_cgroups`` makes a cgroup per task with task-level cpu or
        memory before its containers and removes it with them (build_spec must look
        its parent up: ``SpecOptions.cgroup_parent_of``); ``poll_interval`` is how often
        each task re-inspects its containers and the engine looks for tasks to clean up,
        in seconds."""
        self._runtime = runtime
        self._state = state
        self._config = config
        self._context = RunnerContext(
            runtime=runtime,
            build_spec=build_spec,
            reporter=reporter,
            state=state,
            clock=clock,
            config=config,
            auth_for=auth_for or self._configured_auth,
            pulled_images=PulledImages(state),
            volumes=volumes or (lambda assignment: ()),
            poll_interval=poll_interval,
            task_cgroups=task_cgroups,
        )
        self._runners: dict[str, TaskRunner] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._forgotten: set[str] = set()  # cleaned up: a stale assignment must not rerun it
        self._housekeeping: asyncio.Task[None] | None = None
        self._closing = threading.Event()

    async def restore(self) -> list[str]:
        """Take back the tasks saved by an earlier run of the agent: running containers are
        re-adopted as they are (not recreated, not restarted), containers that stopped
        meanwhile are reported STOPPED with their exit codes. Returns the task ARNs."""
        await self._start()
        restored = []
        for record in self._state.load():
            if record.task_arn in self._runners:
                continue
            runner = TaskRunner(record, self._context)
            await runner.adopt()
            self._launch(runner)
            restored.append(record.task_arn)
        return restored

    async def apply(self, assignments: Iterable[Assignment]) -> None:
        """Make this host run exactly ``assignments`` (the control plane's full list):
        start the new ones, stop those desired STOPPED, and stop any task not listed."""
        await self._start()
        wanted = {a.task_arn: a for a in assignments}
        for arn, assignment in wanted.items():
            runner = self._runners.get(arn)
            if runner is not None:
                if assignment.desired_status >= TaskStatus.STOPPING:
                    runner.stop()
            elif assignment.desired_status is TaskStatus.RUNNING and arn not in self._forgotten:
                try:
                    record = new_record(assignment)
                except AssignmentError as error:
                    self._refuse(assignment, str(error))
                    continue
                self._launch(TaskRunner(record, self._context))
        for arn, runner in self._runners.items():
            if arn not in wanted and runner.record.desired < TaskStatus.STOPPED:
                runner.stop(NOT_ASSIGNED)

    def reports(self) -> list[TaskReport]:
        """The current report of every task the engine holds (running or awaiting cleanup)."""
        return [runner.report() for runner in self._runners.values()]

    async def sweep(self) -> list[str]:
        """Remove the containers of tasks stopped for longer than the cleanup wait, and
        forget those tasks. Returns their ARNs. Runs every ``poll_interval``."""
        now = self._context.clock()
        wait = self._config.task_cleanup_wait.total_seconds()
        cleaned = []
        for arn, runner in list(self._runners.items()):
            record = runner.record
            if not runner.finished or record.stopped_at is None or now - record.stopped_at < wait:
                continue
            try:
                for container in record.containers:
                    if container.runtime_id:
                        await asyncio.to_thread(self._runtime.remove, container.runtime_id)
            except EngineError as error:
                log.warning("cleanup of %s failed, will retry: %s", arn, error.reason)
                continue
            for volume in self._context.volumes(record.assignment):
                if volume.task_scoped:
                    try:
                        await asyncio.to_thread(self._runtime.remove_volume, volume.name)
                    except EngineError as error:
                        log.warning("cannot remove volume %s: %s", volume.name, error.reason)
            if self._context.task_cgroups is not None:
                await asyncio.to_thread(self._context.task_cgroups.remove, task_id(arn))
            self._state.delete(arn)
            del self._runners[arn]
            self._tasks.pop(arn, None)
            self._forgotten.add(arn)
            cleaned.append(arn)
        return cleaned

    async def close(self) -> None:
        """Stop the engine's loops; containers keep running and state stays on disk."""
        self._closing.set()
        loops = [*self._tasks.values(), *([self._housekeeping] if self._housekeeping else [])]
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        self._tasks.clear()
        self._housekeeping = None

    # Internals ----------------------------------------------------------------------

    def _refuse(self, assignment: Assignment, problem: str) -> None:
        """A task whose definition the engine cannot read: reported STOPPED, never run."""
        log.error("cannot run %s: %s", assignment.task_arn, problem)
        self._forgotten.add(assignment.task_arn)
        report = TaskReport(
            task_arn=assignment.task_arn,
            last_status=TaskStatus.STOPPED,
            stop_code=StopCode.TASK_FAILED_TO_START,
            stopped_reason=f"Invalid task definition: {problem}",
            execution_stopped_at=self._context.clock(),
            cluster_arn=assignment.cluster_arn,
        )
        try:
            self._context.reporter(report)
        except Exception:
            log.exception("reporter failed for %s", assignment.task_arn)

    def _launch(self, runner: TaskRunner) -> None:
        arn = runner.record.task_arn
        self._runners[arn] = runner
        self._tasks[arn] = asyncio.create_task(self._run(runner), name=f"task {arn}")

    async def _run(self, runner: TaskRunner) -> None:
        try:
            await runner.run()
        except Exception:
            log.exception("the runner of %s failed", runner.record.task_arn)

    async def _start(self) -> None:
        """Subscribe to runtime events (before anything is inspected, so nothing falls in
        between) and start housekeeping; once."""
        if self._housekeeping is not None:
            return
        self._housekeeping = asyncio.create_task(self._sweep_periodically())
        events = await asyncio.to_thread(self._runtime.events, {})
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=self._pump, args=(loop, events), name="dockyard-runtime-events", daemon=True
        ).start()

    def _pump(self, loop: asyncio.AbstractEventLoop, events: Iterable[RuntimeEvent]) -> None:
        """Thread: hand runtime events to the loop. A stream that fails is reopened (the
        runners' periodic inspections cover the gap); one that ends means the runtime
        was closed."""
        while True:
            try:
                for event in events:
                    if self._closing.is_set():
                        return
                    loop.call_soon_threadsafe(self._route, event)
                return
            except RuntimeError:
                return  # the event loop is closed
            except Exception as error:
                log.warning("runtime event stream failed: %s; reopening", error)
            while not self._closing.is_set():
                time.sleep(_RESUBSCRIBE_DELAY)
                try:
                    events = self._runtime.events({})
                    break
                except Exception as error:
                    log.warning("cannot reopen the runtime event stream: %s", error)
            else:
                return

    def _route(self, event: RuntimeEvent) -> None:
        runner = self._runners.get(event.labels.get(TASK_ARN_LABEL, ""))
        if runner is None:
            runner = next((r for r in self._runners.values() if r.owns(event.container_id)), None)
        if runner is not None and not runner.finished:
            runner.notify(event)

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._context.poll_interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("task cleanup failed")

    def _configured_auth(self, image: str) -> RegistryAuth | None:
        credentials = credentials_for(self._config, image)
        if credentials is None:
            return None
        return RegistryAuth(credentials.username, credentials.password, _registry_of(image))


def _registry_of(image: str) -> str:
    """The registry host of an image reference, as Docker reads one."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "index.docker.io"
