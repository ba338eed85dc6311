"""Service reconciler stories, table-driven: a snapshot in, a plan out. ``spec``,
``dep``, ``task`` and ``snap`` are the fixture factories; ``Sim`` is a tiny cluster that
applies plans (tasks start PENDING, stops take effect when told) for the step-by-step
stories and the Hypothesis properties."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.control.model import (
    CircuitBreaker,
    Deployment,
    Plan,
    ServiceSnapshot,
    ServiceSpec,
    TaskState,
    Throttle,
)
from dockyard.control.services import (
    ServiceConfigError,
    circuit_breaker_threshold,
    reconcile,
    replica_bounds,
    started_event,
    throttle_delay,
    unable_to_place_event,
    validate_deployment_configuration,
)
from dockyard.scheduler.model import Failure, Instance, Resources, Strategy

NAME = "web"


def spec(**fields: Any) -> ServiceSpec:
    defaults: dict[str, Any] = {
        "arn": f"arn:aws:ecs:eu-west-1:000000000000:service/default/{NAME}",
        "name": NAME,
        "task_definition_arn": "web:1",
        "desired_count": 4,
    }
    return ServiceSpec(**{**defaults, **fields})


def dep(
    id: str = "ecs-svc/1", status: str = "PRIMARY", td: str = "web:1", **fields: Any
) -> Deployment:
    defaults: dict[str, Any] = {"desired_count": 4, "rollout_state": "IN_PROGRESS"}
    return Deployment(id, status, td, **{**defaults, **fields})  # type: ignore[arg-type]


def task(
    name: str, on: str | None = "a", d: str = "ecs-svc/1", status: str = "RUNNING", **fields: Any
) -> TaskState:
    started = fields.pop("started_at", 0.0 if status == "RUNNING" else None)
    return TaskState(
        f"arn:aws:ecs:eu-west-1:000000000000:task/default/{name}",
        d,
        on,
        status,
        started_at=started,
        **fields,
    )


def snap(
    tasks: Sequence[TaskState] = (), deployments: Sequence[Deployment] | None = None, **fields: Any
) -> ServiceSnapshot:
    service = fields.pop("service", spec())
    return ServiceSnapshot(
        service=service,
        deployments=tuple(
            deployments if deployments is not None else [dep(desired_count=service.desired_count)]
        ),
        tasks=tuple(tasks),
        now=fields.pop("now", 100.0),
        **fields,
    )


def stopped_names(plan: Plan) -> set[str]:
    return {s.task_arn.rsplit("/", 1)[1] for s in plan.stop}


def running(
    n: int, d: str = "ecs-svc/1", on: Sequence[str] = ("a", "b", "c"), prefix: str = "t"
) -> list[TaskState]:
    return [task(f"{prefix}{i}", on[i % len(on)], d) for i in range(n)]


def failed(n: int, d: str = "ecs-svc/1") -> list[TaskState]:
    """``n`` tasks of deployment ``d`` that failed to start, one a second from t=50."""
    return [
        task(f"f{i}", d=d, status="STOPPED", stop_code="TaskFailedToStart", stopped_at=50.0 + i)
        for i in range(n)
    ]


def instance(name: str, zone: str, memory: int = 4096) -> Instance:
    free = Resources(2048, memory)
    return Instance(name, f"i-{name}", free, free, attributes={"ecs.availability-zone": zone})


OLD_NEW = [
    dep("ecs-svc/1", "ACTIVE", "web:1", rollout_state="COMPLETED"),
    dep("ecs-svc/2", "PRIMARY", "web:2"),
]


@dataclass
class Story:
    name: str
    snapshot: ServiceSnapshot
    start: int = 0
    stop: set[str] = field(default_factory=set)
    stop_count: int | None = None  # when which ones is a draw
    events: Sequence[str] = ()  # substrings that must appear in some event
    updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    check: Callable[[Plan], None] | None = None


def _throttled(plan: Plan) -> None:
    assert plan.throttle == Throttle(3, 50.0 + 15.0) and plan.throttle_until == 65.0


STORIES = [
    Story("fresh service starts desired", snap(), start=4),
    Story(
        "a stopped task is replaced",
        snap(
            [
                *running(3),
                task(
                    "dead", status="STOPPED", stop_code="EssentialContainerExited", stopped_at=90.0
                ),
            ]
        ),
        start=1,
        updates={"ecs-svc/1": {"failed_tasks": 1}},
    ),
    Story("scale 4 -> 5 starts one", snap(running(4), service=spec(desired_count=5)), start=1),
    Story(
        "scale-in 4 -> 2 stops from the zone with the most (spread by zone)",
        snap(
            [task("a1", "a"), task("a2", "a"), task("a3", "a"), task("b1", "b")],
            service=spec(desired_count=2),
            instances={"a": instance("a", "z1"), "b": instance("b", "z2")},
        ),
        stop_count=2,
        check=lambda p: _eq(stopped_names(p) <= {"a1", "a2", "a3"}, True),
    ),
    Story(
        "scale-in with binpack(memory) stops where the most memory is free",
        snap(
            [task("a1", "a", memory=512), task("b1", "b", memory=512), task("c1", "c", memory=512)],
            service=spec(desired_count=2, strategies=(Strategy.binpack("memory"),)),
            instances={
                "a": instance("a", "z1", 100),
                "b": instance("b", "z1", 3000),
                "c": instance("c", "z1", 200),
            },
        ),
        stop={"b1"},
    ),
    Story(
        "scale-in stops PENDING tasks before running ones",
        snap([*running(3), task("p", status="PENDING")], service=spec(desired_count=3)),
        stop={"p"},
    ),
    Story(
        "min 100 starts new first and stops nothing old",
        snap(running(4), OLD_NEW),
        start=4,
    ),
    Story(
        "min 100: each healthy new task releases one old",
        snap([*running(4), *running(2, "ecs-svc/2", prefix="n")], OLD_NEW),
        start=2,
        stop_count=2,
        check=lambda p: _eq(stopped_names(p) <= {"t0", "t1", "t2", "t3"}, True),
    ),
    Story(
        "min 50 max 200 stops two old while four new start",
        snap(running(4), OLD_NEW, service=spec(min_healthy_percent=50)),
        start=4,
        stop_count=2,
    ),
    Story(
        "health check grace: UNKNOWN new tasks are not healthy, so nothing old stops",
        snap(
            [*running(4), *(task(f"n{i}", d="ecs-svc/2", health="UNKNOWN") for i in range(4))],
            OLD_NEW,
        ),
    ),
    Story(
        "health check grace: UNHEALTHY within the grace period is left alone",
        snap(
            [*running(3), task("sick", health="UNHEALTHY", started_at=90.0)],
            service=spec(health_check_grace_seconds=60),
        ),
        check=lambda p: _eq(p.wake_at, 150.0),
    ),
    Story(
        "health check grace: UNHEALTHY after the grace period is stopped and replaced",
        snap(
            [*running(3), task("sick", health="UNHEALTHY", started_at=10.0)],
            service=spec(health_check_grace_seconds=60),
        ),
        start=1,  # max 200 leaves room: the replacement starts at once
        stop={"sick"},
    ),
    Story(
        "steady state is announced once",
        snap(running(4)),
        events=[
            "(service web) has reached a steady state.",
            "(deployment ecs-svc/1) deployment completed.",
        ],
        updates={
            "ecs-svc/1": {
                "rollout_state": "COMPLETED",
                "rollout_reason": "ECS deployment ecs-svc/1 completed.",
            }
        },
    ),
    Story(
        "circuit breaker trips at 3 failures for desired 4",
        snap(
            [
                *running(2, "ecs-svc/1"),
                *failed(3, "ecs-svc/2"),
            ],
            OLD_NEW,
            service=spec(circuit_breaker=CircuitBreaker(enable=True)),
        ),
        events=["(service web) (deployment ecs-svc/2) deployment failed: tasks failed to start."],
        updates={
            "ecs-svc/2": {
                "rollout_state": "FAILED",
                "failed_tasks": 3,
                "rollout_reason": "ECS deployment circuit breaker: tasks failed to start.",
            }
        },
        check=lambda p: _eq(p.rollback_to, None),
    ),
    Story(
        "two failures stay below the threshold",
        snap(
            failed(2),
            service=spec(circuit_breaker=CircuitBreaker(enable=True)),
        ),
        start=4,
        updates={"ecs-svc/1": {"failed_tasks": 2}},
    ),
    Story(
        "rollback restores the last COMPLETED deployment",
        snap(
            [
                *running(2, "ecs-svc/1"),
                *failed(3, "ecs-svc/2"),
            ],
            OLD_NEW,
            service=spec(circuit_breaker=CircuitBreaker(enable=True, rollback=True)),
        ),
        start=2,  # the restored deployment is short of two
        events=[
            "deployment failed: tasks failed to start.",
            "rolling back to deployment ecs-svc/1",
        ],
        updates={
            "ecs-svc/2": {"rollout_state": "FAILED", "status": "ACTIVE"},
            "ecs-svc/1": {
                "status": "PRIMARY",
                "rollout_state": "IN_PROGRESS",
                "rollout_reason": (
                    "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1."
                ),
            },
        },
        check=lambda p: _eq(p.rollback_to, "ecs-svc/1"),
    ),
    Story(
        "tasks lost with their host are replaced and are no failures",
        snap(
            [
                *running(2, on=("a",)),
                *(
                    task(
                        f"l{i}",
                        "dead",
                        status="STOPPED",
                        stop_code="EssentialContainerExited",
                        stopped_at=90.0,
                    )
                    for i in range(2)
                ),
            ],
            lost_instances=frozenset({"dead"}),
            service=spec(circuit_breaker=CircuitBreaker(enable=True)),
        ),
        start=2,
    ),
    Story(
        "throttle: the third start failure in a row delays starts 15 s",
        snap(
            [
                task(f"f{i}", status="STOPPED", stop_code="TaskFailedToStart", stopped_at=48.0 + i)
                for i in range(3)
            ],
            now=60.0,
        ),
        events=["(service web) is unable to consistently start tasks successfully."],
        check=_throttled,
    ),
    Story(
        "throttle: starts resume when the delay is over, no second event",
        snap(
            [
                task(f"f{i}", status="STOPPED", stop_code="TaskFailedToStart", stopped_at=48.0 + i)
                for i in range(3)
            ],
            now=65.0,
            throttle=Throttle(3, 65.0),
        ),
        start=4,
        check=lambda p: _eq([e for e in p.events if "consistently" in e], []),
    ),
    Story(
        "throttle: a new task definition starts at once",
        snap(
            [
                task(f"f{i}", status="STOPPED", stop_code="TaskFailedToStart", stopped_at=48.0 + i)
                for i in range(3)
            ],
            [dep("ecs-svc/1", "ACTIVE"), dep("ecs-svc/2", "PRIMARY", "web:2")],
            now=60.0,
            throttle=Throttle(3, 65.0),
        ),
        start=4,
        check=lambda p: _eq(p.throttle, Throttle(0)),
    ),
    Story(
        "draining: PENDING tasks there stop at once, RUNNING ones are replaced first (min 100)",
        snap(
            [task("a1", "a"), task("a2", "a"), task("p", "d", status="PENDING"), task("r", "d")],
            draining_instances=frozenset({"d"}),
        ),
        start=2,
        stop={"p"},
    ),
    Story(
        "draining: once the replacements are healthy the RUNNING task there stops",
        snap([*running(4, on=("a",)), task("r", "d")], draining_instances=frozenset({"d"})),
        stop={"r"},
    ),
    Story(
        "draining with min 50 stops the RUNNING task without waiting",
        snap(
            [*running(3, on=("a",)), task("r", "d")],
            draining_instances=frozenset({"d"}),
            service=spec(min_healthy_percent=50),
        ),
        start=1,
        stop={"r"},
    ),
    Story(
        "DAEMON: one task per eligible instance",
        snap(
            service=spec(
                scheduling="DAEMON", desired_count=0, min_healthy_percent=0, max_percent=100
            ),
            eligible_instances=("a", "b", "c"),
        ),
        start=3,
        updates={"ecs-svc/1": {"desired_count": 3}},
        check=lambda p: _eq(sorted(s.instance_arn or "" for s in p.start), ["a", "b", "c"]),
    ),
    Story(
        "DAEMON: a new instance gets one, an ineligible one loses its task",
        snap(
            [task("ta", "a"), task("tb", "b"), task("tx", "x")],
            [dep(desired_count=3)],
            service=spec(scheduling="DAEMON", min_healthy_percent=0, max_percent=100),
            eligible_instances=("a", "b", "c"),
        ),
        start=1,
        stop={"tx"},
        check=lambda p: _eq([s.instance_arn for s in p.start], ["c"]),
    ),
    Story(
        "DAEMON roll-out: old tasks stop first, within the minimum (50% of 4)",
        snap(
            [task("ta", "a"), task("tb", "b"), task("tc", "c"), task("td", "d")],
            OLD_NEW,
            service=spec(scheduling="DAEMON", min_healthy_percent=50, max_percent=100),
            eligible_instances=("a", "b", "c", "d"),
        ),
        stop_count=2,  # and nothing starts until they are STOPPED
    ),
]


def _eq(actual: object, expected: object) -> None:
    assert actual == expected


@pytest.mark.parametrize("story", STORIES, ids=lambda s: s.name)
def test_story(story: Story) -> None:
    plan = reconcile(story.snapshot)
    assert plan.start_count == story.start
    if story.stop_count is not None:
        assert len(plan.stop) == story.stop_count
    elif story.check is None or story.stop:
        assert stopped_names(plan) == story.stop
    for wanted in story.events:
        assert any(wanted in e for e in plan.events), plan.events
    updates = {u.deployment_id: u for u in plan.deployment_updates}
    for d, fields in story.updates.items():
        for k, v in fields.items():
            assert getattr(updates[d], k) == v, (d, k)
    if story.check is not None:
        story.check(plan)
    assert reconcile(story.snapshot) == plan  # idempotent


def test_steady_state_is_not_repeated() -> None:
    done = [dep(rollout_state="COMPLETED")]
    plan = reconcile(snap(running(4), done, steady=True))
    assert plan.steady and plan.events == () and plan.deployment_updates == ()


def test_min_100_stops_old_only_for_healthy_new() -> None:
    plan = reconcile(snap([*running(4), *running(2, "ecs-svc/2", prefix="n")], OLD_NEW))
    assert plan.start_count == 2 and len(plan.stop) == 2
    assert all(s.task_arn.rsplit("/", 1)[1].startswith("t") for s in plan.stop)
    assert plan.stop[0].reason == "Scaling activity initiated by (deployment ecs-svc/2)"


def test_stopped_event_names_the_tasks() -> None:
    plan = reconcile(snap(running(3), service=spec(desired_count=2)))
    assert any(
        e.startswith("(service web) has stopped 1 running tasks: (task t") for e in plan.events
    )
    assert (
        started_event("web", ["arn:x:task/default/abc"])
        == "(service web) has started 1 tasks: (task abc)."
    )


def test_unable_to_place_event() -> None:
    failure = Failure(
        "arn:aws:ecs:r:1:container-instance/default/ci-1", "RESOURCE:MEMORY", "it has 1 MiB left"
    )
    text = unable_to_place_event("web", failure)
    assert text.startswith(
        "(service web) was unable to place a task because no container instance met all of "
        "its requirements."
    )
    assert "(container-instance ci-1) has insufficient memory available." in text and text.endswith(
        "it has 1 MiB left"
    )
    assert "No Container Instances were found" in unable_to_place_event("web", None)


@pytest.mark.parametrize(
    ("desired", "threshold"), [(1, 3), (4, 3), (7, 4), (10, 5), (400, 200), (1000, 200)]
)
def test_circuit_breaker_threshold(desired: int, threshold: int) -> None:
    assert circuit_breaker_threshold(desired) == threshold


def test_throttle_doubles_to_a_cap_of_15_minutes() -> None:
    delays = [throttle_delay(n) for n in range(1, 12)]
    assert delays[:2] == [0.0, 0.0]
    assert delays[2:8] == [15.0, 30.0, 60.0, 120.0, 240.0, 480.0]
    assert delays[8:] == [900.0, 900.0, 900.0]


@pytest.mark.parametrize(
    ("args", "result"),
    [
        (("REPLICA", None, None), (100, 200)),
        (("DAEMON", None, None), (0, 100)),
        (("REPLICA", 50, 150), (50, 150)),
    ],
)
def test_deployment_configuration_defaults(
    args: tuple[str, int | None, int | None], result: tuple[int, int]
) -> None:
    assert validate_deployment_configuration(*args) == result


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("DAEMON", 0, 200), "must be 100"),
        (("REPLICA", 120, 200), "between 0 and 100"),
        (("REPLICA", -1, 200), "between 0 and 100"),
        (("REPLICA", 50, 90), "at least 100"),
    ],
)
def test_deployment_configuration_refused(args: tuple[str, int, int], words: str) -> None:
    with pytest.raises(ServiceConfigError, match=words):
        validate_deployment_configuration(*args)


@pytest.mark.parametrize(
    ("desired", "low_pct", "high_pct", "bounds"),
    [(4, 50, 200, (2, 8)), (3, 50, 150, (2, 4)), (5, 100, 200, (5, 10)), (1, 50, 150, (1, 2))],
)
def test_bounds_round_min_up_and_max_down(
    desired: int, low_pct: int, high_pct: int, bounds: tuple[int, int]
) -> None:
    assert replica_bounds(desired, low_pct, high_pct) == bounds


# A tiny cluster that applies plans.


class Sim:
    def __init__(self, service: ServiceSpec, instances: Sequence[str] = ("a", "b", "c")) -> None:
        self.service = service
        self.deployments = [dep(desired_count=service.desired_count)]
        self.tasks: dict[str, TaskState] = {}
        self.now = 0.0
        self.steady = False
        self.throttle = Throttle()
        self.instances = list(instances)
        self.ids = itertools.count()
        self.revision = 1

    def snapshot(self) -> ServiceSnapshot:
        return ServiceSnapshot(
            self.service, tuple(self.deployments), tuple(self.tasks.values()), self.now,
            eligible_instances=tuple(self.instances), throttle=self.throttle, steady=self.steady,
        )  # fmt: skip

    def healthy(self) -> int:
        return sum(1 for t in self.tasks.values() if t.running and t.health in (None, "HEALTHY"))

    def occupied(self) -> int:
        return sum(1 for t in self.tasks.values() if not t.stopped)

    def tick(self) -> Plan:
        svc = self.service
        low, high = replica_bounds(svc.desired_count, svc.min_healthy_percent, svc.max_percent)
        before = self.healthy()
        plan = reconcile(self.snapshot())
        for stop in plan.stop:
            self.set(stop.task_arn, desired_status="STOPPED")
        for start in plan.start:
            for _ in range(start.count):
                n = next(self.ids)
                on = start.instance_arn or self.instances[n % len(self.instances)]
                self.tasks[f"task/{n}"] = TaskState(f"task/{n}", start.deployment_id, on, "PENDING")
        for u in plan.deployment_updates:
            i = next(k for k, d in enumerate(self.deployments) if d.id == u.deployment_id)
            changes = {
                k: v for k, v in u.__dict__.items() if v is not None and k != "deployment_id"
            }
            self.deployments[i] = replace(self.deployments[i], **changes)
        if plan.rollback_to is not None:
            back = next(d for d in self.deployments if d.id == plan.rollback_to)
            self.service = replace(self.service, task_definition_arn=back.task_definition_arn)
        self.steady, self.throttle = plan.steady, plan.throttle
        # The properties: never below the minimum by our stops, never above the maximum.
        assert self.healthy() >= min(low, before)
        assert self.occupied() <= high
        return plan

    def update(self) -> None:
        self.revision += 1
        self.deployments = [
            replace(d, status="ACTIVE") if d.status == "PRIMARY" else d for d in self.deployments
        ]
        new = dep(
            f"ecs-svc/{self.revision}",
            "PRIMARY",
            f"web:{self.revision}",
            desired_count=self.service.desired_count,
        )
        self.deployments.append(new)
        self.service = replace(self.service, task_definition_arn=new.task_definition_arn)

    def set(self, arn: str, **fields: Any) -> None:
        self.tasks[arn] = replace(self.tasks[arn], **fields)

    def run_pending(self) -> None:
        for t in list(self.tasks.values()):
            if t.last_status == "PENDING" and t.desired_status == "RUNNING":
                self.set(t.arn, last_status="RUNNING", started_at=self.now)

    def finish_stops(self) -> None:
        for t in list(self.tasks.values()):
            if t.desired_status == "STOPPED" and not t.stopped:
                self.set(
                    t.arn,
                    last_status="STOPPED",
                    stopped_at=self.now,
                    stop_code="ServiceSchedulerInitiated",
                )

    def settle(self, rounds: int = 60) -> Plan:
        """Let every task succeed until the plan says steady."""
        for _ in range(rounds):
            plan = self.tick()
            if plan.steady:
                return plan
            self.now += 1
            if plan.wake_at is not None and not plan.start and not plan.stop:
                self.now = max(self.now, plan.wake_at)
            self.finish_stops()
            self.run_pending()
        raise AssertionError("never reached a steady state")

    def primary_healthy(self) -> int:
        primary = next(d for d in self.deployments if d.status == "PRIMARY")
        return sum(1 for t in self.tasks.values() if t.deployment_id == primary.id and t.running)


def test_rolling_update_4_tasks_min_50_max_200_step_by_step() -> None:
    sim = Sim(spec(min_healthy_percent=50, max_percent=200))
    sim.settle()
    sim.update()
    first = sim.tick()
    assert first.start_count == 4 and len(first.stop) == 2  # 8 in all, 2 healthy
    plan = sim.settle()
    assert sim.primary_healthy() == 4 and sim.occupied() == 4
    assert any("has reached a steady state." in e for e in plan.events)
    assert sim.deployments[-1].rollout_state == "COMPLETED"
    assert sim.deployments[0].status == "INACTIVE"


def test_circuit_breaker_rollback_end_to_end() -> None:
    sim = Sim(spec(circuit_breaker=CircuitBreaker(enable=True, rollback=True)))
    sim.settle()
    sim.update()
    for _ in range(3):  # every new task fails to start
        sim.tick()
        sim.now += 1
        for t in list(sim.tasks.values()):
            if t.deployment_id == "ecs-svc/2" and t.last_status == "PENDING":
                sim.set(
                    t.arn, last_status="STOPPED", stop_code="TaskFailedToStart", stopped_at=sim.now
                )
    sim.settle()
    failed = next(d for d in sim.deployments if d.id == "ecs-svc/2")
    assert failed.rollout_state == "FAILED" and failed.status in ("ACTIVE", "INACTIVE")
    assert sim.service.task_definition_arn == "web:1" and sim.primary_healthy() == 4


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["run", "fail", "crash", "sick", "finish"]), st.integers(0, 20)),
        st.tuples(st.just("time"), st.integers(1, 120)),
        st.tuples(st.sampled_from(["update", "tick", "tick", "tick"]), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(
    desired=st.integers(1, 6),
    low=st.sampled_from([0, 25, 50, 100]),
    high=st.sampled_from([100, 150, 200]),
    actions=ACTIONS,
)
def test_deployments_stay_within_bounds_and_reach_desired(
    desired: int, low: int, high: int, actions: list[tuple[str, int]]
) -> None:
    sim = Sim(
        spec(
            desired_count=desired,
            min_healthy_percent=low,
            max_percent=high,
            health_check_grace_seconds=30,
        )
    )
    sim.settle()
    for kind, k in actions:
        pending = [
            t
            for t in sim.tasks.values()
            if t.last_status == "PENDING" and t.desired_status == "RUNNING"
        ]
        up = [t for t in sim.tasks.values() if t.running]
        if kind == "run" and pending:
            sim.set(pending[k % len(pending)].arn, last_status="RUNNING", started_at=sim.now)
        elif kind == "fail" and pending:
            sim.set(
                pending[k % len(pending)].arn,
                last_status="STOPPED",
                stop_code="TaskFailedToStart",
                stopped_at=sim.now,
            )
        elif kind == "crash" and up:
            sim.set(
                up[k % len(up)].arn,
                last_status="STOPPED",
                stop_code="EssentialContainerExited",
                stopped_at=sim.now,
            )
        elif kind == "sick" and up:
            sim.set(up[k % len(up)].arn, health="UNHEALTHY")
        elif kind == "finish":
            sim.finish_stops()
        elif kind == "time":
            sim.now += k
        elif kind == "update":
            sim.update()
        else:
            sim.tick()
    sim.settle(rounds=200)
    assert sim.primary_healthy() == desired and sim.occupied() == desired
