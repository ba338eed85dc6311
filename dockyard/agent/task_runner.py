"""One ECS task's loop: the only code that changes the task's record.

The loop settles (asks ``next_action`` for every idle container and starts what it
says), saves and reports what changed, then waits for one message: a step's outcome,
a runtime event, a stop request, or, after ``poll_interval`` of silence, a tick that
re-inspects the containers (events can be lost; dependency timeouts need a clock).
Runtime calls block, so each step runs as its own asyncio task (steps.py, in threads)
and posts its outcome back to the loop; a container has at most one step in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Any

from dockyard.agent.assignment import Assignment, ContainerDef, ContainerReport, TaskReport
from dockyard.agent.runtime import ContainerNotFound, ContainerState, EngineError, RuntimeEvent
from dockyard.agent.state import ContainerRecord, TaskRecord
from dockyard.agent.status import ContainerStatus, HealthStatus, StopCode, TaskStatus, advance
from dockyard.agent.steps import (
    CONTAINER_NAME_LABEL,
    TASK_ARN_LABEL,
    Outcome,
    RunnerContext,
    TaskSteps,
    observe,
)
from dockyard.agent.transitions import ContainerView, Step, TaskView, next_action, task_status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _StopRequest:
    stop_code: StopCode | None
    reason: str | None


def new_record(assignment: Assignment) -> TaskRecord:
    defs = assignment.containers
    first = TaskStatus.PROVISIONING if any(d.internal for d in defs) else TaskStatus.PENDING
    return TaskRecord(
        assignment=assignment,
        desired=TaskStatus.RUNNING,
        known=first,
        containers=tuple(ContainerRecord(d.name) for d in defs),
    )


class TaskRunner:
    def __init__(self, record: TaskRecord, context: RunnerContext) -> None:
        self._record = record
        self._ctx = context
        self._defs: dict[str, ContainerDef] = {d.name: d for d in record.assignment.containers}
        self._inbox: asyncio.Queue[Outcome | _StopRequest | RuntimeEvent] = asyncio.Queue()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._cooling: set[str] = set()  # failed a stop; retried at the next tick
        self._saved: TaskRecord | None = None
        self._last_wire: dict[str, Any] | None = None
        self._next_tick = 0.0  # loop time of the next periodic inspection
        self._steps = TaskSteps(context, record.assignment)

    @property
    def record(self) -> TaskRecord:
        return self._record

    @property
    def finished(self) -> bool:
        return self._record.known is TaskStatus.STOPPED and not self._inflight

    def owns(self, container_id: str) -> bool:
        return any(c.runtime_id == container_id for c in self._record.containers)

    def stop(self, reason: str | None = None, stop_code: StopCode | None = None) -> None:
        """Ask the task to stop (desired STOPPED); the first reason given is kept."""
        self._inbox.put_nowait(_StopRequest(stop_code, reason))

    def notify(self, event: RuntimeEvent) -> None:
        self._inbox.put_nowait(event)

    def report(self) -> TaskReport:
        r = self._record
        containers = tuple(
            ContainerReport(
                name=c.name,
                runtime_id=c.runtime_id,
                last_status=c.known,
                exit_code=c.exit_code,
                reason=c.reason,
                network_bindings=c.network_bindings,
                health_status=(
                    HealthStatus.from_runtime(c.health or "")
                    if self._defs[c.name].health_check
                    else None
                ),
            )
            for c in r.containers
            if not self._defs[c.name].internal
        )
        return TaskReport(
            task_arn=r.task_arn,
            last_status=r.known,
            stop_code=r.stop_code,
            stopped_reason=r.stopped_reason,
            pull_started_at=r.pull_started_at,
            pull_stopped_at=r.pull_stopped_at,
            execution_stopped_at=r.execution_stopped_at,
            containers=containers,
            cluster_arn=r.assignment.cluster_arn,
        )

    async def adopt(self) -> None:
        """After a restart: find this task's containers in the runtime (by saved id, else
        by label for one created just before the crash) and take their current state."""
        found = await asyncio.to_thread(
            self._ctx.runtime.containers, {TASK_ARN_LABEL: self._record.task_arn}
        )
        by_id = {state.id: state for state in found}
        by_name = {state.labels.get(CONTAINER_NAME_LABEL): state for state in found}
        now = self._ctx.clock()
        for c in self._record.containers:
            state = by_id.get(c.runtime_id) if c.runtime_id else by_name.get(c.name)
            if state is not None:
                self._put(observe(c, state, now))
            elif c.runtime_id is not None and c.known < ContainerStatus.STOPPED:
                reason = "the container was removed while the agent was not running"
                self._put(replace(c, known=ContainerStatus.STOPPED, reason=reason))

    async def run(self) -> None:
        self._next_tick = asyncio.get_running_loop().time() + self._ctx.poll_interval
        try:
            while True:
                self._settle()
                self._publish()
                if self.finished:
                    return
                await self._next_message()
        finally:
            for task in self._inflight.values():
                task.cancel()

    # The loop ---------------------------------------------------------------------

    def _settle(self) -> None:
        for _ in range(4 * len(self._defs) + 4):  # each pass moves something forward
            if not self._settle_once():
                break
        now = self._ctx.clock()
        r = self._record
        known = advance(r.known, task_status(r.desired, self._views().values()))
        execution_over = known >= TaskStatus.DEPROVISIONING
        self._record = replace(
            r,
            known=known,
            execution_stopped_at=r.execution_stopped_at or (now if execution_over else None),
            stopped_at=r.stopped_at or (now if known is TaskStatus.STOPPED else None),
        )

    def _settle_once(self) -> bool:
        views = self._views()
        task = TaskView(self._record.desired, self._ctx.clock())
        changed = False
        for name, view in views.items():
            if name in self._inflight or name in self._cooling:
                continue
            action = next_action(view, task, views)
            if action.step is Step.STOP_TASK:
                self._desire_stop(action.stop_code, action.reason)
                return True  # every container's desired status changed
            if action.step is Step.MARK_STOPPED:
                self._put(replace(self._record.container(name), known=ContainerStatus.STOPPED))
                changed = True
            elif action.step is not Step.NONE:
                self._launch(name, action.step)
        return changed

    def _publish(self) -> None:
        if self._record != self._saved:
            try:
                self._ctx.state.save(self._record)
                self._saved = self._record
            except OSError:
                log.exception("cannot save the state of %s", self._record.task_arn)
        report = self.report()
        wire = report.to_wire()
        if wire != self._last_wire:
            self._last_wire = wire
            try:
                self._ctx.reporter(report)
            except Exception:
                log.exception("reporter failed for %s", self._record.task_arn)

    async def _next_message(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            # Not wait_for: in 3.11 it can swallow a cancellation that races with get().
            async with asyncio.timeout_at(self._next_tick):
                message = await self._inbox.get()
        except TimeoutError:
            # A tick: by time, not silence, so a chatty health check can't starve it.
            self._next_tick = loop.time() + self._ctx.poll_interval
            self._cooling.clear()
            for c in self._record.containers:
                if c.runtime_id and c.known < ContainerStatus.STOPPED:
                    await self._inspect(c.name)
            return
        await self._handle(message)
        while not self._inbox.empty():
            await self._handle(self._inbox.get_nowait())

    async def _handle(self, message: Outcome | _StopRequest | RuntimeEvent) -> None:
        if isinstance(message, _StopRequest):
            self._desire_stop(message.stop_code, message.reason)
        elif isinstance(message, Outcome):
            self._inflight.pop(message.name, None)
            self._apply(message)
        else:
            for c in self._record.containers:
                if c.runtime_id == message.container_id:
                    await self._inspect(c.name)

    # State changes (loop only) -------------------------------------------------------

    def _views(self) -> dict[str, ContainerView]:
        views = {}
        for c in self._record.containers:
            d = self._defs[c.name]
            views[c.name] = ContainerView(
                name=c.name,
                known=c.known,
                essential=d.essential,
                depends_on=d.depends_on,
                needs_created=d.needs_created,
                created=c.runtime_id is not None,
                started_at=c.started_at,
                exit_code=c.exit_code,
                health=c.health,
                health_check=d.health_check,
                start_timeout=d.start_timeout,
                reason=c.reason,
                internal=d.internal,
            )
        return views

    def _put(self, container: ContainerRecord) -> None:
        self._record = replace(
            self._record,
            containers=tuple(
                container if c.name == container.name else c for c in self._record.containers
            ),
        )

    def _desire_stop(self, stop_code: StopCode | None, reason: str | None) -> None:
        # Desired status only moves forward, and the first cause of a stop is the one told.
        if self._record.desired < TaskStatus.STOPPED:
            self._record = replace(
                self._record, desired=TaskStatus.STOPPED, stop_code=stop_code, stopped_reason=reason
            )

    def _apply(self, outcome: Outcome) -> None:
        c = self._record.container(outcome.name)
        now = self._ctx.clock()
        if outcome.step is Step.PULL:
            self._record = replace(self._record, pull_stopped_at=now)
        if c.known is ContainerStatus.STOPPED:
            return  # an event got there first; its exit code stands
        if outcome.missing:
            self._put(replace(c, known=ContainerStatus.STOPPED, reason=outcome.error))
        elif outcome.error is not None and outcome.step is Step.STOP:
            log.warning("%s: %s; retrying", outcome.name, outcome.error)
            self._cooling.add(outcome.name)
        elif outcome.error is not None:
            self._put(replace(c, known=ContainerStatus.STOPPED, reason=outcome.error))
        elif outcome.step is Step.PULL:
            self._put(replace(c, known=advance(c.known, ContainerStatus.PULLED)))
        elif outcome.step is Step.CREATE:
            known = advance(c.known, ContainerStatus.CREATED)
            self._put(replace(c, runtime_id=outcome.runtime_id, known=known))
        elif outcome.state is not None:
            self._observe(outcome.name, outcome.state)
            after = self._record.container(outcome.name)
            if outcome.step is Step.START and after.started_at is None:
                reason = outcome.state.error or "CannotStartContainerError: it did not start"
                self._put(replace(after, known=ContainerStatus.STOPPED, reason=reason))
            elif outcome.step is Step.STOP and after.known < ContainerStatus.STOPPED:
                self._cooling.add(outcome.name)  # still running: try again at the next tick

    def _observe(self, name: str, state: ContainerState) -> None:
        self._put(observe(self._record.container(name), state, self._ctx.clock()))

    async def _inspect(self, name: str) -> None:
        runtime_id = self._record.container(name).runtime_id
        if runtime_id is None:
            return
        try:
            state = await asyncio.to_thread(self._ctx.runtime.inspect, runtime_id)
        except ContainerNotFound as error:
            c = self._record.container(name)
            if c.known < ContainerStatus.STOPPED:
                self._put(replace(c, known=ContainerStatus.STOPPED, reason=error.reason))
            return
        except EngineError as error:
            log.warning("cannot inspect %s of %s: %s", name, self._record.task_arn, error)
            return
        self._observe(name, state)

    # Steps -------------------------------------------------------------------------

    def _launch(self, name: str, step: Step) -> None:
        if step is Step.PULL and self._record.pull_started_at is None:
            self._record = replace(self._record, pull_started_at=self._ctx.clock())
        created = {c.name: c.runtime_id for c in self._record.containers if c.runtime_id}
        work = self._steps.perform(name, step, self._record.container(name).runtime_id, created)
        self._inflight[name] = asyncio.create_task(self._deliver(work))

    async def _deliver(self, work: Awaitable[Outcome]) -> None:
        self._inbox.put_nowait(await work)
