"""The transition table, case by case, in the manner of the ECS agent's TestContainerNextState:
(the container, its task's desired status, the other containers) -> the next action."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from dockyard.agent.assignment import Condition, Dependency
from dockyard.agent.status import ContainerStatus, StopCode, TaskStatus
from dockyard.agent.transitions import (
    ESSENTIAL_EXITED,
    Action,
    ContainerView,
    Step,
    TaskView,
    next_action,
    task_status,
)

NONE, PULLED, CREATED, RUNNING, STOPPED = ContainerStatus
NOW = 1000.0


def c(name: str = "app", known: ContainerStatus = NONE, **fields: object) -> ContainerView:
    """A container view; ``created`` and ``started_at`` follow ``known`` unless given."""
    defaults: dict[str, object] = {
        "created": known >= CREATED,
        "started_at": NOW - 10 if known >= RUNNING else None,
    }
    return ContainerView(name=name, known=known, **{**defaults, **fields})  # type: ignore[arg-type]


NEVER_RAN: dict[str, object] = {"created": False, "started_at": None}


def needs(name: str, condition: Condition) -> tuple[Dependency, ...]:
    return (Dependency(name, condition),)


@dataclass
class Case:
    name: str
    container: ContainerView
    expected: Action
    others: list[ContainerView] = field(default_factory=list)
    desired: TaskStatus = TaskStatus.RUNNING

    def __str__(self) -> str:
        return self.name


def stop_task(reason: str, code: StopCode = StopCode.TASK_FAILED_TO_START) -> Action:
    return Action(Step.STOP_TASK, reason, code)


GO_PULL, GO_CREATE, GO_START, GO_STOP = (
    Action(s) for s in (Step.PULL, Step.CREATE, Step.START, Step.STOP)
)
STEADY, MARK = Action(Step.NONE), Action(Step.MARK_STOPPED)

CASES = [
    # The plain table: desired RUNNING walks forward one step at a time.
    Case("new container is pulled", c(known=NONE), GO_PULL),
    Case("pulled container is created", c(known=PULLED), GO_CREATE),
    Case("created container is started", c(known=CREATED), GO_START),
    Case("running container is left alone", c(known=RUNNING), STEADY),
    # Desired STOPPED: only a running container needs the runtime.
    Case("never pulled, task stopping: marked", c(known=NONE), MARK, desired=TaskStatus.STOPPED),
    Case("pulled, task stopping: marked", c(known=PULLED), MARK, desired=TaskStatus.STOPPED),
    Case("created, task stopping: marked", c(known=CREATED), MARK, desired=TaskStatus.STOPPED),
    Case("running, task stopping: stopped", c(known=RUNNING), GO_STOP, desired=TaskStatus.STOPPED),
    Case("stopped, task stopping: done", c(known=STOPPED), STEADY, desired=TaskStatus.STOPPED),
    # Create waits for what it links to or takes volumes from.
    Case(
        "create waits for a link target to exist",
        c(known=PULLED, needs_created=("db",)),
        Action(Step.NONE, "waiting for db to be created"),
        [c("db", PULLED)],
    ),
    Case(
        "create follows the link target",
        c(known=PULLED, needs_created=("db",)),
        GO_CREATE,
        [c("db", CREATED)],
    ),
    Case(
        "pull does not wait for dependencies",
        c(known=NONE, depends_on=needs("init", Condition.SUCCESS)),
        GO_PULL,
        [c("init", RUNNING)],
    ),
    # dependsOn conditions gate the start.
    Case(
        "START waits for the dependency to start",
        c(known=CREATED, depends_on=needs("db", Condition.START)),
        Action(Step.NONE, "waiting for db (has not started)"),
        [c("db", CREATED)],
    ),
    Case(
        "START met by a running dependency",
        c(known=CREATED, depends_on=needs("db", Condition.START)),
        GO_START,
        [c("db", RUNNING)],
    ),
    Case(
        "COMPLETE waits while the dependency runs",
        c(known=CREATED, depends_on=needs("init", Condition.COMPLETE)),
        Action(Step.NONE, "waiting for init (has not exited)"),
        [c("init", RUNNING, essential=False)],
    ),
    Case(
        "COMPLETE met by any exit",
        c(known=CREATED, depends_on=needs("init", Condition.COMPLETE)),
        GO_START,
        [c("init", STOPPED, exit_code=3, essential=False)],
    ),
    Case(
        "SUCCESS met by exit 0",
        c(known=CREATED, depends_on=needs("init", Condition.SUCCESS)),
        GO_START,
        [c("init", STOPPED, exit_code=0, essential=False)],
    ),
    Case(
        "SUCCESS can never be met after exit 1",
        c(known=CREATED, depends_on=needs("init", Condition.SUCCESS)),
        stop_task(
            "Container app cannot start: dependency init exited with code 1 (condition SUCCESS)"
        ),
        [c("init", STOPPED, exit_code=1, essential=False)],
    ),
    Case(
        "SUCCESS failure is seen before the container is even pulled",
        c(known=NONE, depends_on=needs("init", Condition.SUCCESS)),
        stop_task(
            "Container app cannot start: dependency init exited with code 1 (condition SUCCESS)"
        ),
        [c("init", STOPPED, exit_code=1, essential=False)],
    ),
    Case(
        "HEALTHY waits while the check is starting",
        c(known=CREATED, depends_on=needs("db", Condition.HEALTHY)),
        Action(Step.NONE, "waiting for db (is not healthy yet)"),
        [c("db", RUNNING, health="starting", health_check=True)],
    ),
    Case(
        "HEALTHY met by a healthy dependency",
        c(known=CREATED, depends_on=needs("db", Condition.HEALTHY)),
        GO_START,
        [c("db", RUNNING, health="healthy", health_check=True)],
    ),
    Case(
        "HEALTHY can never be met once the dependency stopped",
        c(known=CREATED, depends_on=needs("db", Condition.HEALTHY)),
        stop_task(
            "Container app cannot start: dependency db stopped before becoming healthy "
            "(condition HEALTHY)"
        ),
        [c("db", STOPPED, exit_code=1, health="unhealthy", health_check=True, essential=False)],
    ),
    Case(
        "HEALTHY on a container without a health check",
        c(known=CREATED, depends_on=needs("db", Condition.HEALTHY)),
        stop_task(
            "Container app cannot start: dependency db has no health check (condition HEALTHY)"
        ),
        [c("db", RUNNING)],
    ),
    Case(
        "HEALTHY not met within the dependency's startTimeout",
        c(known=CREATED, depends_on=needs("db", Condition.HEALTHY)),
        stop_task(
            "Container app cannot start: dependency db did not meet it within its startTimeout "
            "of 5 seconds (condition HEALTHY)"
        ),
        [c("db", RUNNING, health="starting", health_check=True, start_timeout=5.0)],
    ),
    Case(
        "a dependency that failed to pull",
        c(known=PULLED, depends_on=needs("db", Condition.START)),
        stop_task(
            "Container app cannot start: dependency db stopped without starting: "
            "CannotPullContainerError: not found (condition START)"
        ),
        [
            c(
                "db",
                STOPPED,
                reason="CannotPullContainerError: not found",
                essential=False,
                **NEVER_RAN,
            )
        ],
    ),
    Case(
        "a dependency that is not in the task",
        c(known=CREATED, depends_on=needs("ghost", Condition.START)),
        stop_task(
            "Container app cannot start: dependency ghost is not in the task (condition START)"
        ),
    ),
    Case(
        "a volumesFrom source that was never created",
        c(known=PULLED, needs_created=("data",)),
        stop_task(
            "Container app cannot start: data was never created: CannotPullContainerError: x"
        ),
        [c("data", STOPPED, reason="CannotPullContainerError: x", essential=False, **NEVER_RAN)],
    ),
    Case(
        "conditions no longer matter once started",
        c(known=RUNNING, depends_on=needs("db", Condition.HEALTHY)),
        STEADY,
        [c("db", STOPPED, exit_code=1, health_check=True, essential=False)],
    ),
    Case(
        "conditions do not matter when stopping",
        c(known=CREATED, depends_on=needs("init", Condition.SUCCESS)),
        MARK,
        [c("init", STOPPED, exit_code=1, essential=False)],
        TaskStatus.STOPPED,
    ),
    # Exits.
    Case(
        "an essential container exited",
        c(known=STOPPED, exit_code=0),
        stop_task(
            f"{ESSENTIAL_EXITED}: container 'app' exited with exit code 0",
            StopCode.ESSENTIAL_CONTAINER_EXITED,
        ),
    ),
    Case(
        "a non-essential container exited", c(known=STOPPED, exit_code=1, essential=False), STEADY
    ),
    Case(
        "an essential container failed to start",
        c(known=STOPPED, reason="CannotStartContainerError: no such file", started_at=None),
        stop_task("CannotStartContainerError: no such file"),
    ),
    # Stopping in reverse dependency order.
    Case(
        "stop waits for a running dependent",
        c("db", RUNNING),
        Action(Step.NONE, "waiting for app to stop first"),
        [c("app", RUNNING, depends_on=needs("db", Condition.START))],
        TaskStatus.STOPPED,
    ),
    Case(
        "stop follows the dependent's stop",
        c("db", RUNNING),
        GO_STOP,
        [c("app", STOPPED, exit_code=143, depends_on=needs("db", Condition.START))],
        TaskStatus.STOPPED,
    ),
    Case(
        "a dependent that never started does not hold the stop",
        c("db", RUNNING),
        GO_STOP,
        [c("app", CREATED, depends_on=needs("db", Condition.START))],
        TaskStatus.STOPPED,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_next_action(case: Case) -> None:
    containers = {v.name: v for v in [case.container, *case.others]}
    assert next_action(case.container, TaskView(case.desired, NOW), containers) == case.expected


PAUSE = {"internal": True}

STATUS_CASES = [
    ("nothing started yet", TaskStatus.RUNNING, [c("a", PULLED), c("b", NONE)], TaskStatus.PENDING),
    (
        "one of two running",
        TaskStatus.RUNNING,
        [c("a", RUNNING), c("b", CREATED)],
        TaskStatus.PENDING,
    ),
    ("all running", TaskStatus.RUNNING, [c("a", RUNNING), c("b", RUNNING)], TaskStatus.RUNNING),
    (
        "init done, app running",
        TaskStatus.RUNNING,
        [c("init", STOPPED), c("a", RUNNING)],
        TaskStatus.RUNNING,
    ),
    (
        "init done, app waiting",
        TaskStatus.RUNNING,
        [c("init", STOPPED), c("a", CREATED)],
        TaskStatus.PENDING,
    ),
    (
        "awsvpc: pause coming up",
        TaskStatus.RUNNING,
        [c("p", CREATED, **PAUSE), c("a", PULLED)],
        TaskStatus.PROVISIONING,
    ),
    (
        "awsvpc: pause up",
        TaskStatus.RUNNING,
        [c("p", RUNNING, **PAUSE), c("a", CREATED)],
        TaskStatus.PENDING,
    ),
    ("stop requested", TaskStatus.STOPPED, [c("a", RUNNING), c("b", STOPPED)], TaskStatus.STOPPING),
    (
        "awsvpc: only pause left",
        TaskStatus.STOPPED,
        [c("p", RUNNING, **PAUSE), c("a", STOPPED)],
        TaskStatus.DEPROVISIONING,
    ),
    (
        "all stopped",
        TaskStatus.STOPPED,
        [c("p", STOPPED, **PAUSE), c("a", STOPPED)],
        TaskStatus.STOPPED,
    ),
]


@pytest.mark.parametrize(
    ("name", "desired", "views", "expected"), STATUS_CASES, ids=[s[0] for s in STATUS_CASES]
)
def test_task_status(
    name: str, desired: TaskStatus, views: list[ContainerView], expected: TaskStatus
) -> None:
    assert task_status(desired, views) is expected
