"""Stories of the task engine on the FakeRuntime: a task starting, exiting, waiting for
its dependencies, failing to pull, being stopped, surviving an agent crash, and a
Hypothesis property that statuses only ever move forward."""

from __future__ import annotations

import asyncio
import functools
import json
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import botocore.session
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dockyard.agent import docker_spec
from dockyard.agent.assignment import PAUSE_CONTAINER, Assignment, ContainerReport, TaskReport
from dockyard.agent.config import AgentConfig, ImagePullBehavior
from dockyard.agent.docker_spec import VolumeSpec
from dockyard.agent.engine import NOT_ASSIGNED, TaskEngine
from dockyard.agent.fake_runtime import FakeRuntime
from dockyard.agent.runtime import ContainerSpec, HealthCheckSpec, PortBinding, RegistryAuth
from dockyard.agent.state import StateStore, TaskRecord
from dockyard.agent.status import ContainerStatus, StopCode, TaskStatus
from dockyard.agent.steps import CONTAINER_NAME_LABEL, TASK_ARN_LABEL, BuildSpec, Volumes
from dockyard.agent.task_cgroup import TaskCgroups
from dockyard.agent.transitions import ESSENTIAL_EXITED
from dockyard.api.validate import validate_input

T = TypeVar("T")
BUSYBOX = "127.0.0.1:5000/busybox:latest"
PAUSE_IMAGE = "dockyard/pause:latest"
CLUSTER = "arn:aws:ecs:us-east-1:000000000000:cluster/default"


# Factories ------------------------------------------------------------------------------


def container(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": BUSYBOX, "essential": True, **fields}


def task(
    *containers: dict[str, Any],
    task_id: str = "t1",
    network_mode: str = "bridge",
    desired: TaskStatus = TaskStatus.RUNNING,
) -> Assignment:
    return Assignment(
        task_arn=f"arn:aws:ecs:us-east-1:000000000000:task/default/{task_id}",
        cluster_arn=CLUSTER,
        family="web",
        revision=1,
        desired_status=desired,
        definition={"containerDefinitions": list(containers), "networkMode": network_mode},
    )


def build_spec(assignment: Assignment, name: str, created: Mapping[str, str]) -> ContainerSpec:
    """A small stand-in for docker_spec: labels, links, awsvpc and health checks."""
    task_id = assignment.task_arn.rsplit("/", 1)[-1]
    labels = {TASK_ARN_LABEL: assignment.task_arn, CONTAINER_NAME_LABEL: name}
    if name == PAUSE_CONTAINER:
        return ContainerSpec(name=f"ecs-{task_id}-pause", image=PAUSE_IMAGE, labels=labels)
    doc = next(d for d in assignment.definition["containerDefinitions"] if d["name"] == name)
    check = doc.get("healthCheck")
    awsvpc = assignment.network_mode == "awsvpc"
    return ContainerSpec(
        name=f"ecs-{assignment.family}-{assignment.revision}-{name}-{task_id}",
        image=doc["image"],
        labels=labels,
        network_mode=f"container:{created[PAUSE_CONTAINER]}" if awsvpc else "bridge",
        ports=tuple(PortBinding(p["containerPort"], 0) for p in doc.get("portMappings", ())),
        links=tuple(f"{created[link]}:{link}" for link in doc.get("links", ())),
        health_check=HealthCheckSpec(tuple(check["command"]), 1, 1, 1, 0) if check else None,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class RecordingRuntime(FakeRuntime):
    """Remembers the order containers were stopped in."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stopped: list[str] = []

    def stop(self, container_id: str, timeout: float) -> None:
        self.stopped.append(self.inspect(container_id).labels[CONTAINER_NAME_LABEL])
        super().stop(container_id, timeout)


class RecordingStore(StateStore):
    """Remembers every desired status saved, per task."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.desired: dict[str, list[TaskStatus]] = {}

    def save(self, record: TaskRecord) -> None:
        self.desired.setdefault(record.task_arn, []).append(record.desired)
        super().save(record)


@dataclass
class Rig:
    data_dir: Path
    clock: Clock = field(default_factory=Clock)
    reports: list[TaskReport] = field(default_factory=list)
    pull_behavior: ImagePullBehavior = ImagePullBehavior.DEFAULT
    auth: RegistryAuth | None = None
    build_spec: BuildSpec = build_spec
    volumes: Volumes = lambda assignment: ()
    task_cgroups: TaskCgroups | None = None

    def __post_init__(self) -> None:
        self.runtime = RecordingRuntime(clock=self.clock)
        self.runtime.add_image(BUSYBOX)
        self.runtime.add_image(PAUSE_IMAGE)
        self.store = RecordingStore(self.data_dir)

    @property
    def config(self) -> AgentConfig:
        return AgentConfig(
            data_dir=self.data_dir,
            container_stop_timeout=timedelta(seconds=12),
            task_cleanup_wait=timedelta(minutes=10),
            image_pull_behavior=self.pull_behavior,
        )

    def engine(self) -> TaskEngine:
        return TaskEngine(
            self.runtime,
            self.build_spec,
            self.reports.append,
            self.store,
            self.clock,
            self.config,
            auth_for=lambda image: self.auth,
            volumes=self.volumes,
            task_cgroups=self.task_cgroups,
            poll_interval=0.05,
        )

    def latest(self, arn: str) -> TaskReport:
        return [r for r in self.reports if r.task_arn == arn][-1]

    def container(self, arn: str, name: str) -> ContainerReport | None:
        """The container's latest report, if the task has reported yet."""
        reports = [r for r in self.reports if r.task_arn == arn]
        return containers_of(reports[-1]).get(name) if reports else None

    def statuses(self, arn: str) -> list[TaskStatus]:
        """The task's reported statuses, repeats folded."""
        seen: list[TaskStatus] = []
        for report in self.reports:
            if report.task_arn == arn and (not seen or seen[-1] != report.last_status):
                seen.append(report.last_status)
        return seen

    def ids(self, arn: str) -> dict[str, str]:
        found = self.runtime.containers({TASK_ARN_LABEL: arn})
        return {state.labels[CONTAINER_NAME_LABEL]: state.id for state in found}

    async def until(self, arn: str, status: TaskStatus) -> TaskReport:
        await until(
            lambda: any(r.task_arn == arn and r.last_status >= status for r in self.reports)
        )
        return self.latest(arn)


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the condition")
        await asyncio.sleep(0.005)


def run(story: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(story())


def containers_of(report: TaskReport) -> dict[str, ContainerReport]:
    return {c.name: c for c in report.containers}


async def running(rig: Rig, engine: TaskEngine, assignment: Assignment) -> TaskReport:
    await engine.apply([assignment])
    return await rig.until(assignment.task_arn, TaskStatus.RUNNING)


# Stories --------------------------------------------------------------------------------


def test_a_task_runs_and_reports_pending_then_running(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assignment = task(container("web", portMappings=[{"containerPort": 80}]), container("log"))

    async def story() -> None:
        engine = rig.engine()
        report = await running(rig, engine, assignment)
        await engine.close()
        assert rig.statuses(assignment.task_arn) == [TaskStatus.PENDING, TaskStatus.RUNNING]
        web = containers_of(report)["web"]
        assert web.last_status is ContainerStatus.RUNNING
        assert web.runtime_id == rig.ids(assignment.task_arn)["web"]
        assert web.network_bindings[0]["containerPort"] == 80
        assert web.network_bindings[0]["hostPort"] >= 32768
        assert report.pull_started_at == report.pull_stopped_at == rig.clock.now
        model = botocore.session.get_session().get_service_model("ecs")
        for sent in rig.reports:
            validate_input(model.operation_model("SubmitTaskStateChange"), sent.to_wire())

    run(story)


def test_an_essential_container_exiting_stops_the_task(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assignment = task(container("web"), container("log"))

    async def story() -> None:
        engine = rig.engine()
        await running(rig, engine, assignment)
        rig.runtime.exit(rig.ids(assignment.task_arn)["web"], 3)
        report = await rig.until(assignment.task_arn, TaskStatus.STOPPED)
        await engine.close()
        assert report.stop_code is StopCode.ESSENTIAL_CONTAINER_EXITED
        assert (
            report.stopped_reason == f"{ESSENTIAL_EXITED}: container 'web' exited with exit code 3"
        )
        assert containers_of(report)["web"].exit_code == 3
        assert containers_of(report)["log"].exit_code == 143  # we stopped it: SIGTERM
        assert report.execution_stopped_at == rig.clock.now
        assert report.to_wire()["stopCode"] == "EssentialContainerExited"

    run(story)


def test_a_non_essential_container_exiting_leaves_the_task_running(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assignment = task(container("web"), container("migrate", essential=False))
    arn = assignment.task_arn

    async def story() -> None:
        engine = rig.engine()
        await running(rig, engine, assignment)
        rig.runtime.exit(rig.ids(arn)["migrate"], 1)
        await until(lambda: getattr(rig.container(arn, "migrate"), "exit_code", None) == 1)
        await asyncio.sleep(0.1)  # a couple of ticks: nothing else happens
        await engine.close()
        report = rig.latest(arn)
        assert report.last_status is TaskStatus.RUNNING
        assert containers_of(report)["web"].last_status is ContainerStatus.RUNNING
        assert rig.runtime.inspect(rig.ids(arn)["web"]).status == "running"

    run(story)


def test_depends_on_healthy_waits_for_the_health_check(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    check = {"command": ["CMD-SHELL", "true"]}
    assignment = task(
        container("db", healthCheck=check),
        container("app", dependsOn=[{"containerName": "db", "condition": "HEALTHY"}]),
    )
    arn = assignment.task_arn

    async def story() -> None:
        engine = rig.engine()
        await engine.apply([assignment])
        await until(lambda: "app" in rig.ids(arn) and "db" in rig.ids(arn))
        await until(lambda: getattr(rig.container(arn, "db"), "runtime_id", None) is not None)
        await asyncio.sleep(0.15)  # ticks pass; the check is still "starting"
        assert rig.runtime.inspect(rig.ids(arn)["app"]).status == "created"
        assert rig.latest(arn).last_status is TaskStatus.PENDING
        assert containers_of(rig.latest(arn))["db"].to_wire()["healthStatus"] == "UNKNOWN"
        rig.runtime.set_health(rig.ids(arn)["db"], "healthy")
        report = await rig.until(arn, TaskStatus.RUNNING)
        await engine.close()
        assert rig.runtime.inspect(rig.ids(arn)["app"]).status == "running"
        assert containers_of(report)["db"].to_wire()["healthStatus"] == "HEALTHY"
        assert "healthStatus" not in containers_of(report)["app"].to_wire()

    run(story)


def test_a_success_dependency_exiting_1_stops_the_task(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assignment = task(
        container("init", essential=False),
        container("app", dependsOn=[{"containerName": "init", "condition": "SUCCESS"}]),
    )
    arn = assignment.task_arn

    async def story() -> None:
        engine = rig.engine()
        await engine.apply([assignment])
        await until(lambda: getattr(rig.container(arn, "init"), "runtime_id", None) is not None)
        await until(lambda: rig.runtime.inspect(rig.ids(arn)["init"]).status == "running")
        rig.runtime.exit(rig.ids(arn)["init"], 1)
        report = await rig.until(arn, TaskStatus.STOPPED)
        await engine.close()
        assert report.stop_code is StopCode.TASK_FAILED_TO_START
        assert report.stopped_reason == (
            "Container app cannot start: dependency init exited with code 1 (condition SUCCESS)"
        )
        assert rig.runtime.inspect(rig.ids(arn)["app"]).started_at is None  # never started

    run(story)


def test_a_missing_image_stops_the_task_with_the_pull_error(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assignment = task(container("web", image="127.0.0.1:5000/nope:latest"))

    async def story() -> None:
        engine = rig.engine()
        await engine.apply([assignment])
        report = await rig.until(assignment.task_arn, TaskStatus.STOPPED)
        await engine.close()
        assert report.stop_code is StopCode.TASK_FAILED_TO_START
        assert report.stopped_reason is not None
        assert report.stopped_reason.startswith("CannotPullContainerError:")
        assert containers_of(report)["web"].reason == report.stopped_reason
        assert rig.ids(assignment.task_arn) == {}  # nothing was created

    run(story)


def test_an_unreadable_definition_fails_only_its_task(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    good = task(container("web"), task_id="good")
    bad = task({"name": "web"}, task_id="bad")  # no image

    async def story() -> None:
        engine = rig.engine()
        await engine.apply([bad, good])
        await rig.until(good.task_arn, TaskStatus.RUNNING)
        await engine.close()

    run(story)
    report = rig.latest(bad.task_arn)
    assert report.last_status is TaskStatus.STOPPED
    assert report.stop_code is StopCode.TASK_FAILED_TO_START
    assert report.stopped_reason == (
        "Invalid task definition: containerDefinitions[0].image: expected a non-empty string"
    )


def test_stop_task_stops_in_reverse_order_with_the_stop_timeouts(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assignment = task(
        container("db", stopTimeout=7),
        container("app", links=["db"]),
        container("proxy", dependsOn=[{"containerName": "app", "condition": "START"}]),
    )
    arn = assignment.task_arn

    async def story() -> None:
        engine = rig.engine()
        await running(rig, engine, assignment)
        ids = rig.ids(arn)
        await engine.apply(
            [task(*assignment.definition["containerDefinitions"], desired=TaskStatus.STOPPED)]
        )
        report = await rig.until(arn, TaskStatus.STOPPED)
        await engine.close()
        assert rig.runtime.stopped == ["proxy", "app", "db"]
        assert rig.runtime.stop_timeouts == {ids["db"]: 7, ids["app"]: 12, ids["proxy"]: 12}
        assert rig.statuses(arn)[-2:] == [TaskStatus.STOPPING, TaskStatus.STOPPED]
        assert report.stop_code is None  # the control plane knows why it asked

    run(story)


def test_apply_without_a_task_stops_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    kept, dropped = task(container("web"), task_id="kept"), task(container("web"), task_id="gone")

    async def story() -> None:
        engine = rig.engine()
        await engine.apply([kept, dropped])
        await rig.until(kept.task_arn, TaskStatus.RUNNING)
        await rig.until(dropped.task_arn, TaskStatus.RUNNING)
        await engine.apply([kept])
        report = await rig.until(dropped.task_arn, TaskStatus.STOPPED)
        await engine.apply([kept, dropped])  # a stale list must not bring it back
        await asyncio.sleep(0.1)
        await engine.close()
        assert report.stopped_reason == NOT_ASSIGNED
        assert rig.latest(kept.task_arn).last_status is TaskStatus.RUNNING
        assert rig.latest(dropped.task_arn).last_status is TaskStatus.STOPPED
        assert len(rig.runtime.containers({})) == 2

    run(story)


def test_restore_after_a_crash_readopts_and_reports_what_died(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    alive = task(container("web"), container("worker", essential=False), task_id="alive")
    dead = task(container("web"), task_id="dead")

    async def crash() -> dict[str, str]:
        engine = rig.engine()
        await engine.apply([alive, dead])
        await rig.until(alive.task_arn, TaskStatus.RUNNING)
        await rig.until(dead.task_arn, TaskStatus.RUNNING)
        await engine.close()  # kill -9: loops gone, containers untouched
        return {**rig.ids(alive.task_arn), "dead-web": rig.ids(dead.task_arn)["web"]}

    ids = run(crash)
    before = {s.id: s.started_at for s in rig.runtime.containers({})}
    rig.runtime.exit(ids["worker"], 5)  # while the agent is down
    rig.runtime.exit(ids["dead-web"], 137)
    rig.reports.clear()

    async def restart() -> None:
        engine = rig.engine()
        assert sorted(await engine.restore()) == sorted([alive.task_arn, dead.task_arn])
        await rig.until(dead.task_arn, TaskStatus.STOPPED)
        await until(lambda: any(r.task_arn == alive.task_arn for r in rig.reports))
        await engine.apply([alive])  # the control plane's list after reconnecting
        await asyncio.sleep(0.1)
        await engine.close()

    run(restart)
    assert {s.id: s.started_at for s in rig.runtime.containers({})} == before  # same, not restarted
    report = rig.latest(alive.task_arn)
    assert report.last_status is TaskStatus.RUNNING
    assert containers_of(report)["worker"].last_status is ContainerStatus.STOPPED
    assert containers_of(report)["worker"].exit_code == 5
    assert containers_of(report)["web"].runtime_id == ids["web"]
    stopped = rig.latest(dead.task_arn)
    assert stopped.stop_code is StopCode.ESSENTIAL_CONTAINER_EXITED
    assert containers_of(stopped)["web"].exit_code == 137


def test_restore_adopts_a_container_created_just_before_the_crash(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assignment = task(container("web"))

    async def crash() -> str:
        engine = rig.engine()
        await running(rig, engine, assignment)
        await engine.close()
        return rig.ids(assignment.task_arn)["web"]

    web = run(crash)
    # As if the agent died after Docker created the container but before the id was saved.
    (path,) = (tmp_path / "tasks").glob("*.json")
    saved = json.loads(path.read_text())
    saved["containers"][0].update(runtimeId=None, known="PULLED", startedAt=None)
    saved["known"] = "PENDING"
    path.write_text(json.dumps(saved))

    async def restart() -> None:
        engine = rig.engine()
        await engine.restore()
        await rig.until(assignment.task_arn, TaskStatus.RUNNING)
        await engine.close()

    run(restart)
    assert rig.ids(assignment.task_arn) == {"web": web}
    assert containers_of(rig.latest(assignment.task_arn))["web"].runtime_id == web


def test_stopped_tasks_are_cleaned_up_after_the_wait(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assignment = task(container("web"))

    async def story() -> None:
        engine = rig.engine()
        await running(rig, engine, assignment)
        await engine.apply([])
        await rig.until(assignment.task_arn, TaskStatus.STOPPED)
        assert await engine.sweep() == []
        rig.clock.now += 10 * 60
        assert await engine.sweep() == [assignment.task_arn]
        await engine.apply([assignment])  # stale: must not run again
        await asyncio.sleep(0.05)
        await engine.close()
        assert rig.runtime.containers({}) == []
        assert list((tmp_path / "tasks").glob("*.json")) == []
        assert engine.reports() == []

    run(story)


def test_an_awsvpc_task_shares_the_pause_containers_network(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assignment = task(container("web"), container("sidecar"), network_mode="awsvpc")
    arn = assignment.task_arn

    async def story() -> None:
        engine = rig.engine()
        report = await running(rig, engine, assignment)
        ids = rig.ids(arn)
        assert rig.runtime.spec(ids["web"]).network_mode == f"container:{ids[PAUSE_CONTAINER]}"
        assert set(containers_of(report)) == {"web", "sidecar"}  # the pause is not reported
        await engine.apply([])
        await rig.until(arn, TaskStatus.STOPPED)
        await engine.close()
        assert rig.runtime.stopped[-1] == PAUSE_CONTAINER
        assert rig.statuses(arn)[0] is TaskStatus.PROVISIONING
        assert TaskStatus.DEPROVISIONING in rig.statuses(arn)

    run(story)


@pytest.mark.parametrize(
    ("behavior", "cached", "pulls", "outcome"),
    [
        (ImagePullBehavior.DEFAULT, True, 1, TaskStatus.RUNNING),  # pull fails: cache used
        (ImagePullBehavior.ALWAYS, True, 1, TaskStatus.STOPPED),  # pull fails: task fails
        (ImagePullBehavior.PREFER_CACHED, True, 0, TaskStatus.RUNNING),
        (ImagePullBehavior.PREFER_CACHED, False, 1, TaskStatus.STOPPED),
        (ImagePullBehavior.ONCE, True, 1, TaskStatus.STOPPED),  # not pulled by us: must pull
    ],
)
def test_image_pull_behavior(
    tmp_path: Path, behavior: ImagePullBehavior, cached: bool, pulls: int, outcome: TaskStatus
) -> None:
    rig = Rig(tmp_path, pull_behavior=behavior)
    image = "127.0.0.1:5000/private:latest"
    # The registry wants credentials the agent does not have: every pull fails.
    rig.runtime.add_image(image, cached=cached, auth=RegistryAuth("u", "p", "127.0.0.1:5000"))
    assignment = task(container("web", image=image))

    async def story() -> None:
        engine = rig.engine()
        await engine.apply([assignment])
        await until(lambda: any(r.last_status >= outcome for r in rig.reports))
        await engine.close()

    run(story)
    assert len(rig.runtime.pulls) == pulls
    assert rig.latest(assignment.task_arn).last_status is outcome


def test_pull_once_pulls_an_image_only_once_across_restarts(tmp_path: Path) -> None:
    rig = Rig(tmp_path, pull_behavior=ImagePullBehavior.ONCE)

    async def story(task_id: str) -> None:
        engine = rig.engine()
        await running(rig, engine, task(container("web"), task_id=task_id))
        await engine.close()

    run(lambda: story("first"))
    run(lambda: story("second"))
    assert len(rig.runtime.pulls) == 1


def test_pulls_use_the_credentials_auth_for_gives(tmp_path: Path) -> None:
    auth = RegistryAuth("AWS", "token", "127.0.0.1:5000")
    rig = Rig(tmp_path, auth=auth)
    image = "127.0.0.1:5000/private:latest"
    rig.runtime.add_image(image, cached=False, auth=auth)
    run(lambda: running(rig, rig.engine(), task(container("web", image=image))))
    assert rig.runtime.pulls == [(image, auth)]


def test_task_volumes_are_created_first_and_removed_with_the_task(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assignment = task(container("web"))
    volumes = [
        VolumeSpec(name="ecs-t1-data"),
        VolumeSpec(name="shared-cache", task_scoped=False),
    ]
    rig.volumes = lambda a: volumes

    async def story() -> None:
        engine = rig.engine()
        await running(rig, engine, assignment)
        assert set(rig.runtime.volumes()) == {"ecs-t1-data", "shared-cache"}
        await engine.apply([])
        await rig.until(assignment.task_arn, TaskStatus.STOPPED)
        rig.clock.now += 10 * 60
        await engine.sweep()
        await engine.close()
        assert set(rig.runtime.volumes()) == {"shared-cache"}

    run(story)


def test_a_missing_pause_image_is_pulled(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    pause = "127.0.0.1:5000/pause:latest"
    rig.runtime.add_image(pause, cached=False)
    rig.build_spec = lambda a, name, created: replace(build_spec(a, name, created), image=pause)
    assignment = task(container("web", image=pause), network_mode="awsvpc")

    async def story() -> None:
        await running(rig, rig.engine(), assignment)

    run(story)
    assert [image for image, _ in rig.runtime.pulls] == [pause, pause]  # pause, then web


@pytest.mark.parametrize("network_mode", ["bridge", "awsvpc"])
def test_with_the_real_docker_spec(tmp_path: Path, network_mode: str) -> None:
    rig = Rig(tmp_path)
    rig.build_spec = functools.partial(docker_spec.build_spec, config=rig.config)
    rig.volumes = docker_spec.volumes_to_create
    assignment = task(
        container(
            "db", portMappings=[{"containerPort": 5432}], healthCheck={"command": ["CMD", "true"]}
        ),
        container(
            "app",
            dependsOn=[{"containerName": "db", "condition": "HEALTHY"}],
            mountPoints=[{"sourceVolume": "data", "containerPath": "/data"}],
        ),
        network_mode=network_mode,
    )
    assignment = replace(
        assignment, definition={**assignment.definition, "volumes": [{"name": "data"}]}
    )
    arn = assignment.task_arn

    async def story() -> None:
        engine = rig.engine()
        await engine.apply([assignment])
        await until(
            lambda: (
                getattr(rig.container(arn, "db"), "last_status", None) is ContainerStatus.RUNNING
            )
        )
        rig.runtime.set_health(rig.ids(arn)["db"], "healthy")
        report = await rig.until(arn, TaskStatus.RUNNING)
        await engine.close()
        assert rig.runtime.spec(rig.ids(arn)["app"]).labels[TASK_ARN_LABEL] == arn
        assert len(rig.runtime.volumes()) == 1
        assert report.last_status is TaskStatus.RUNNING

    run(story)


# The property ---------------------------------------------------------------------------

NAMES = ("db", "init", "app")
operations = st.lists(
    st.one_of(
        st.tuples(st.just("exit"), st.sampled_from(NAMES), st.sampled_from([0, 1, 137])),
        st.tuples(
            st.just("health"), st.sampled_from(NAMES), st.sampled_from(["healthy", "unhealthy"])
        ),
        st.tuples(st.just("stop"), st.none(), st.none()),
        st.tuples(st.just("unassign"), st.none(), st.none()),
        st.tuples(st.just("reassign"), st.none(), st.none()),
        st.tuples(st.just("wait"), st.none(), st.sampled_from([0, 1, 3])),
        st.tuples(st.just("clock"), st.none(), st.sampled_from([1, 60, 3600])),
    ),
    max_size=12,
)
conditions = st.sampled_from(["START", "COMPLETE", "SUCCESS", "HEALTHY"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations, conditions, conditions, st.booleans())
def test_statuses_never_move_backwards(
    ops: list[tuple[str, Any, Any]], on_db: str, on_init: str, awsvpc: bool
) -> None:
    check = {"command": ["CMD-SHELL", "true"]}
    assignment = task(
        container("db", healthCheck=check, startTimeout=120),
        container("init", essential=False),
        container(
            "app",
            dependsOn=[
                {"containerName": "db", "condition": on_db},
                {"containerName": "init", "condition": on_init},
            ],
        ),
        network_mode="awsvpc" if awsvpc else "bridge",
    )
    arn = assignment.task_arn
    with tempfile.TemporaryDirectory() as data_dir:
        rig = Rig(Path(data_dir))

        async def story() -> None:
            engine = rig.engine()
            await engine.apply([assignment])
            for op, name, value in ops:
                await _perform(rig, engine, assignment, op, name, value)
            await asyncio.sleep(0.06)
            await engine.close()

        run(story)

    reports = [r for r in rig.reports if r.task_arn == arn]
    event(f"ended {reports[-1].last_status.name}")  # see --hypothesis-show-statistics
    assert [r.last_status for r in reports] == sorted(r.last_status for r in reports)
    order = {"PENDING": 0, "RUNNING": 1, "STOPPED": 2}
    for name in NAMES:
        seen = [order[containers_of(r)[name].last_status.wire] for r in reports]
        assert seen == sorted(seen), name
    desired = rig.store.desired[arn]
    assert desired == sorted(desired)
    names = [s.labels[CONTAINER_NAME_LABEL] for s in rig.runtime.containers({})]
    assert len(names) == len(set(names))  # never a second container for one definition


async def _perform(
    rig: Rig, engine: TaskEngine, assignment: Assignment, op: str, name: Any, value: Any
) -> None:
    ids = rig.ids(assignment.task_arn)
    actions: dict[str, Callable[[], Awaitable[Any] | None]] = {
        "exit": lambda: rig.runtime.exit(ids[name], value) if name in ids else None,
        "health": lambda: rig.runtime.set_health(ids[name], value) if name in ids else None,
        "stop": lambda: engine.apply(
            [task(*assignment.definition["containerDefinitions"], desired=TaskStatus.STOPPED)]
        ),
        "unassign": lambda: engine.apply([]),
        "reassign": lambda: engine.apply([assignment]),
        "wait": lambda: asyncio.sleep(0.01 * value),
        "clock": lambda: setattr(rig.clock, "now", rig.clock.now + value),
    }
    result = actions[op]()
    if result is not None:
        await result
    await asyncio.sleep(0.002)


def test_a_task_with_task_memory_runs_in_its_own_cgroup(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    for hierarchy in ("memory", "cpu"):
        (root / hierarchy).mkdir(parents=True)
    rig = Rig(tmp_path / "data")
    rig.task_cgroups = TaskCgroups(root, version=1)
    rig.build_spec = functools.partial(
        docker_spec.build_spec,
        config=rig.config,
        options=docker_spec.SpecOptions(cgroup_parent_of=rig.task_cgroups.parent),
    )
    assignment = task(container("web"), container("log"), task_id="sized")
    assignment = replace(assignment, definition={**assignment.definition, "memory": "256"})
    arn = assignment.task_arn

    async def story() -> None:
        engine = rig.engine()
        await running(rig, engine, assignment)
        memory = root / "memory/ecs/sized"
        assert (memory / "memory.limit_in_bytes").read_text() == str(256 << 20)
        for name, runtime_id in rig.ids(arn).items():
            built = rig.runtime.spec(runtime_id)
            assert (built.cgroup_parent, built.memory_bytes) == ("/ecs/sized", None), name
        await engine.apply([])
        await rig.until(arn, TaskStatus.STOPPED)
        (memory / "memory.limit_in_bytes").unlink()  # the kernel drops it with the dir
        rig.clock.now += 10 * 60
        assert await engine.sweep() == [arn]
        await engine.close()
        assert not memory.exists() and not (root / "cpu/ecs/sized").exists()

    run(story)
