"""The next step for one container, from its (desired, known) status and its neighbours.

Pure: no I/O, no clock (``TaskView.now`` is passed in). The task runner calls
``next_action`` for every idle container after each change and carries out what it
returns. The pipeline, top to bottom:

1. a stopped essential container stops the task (its exit, or its failure to start);
2. a container not yet running whose ``dependsOn`` can never be met stops the task;
3. ``_TABLE`` maps (desired, known) to a step;
4. the step's guard may make it wait: CREATE for the containers it links to or takes
   volumes from (and the pause container), START for its ``dependsOn`` conditions,
   STOP for the containers that depend on it (so containers stop in reverse order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum

from dockyard.agent.assignment import Condition, Dependency
from dockyard.agent.status import ContainerStatus, StopCode, TaskStatus

ESSENTIAL_EXITED = "Essential container in task exited"  # ECS's exact stoppedReason


def essential_exited(name: str, exit_code: int | None) -> str:
    """ECS's words, then which container it was (ECS leaves the user to find out)."""
    code = "" if exit_code is None else f" with exit code {exit_code}"
    return f"{ESSENTIAL_EXITED}: container '{name}' exited{code}"


_NONE, _PULLED, _CREATED, _RUNNING, _STOPPED = ContainerStatus


class Step(StrEnum):
    NONE = "none"  # nothing to do now: steady, or waiting (``reason`` says for what)
    PULL = "pull"
    CREATE = "create"
    START = "start"
    STOP = "stop"
    MARK_STOPPED = "mark-stopped"  # never ran: STOPPED without asking the runtime
    STOP_TASK = "stop-task"  # the task cannot go on: desired STOPPED, with a reason


@dataclass(frozen=True)
class Action:
    step: Step
    reason: str | None = None
    stop_code: StopCode | None = None


@dataclass(frozen=True)
class ContainerView:
    """What the table needs to know about one container of the task."""

    name: str
    known: ContainerStatus
    essential: bool = True
    depends_on: tuple[Dependency, ...] = ()
    needs_created: tuple[str, ...] = ()
    created: bool = False  # the runtime has (or had) this container
    started_at: float | None = None  # when it was first seen running
    exit_code: int | None = None
    health: str | None = None  # Docker's: starting | healthy | unhealthy
    health_check: bool = False
    start_timeout: float | None = None  # seconds others wait for a condition on it
    reason: str | None = None  # why it stopped without running (pull/create/start error)
    internal: bool = False  # the pause container

    @property
    def started(self) -> bool:
        return self.started_at is not None


@dataclass(frozen=True)
class TaskView:
    desired: TaskStatus
    now: float


class _Resolution(Enum):
    MET = "met"
    WAIT = "wait"
    NEVER = "never"


_TABLE: Mapping[tuple[ContainerStatus, ContainerStatus], Step] = {
    # (desired, known) -> step
    (_RUNNING, _NONE): Step.PULL,
    (_RUNNING, _PULLED): Step.CREATE,
    (_RUNNING, _CREATED): Step.START,
    (_RUNNING, _RUNNING): Step.NONE,
    (_RUNNING, _STOPPED): Step.NONE,
    (_STOPPED, _NONE): Step.MARK_STOPPED,
    (_STOPPED, _PULLED): Step.MARK_STOPPED,
    (_STOPPED, _CREATED): Step.MARK_STOPPED,  # created, never started: nothing to stop
    (_STOPPED, _RUNNING): Step.STOP,
    (_STOPPED, _STOPPED): Step.NONE,
}


def next_action(
    container: ContainerView, task: TaskView, containers: Mapping[str, ContainerView]
) -> Action:
    """What to do next with ``container``; ``containers`` is every container of the task
    by name (``container`` included)."""
    desired = ContainerStatus.desired_for(task.desired)
    if desired is _RUNNING and container.known is _STOPPED:
        return _after_stop(container)
    if desired is _RUNNING:
        never = _unresolvable(container, task, containers)
        if never is not None:
            return Action(Step.STOP_TASK, never, StopCode.TASK_FAILED_TO_START)
    step = _TABLE[desired, container.known]
    guard = _GUARDS.get(step)
    waiting = guard(container, task, containers) if guard else None
    return Action(Step.NONE, waiting) if waiting else Action(step)


def task_status(desired: TaskStatus, containers: Iterable[ContainerView]) -> TaskStatus:
    """The task's lastStatus from its containers' (before the forward-only rule)."""
    views = list(containers)
    app = [c for c in views if not c.internal]
    internal = [c for c in views if c.internal]
    if all(c.known is _STOPPED for c in views):
        return TaskStatus.STOPPED
    if all(c.known is _STOPPED for c in app):
        return TaskStatus.DEPROVISIONING  # only the pause container is left
    if desired >= TaskStatus.STOPPING:
        return TaskStatus.STOPPING
    if any(c.known < _RUNNING for c in internal):
        return TaskStatus.PROVISIONING
    if all(c.known >= _RUNNING for c in app):
        return TaskStatus.RUNNING
    return TaskStatus.PENDING


def _after_stop(container: ContainerView) -> Action:
    if not container.essential:
        return Action(Step.NONE)
    if container.started:
        reason = essential_exited(container.name, container.exit_code)
        return Action(Step.STOP_TASK, reason, StopCode.ESSENTIAL_CONTAINER_EXITED)
    reason = container.reason or f"Essential container {container.name} stopped before it started"
    return Action(Step.STOP_TASK, reason, StopCode.TASK_FAILED_TO_START)


def _unresolvable(
    container: ContainerView, task: TaskView, containers: Mapping[str, ContainerView]
) -> str | None:
    """Why ``container`` can never start, or None while it still may."""
    if container.known >= _RUNNING:
        return None  # conditions are checked only until it starts
    for name in container.needs_created:
        needed = containers.get(name)
        if needed is None:
            return f"Container {container.name} cannot start: it needs {name}, not in the task"
        if needed.known is _STOPPED and not needed.created:
            why = f": {needed.reason}" if needed.reason else ""
            return f"Container {container.name} cannot start: {name} was never created{why}"
    for dependency in container.depends_on:
        resolution, why = _resolve(dependency, containers.get(dependency.container), task.now)
        if resolution is _Resolution.NEVER:
            return (
                f"Container {container.name} cannot start: dependency {dependency.container} "
                f"{why} (condition {dependency.condition})"
            )
    return None


def _resolve(
    dependency: Dependency, other: ContainerView | None, now: float
) -> tuple[_Resolution, str]:
    met, wait, never = _Resolution.MET, _Resolution.WAIT, _Resolution.NEVER
    if other is None:
        return never, "is not in the task"
    stopped = other.known is _STOPPED
    if stopped and not other.started:
        return never, "stopped without starting" + (f": {other.reason}" if other.reason else "")
    condition = dependency.condition
    if condition is Condition.START:
        return (met, "") if other.started else (wait, "has not started")
    if condition is Condition.COMPLETE:
        if stopped:
            return met, ""
        result = (wait, "has not exited")
    elif condition is Condition.SUCCESS:
        if stopped:
            code = other.exit_code
            return (met, "") if code == 0 else (never, f"exited with code {code}")
        result = (wait, "has not exited")
    else:  # HEALTHY
        if not other.health_check:
            return never, "has no health check"
        if stopped:
            return never, "stopped before becoming healthy"
        if other.health == "healthy":
            return met, ""
        result = (wait, "is not healthy yet")
    timeout = other.start_timeout
    if timeout is not None and other.started_at is not None and now - other.started_at >= timeout:
        return never, f"did not meet it within its startTimeout of {timeout:g} seconds"
    return result


def _create_guard(
    container: ContainerView, task: TaskView, containers: Mapping[str, ContainerView]
) -> str | None:
    missing = [n for n in container.needs_created if not containers[n].created]
    return f"waiting for {', '.join(missing)} to be created" if missing else None


def _start_guard(
    container: ContainerView, task: TaskView, containers: Mapping[str, ContainerView]
) -> str | None:
    waiting = [
        f"{d.container} ({why})"
        for d in container.depends_on
        for resolution, why in [_resolve(d, containers.get(d.container), task.now)]
        if resolution is not _Resolution.MET
    ]
    return f"waiting for {', '.join(waiting)}" if waiting else None


def _stop_guard(
    container: ContainerView, task: TaskView, containers: Mapping[str, ContainerView]
) -> str | None:
    # Reverse dependency order: whoever depends on this container stops first.
    running = [
        other.name
        for other in containers.values()
        if other.known is _RUNNING and any(d.container == container.name for d in other.depends_on)
    ]
    return f"waiting for {', '.join(running)} to stop first" if running else None


_Guard = Callable[[ContainerView, TaskView, Mapping[str, ContainerView]], "str | None"]
_GUARDS: Mapping[Step, _Guard] = {
    Step.CREATE: _create_guard,
    Step.START: _start_guard,
    Step.STOP: _stop_guard,
}
