"""The service loop on a real store, fast: a SQLite store in a temporary directory, an
injected clock and a simulated agent (``service_world``). Stories first, then the
Hypothesis property: a deployment under random failures and delays never leaves the
bounds of minimumHealthyPercent and maximumPercent."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.control import instance_health
from dockyard.control.loop import STEADY_SWEEP_SECONDS
from dockyard.control.services import replica_bounds
from dockyard.store.models import Service, ServiceDeployment
from dockyard.store.store import Store
from tests.unit.service_world import HEALTH_CHECK_CAPABILITIES, ZONES, World, change


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(None, tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def world(store: Store, tmp_path: Path) -> World:
    return World(store, tmp_path)


def three_zones(world: World, **resources: Any) -> list[str]:
    return [world.instance(zone, **resources) for zone in ZONES]


# Stories


def test_a_new_service_starts_its_tasks_spread_over_zones_and_reaches_steady_state(
    world: World,
) -> None:
    instances = three_zones(world)
    arn = world.service("web", world.task_definition(), desired=3)
    world.settle(arn)
    running = world.running("web")
    assert len(running) == 3
    assert {t.container_instance_arn for t in running} == set(instances)
    assert {t.started_by for t in running} == {world.deployments(arn)[0].id}
    events = world.events(arn)
    assert any("has started 3 tasks: (task " in e for e in events), events
    assert events[-1] == "(service web) has reached a steady state."
    [primary] = world.deployments(arn)
    assert (primary.rollout_state, primary.rollout_reason) == (
        "COMPLETED",
        f"ECS deployment {primary.id} completed.",
    )
    assert "finishedAt" in primary.document and "startedAt" in primary.document


def test_a_task_that_exits_is_replaced(world: World) -> None:
    three_zones(world)
    arn = world.service("web", world.task_definition(), desired=3)
    world.settle(arn)
    victim = world.running("web")[0]
    world.agent.report(victim, change(victim, "STOPPED", "EssentialContainerExited"))
    world.reconcile()
    assert len(world.live("web")) == 3
    assert world.deployments(arn)[0].failed_tasks == 1
    assert "has started 1 tasks" in world.events(arn)[-1]
    world.settle(arn)
    assert len(world.running("web")) == 3


def test_scale_up_uses_existing_instances_and_scale_down_stops_the_extra(world: World) -> None:
    instances = three_zones(world)
    arn = world.service("web", world.task_definition(), desired=4)
    world.settle(arn)
    world.update(arn, desiredCount=5)
    world.settle(arn)
    assert len(world.running("web")) == 5
    assert {t.container_instance_arn for t in world.running("web")} == set(instances)
    world.update(arn, desiredCount=2)
    world.reconcile()
    stopping = [t for t in world.tasks("web") if t.desired_status == "STOPPED"]
    assert len(stopping) == 3
    assert {t.document["stopCode"] for t in stopping} == {"ServiceSchedulerInitiated"}
    world.settle(arn)
    running = world.running("web")
    assert len(running) == 2
    # Spread: the two left are in different zones.
    assert len({t.document["availabilityZone"] for t in running}) == 2
    assert any("has stopped 3 running tasks" in e for e in world.events(arn))


def test_daemon_runs_one_task_per_instance_and_a_new_instance_gets_one(world: World) -> None:
    instances = three_zones(world)
    arn = world.service(
        "agent", world.task_definition("agent"), schedulingStrategy="DAEMON",
        deploymentConfiguration={"minimumHealthyPercent": 0, "maximumPercent": 100},
    )  # fmt: skip
    world.settle(arn)
    hosts = [t.container_instance_arn for t in world.running("agent")]
    assert sorted(hosts) == sorted(instances)  # type: ignore[type-var]
    assert world.deployments(arn)[0].desired_count == 3
    fourth = world.instance(ZONES[0])
    world.settle(arn)
    running = world.running("agent")
    assert len(running) == 4 and fourth in {t.container_instance_arn for t in running}
    assert world.deployments(arn)[0].desired_count == 4


def test_daemon_skips_instances_that_fail_its_constraints(world: World) -> None:
    three_zones(world)
    arn = world.service(
        "agent", world.task_definition("agent"), schedulingStrategy="DAEMON",
        deploymentConfiguration={"minimumHealthyPercent": 0, "maximumPercent": 100},
        placementConstraints=[
            {"type": "memberOf", "expression": f"attribute:ecs.availability-zone != {ZONES[2]}"}
        ],
    )  # fmt: skip
    world.settle(arn)
    running = world.running("agent")
    assert sorted(t.document["availabilityZone"] for t in running) == list(ZONES[:2])


def test_draining_moves_service_tasks_and_leaves_a_standalone_task(world: World) -> None:
    a, *_ = three_zones(world)
    definition = world.task_definition()
    arn = world.service("web", definition, desired=3)
    world.settle(arn)
    standalone = world.api(
        "StartTask", cluster="default", taskDefinition=definition, containerInstances=[a]
    )["tasks"][0]["taskArn"]
    # A task a user started in the service's group is not the service's either.
    [lookalike] = world.api("RunTask", cluster="default", taskDefinition=definition,
                            group="service:web")["tasks"]  # fmt: skip
    world.run(5)
    world.api("UpdateContainerInstancesState", cluster="default", containerInstances=[a],
              status="DRAINING")  # fmt: skip
    world.settle(arn)
    running = world.running("web")
    assert len(running) == 3
    assert a not in {t.container_instance_arn for t in running}
    alone = world.store.tasks.get(standalone)
    assert alone is not None and alone.last_status == "RUNNING"
    user = world.store.tasks.get(lookalike["taskArn"])
    assert user is not None and user.desired_status == "RUNNING"
    moved = [t for t in world.tasks("web") if t.container_instance_arn == a]
    assert moved and all(t.last_status == "STOPPED" for t in moved)
    assert {t.document["stoppedReason"] for t in moved} == {
        f"Scaling activity initiated by (deployment {world.deployments(arn)[0].id})"
    }


def test_a_rolling_update_replaces_every_task(world: World) -> None:
    three_zones(world)
    arn = world.service("web", world.task_definition(), desired=4)
    world.settle(arn)
    v2 = world.task_definition()
    world.update(arn, v2)
    world.settle(arn)
    running = world.running("web")
    assert len(running) == 4 and {t.task_definition_arn for t in running} == {v2}
    new, old = world.deployments(arn)
    assert (new.status, new.rollout_state) == ("PRIMARY", "COMPLETED")
    assert old.status == "INACTIVE"


def test_circuit_breaker_fails_the_deployment_and_rolls_back(world: World) -> None:
    three_zones(world)
    v1 = world.task_definition()
    arn = world.service(
        "web", v1, desired=4,
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    )  # fmt: skip
    world.settle(arn)
    v2 = world.task_definition(image="does-not-exist")
    world.agent.broken.add(v2)
    world.update(arn, v2)
    world.run(40)
    failed = next(d for d in world.deployments(arn) if d.task_definition_arn == v2)
    assert failed.rollout_state == "FAILED" and failed.failed_tasks >= 3
    assert failed.rollout_reason == "ECS deployment circuit breaker: tasks failed to start."
    service = world.store.services.get(arn)
    assert service is not None and service.document["taskDefinition"] == v1
    primary = next(d for d in world.deployments(arn) if d.status == "PRIMARY")
    assert primary.task_definition_arn == v1
    world.settle(arn)
    running = world.running("web")
    assert len(running) == 4 and {t.task_definition_arn for t in running} == {v1}
    events = world.events(arn)
    assert any("deployment failed: tasks failed to start." in e for e in events)
    assert any(f"rolling back to deployment {primary.id}" in e for e in events)


def test_tasks_that_keep_failing_to_start_are_throttled(world: World) -> None:
    three_zones(world)
    broken = world.task_definition(image="does-not-exist")
    world.agent.broken.add(broken)
    arn = world.service("web", broken, desired=1)
    world.run(30)
    events = world.events(arn)
    throttled = "(service web) is unable to consistently start tasks successfully."
    assert events.count(throttled) == 1
    state = world.store.services.get(arn)
    assert state is not None and state.state["throttle"]["consecutiveFailures"] >= 3
    # Backing off: far fewer than one start per second.
    assert len(world.tasks("web")) < 10


def test_a_start_that_fits_nowhere_says_why_once(world: World) -> None:
    world.instance(ZONES[0], memory=256)
    arn = world.service("web", world.task_definition(memory=512), desired=1)
    world.run(5)
    events = world.events(arn)
    assert len([e for e in events if "was unable to place a task" in e]) == 1, events
    assert "has insufficient memory available." in events[-1]


def test_a_service_in_a_cluster_without_instances_says_so(world: World) -> None:
    arn = world.service("web", world.task_definition(), desired=1)
    world.run(3)
    assert world.events(arn)[-1].endswith("No Container Instances were found in your cluster.")


def test_managed_and_propagated_tags_reach_new_tasks(world: World) -> None:
    three_zones(world)
    arn = world.service("web", world.task_definition(), desired=1, propagateTags="SERVICE",
                        enableECSManagedTags=True)  # fmt: skip
    world.store.put_tags(arn, {"team": "blue"})
    world.run(2)
    [task] = world.tasks("web")
    assert world.store.get_tags(task.arn) == {
        "team": "blue", "aws:ecs:serviceName": "web", "aws:ecs:clusterName": "default",
    }  # fmt: skip


def test_unhealthy_new_tasks_are_replaced_and_never_release_old_ones(world: World) -> None:
    """Health comes from the agent's container reports: a new revision whose tasks run
    but fail their health check never counts as healthy, so at a minimum of 100% no
    old task stops; past the grace period the unhealthy tasks are stopped and replaced."""
    for zone in ZONES:
        world.instance(zone, 4096, 8192, *HEALTH_CHECK_CAPABILITIES)
    check = {"command": ["CMD-SHELL", "true"], "interval": 5, "retries": 1}
    v1 = world.task_definition(healthCheck=check)
    world.agent.health[v1] = "HEALTHY"
    arn = world.service("web", v1, desired=2, healthCheckGracePeriodSeconds=10)
    world.settle(arn)
    v2 = world.task_definition(healthCheck=check)
    world.agent.health[v2] = "UNHEALTHY"
    world.update(arn, v2)
    world.run(30)
    old = [t for t in world.running("web") if t.task_definition_arn == v1]
    assert len(old) == 2
    replaced = [
        t for t in world.tasks("web") if t.task_definition_arn == v2 and t.last_status == "STOPPED"
    ]
    assert replaced
    assert {t.document["stoppedReason"] for t in replaced} == {
        "Task failed container health checks"
    }
    # Within the grace period they were left alone.
    assert all(t.document["stoppingAt"] - t.document["startedAt"] >= 10 for t in replaced)


def test_a_failing_service_is_logged_and_the_others_go_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    three_zones(world)
    definition = world.task_definition()
    bad = world.service("bad", definition, desired=1, placementConstraints=[{"type": "memberOf"}])
    good = world.service("good", definition, desired=1)
    world.settle(good)
    assert "reconciling failed" in caplog.text and bad in caplog.text
    assert world.tasks("bad") == [] and len(world.running("good")) == 1


def test_the_loop_runs_when_woken_and_survives_a_failing_pass(world: World) -> None:
    """run_forever: a sweep at start, then only wake-ups drive it (the tick is long)."""
    three_zones(world)
    definition = world.task_definition()
    world.loop.tick = 3600.0
    passes: list[tuple[set[str], bool]] = []
    run_once = world.loop.run_once

    def counted(now: float | None = None, woken: Any = (), *, sweep: bool = True) -> int:
        passes.append((set(woken), sweep))
        if len(passes) == 2:
            raise RuntimeError("the store went away for a moment")
        return run_once(now, woken, sweep=sweep)

    world.loop.run_once = counted  # type: ignore[method-assign]

    world.control.take()  # registering the instances woke it already

    async def story() -> None:
        loop = asyncio.create_task(world.loop.run_forever())
        await asyncio.sleep(0.2)
        world.service("web", definition, desired=2)
        for _ in range(2):  # the first wake-up's pass fails; the loop lives on
            world.control.wake(world.cluster_arn)
            await asyncio.sleep(0.3)
        loop.cancel()

    asyncio.run(story())
    woken = ({world.cluster_arn}, False)
    assert passes == [(set(), True), woken, woken]
    assert len(world.live("web")) == 2


def test_a_deleted_service_stops_its_tasks_then_becomes_inactive(world: World) -> None:
    three_zones(world)
    arn = world.service("web", world.task_definition(), desired=3)
    world.settle(arn)

    def delete(service: Service, _: Any) -> tuple[Service, list[ServiceDeployment]]:
        return replace(service, status="DRAINING"), []

    world.store.services.update(arn, delete)
    world.reconcile()
    assert all(t.desired_status == "STOPPED" for t in world.tasks("web"))
    service = world.store.services.get(arn)
    assert service is not None and service.status == "DRAINING"
    world.run(10)
    service = world.store.services.get(arn)
    assert service is not None and service.status == "INACTIVE"
    assert world.live("web") == []


def test_tasks_of_a_lost_host_are_replaced_and_are_no_failures(world: World) -> None:
    three_zones(world)
    managed = {"agentVersion": "0.1.0", "agentHash": "dockyard-test"}
    lost = world.instance(ZONES[0], versionInfo=managed)
    arn = world.service(
        "web", world.task_definition(), desired=4,
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True}},
    )  # fmt: skip
    world.settle(arn)
    assert any(t.container_instance_arn == lost for t in world.running("web"))
    # Its agent goes silent (the others, registered through the API, have none to lose).
    world.now += 400
    instance_health.expire_lost_hosts(world.store, world.control, world.agents, world.now, 300)
    world.settle(arn)
    running = world.running("web")
    assert len(running) == 4 and lost not in {t.container_instance_arn for t in running}
    assert world.deployments(arn)[0].failed_tasks == 0


def test_a_plan_made_on_a_stale_read_is_made_again(world: World) -> None:
    """UpdateService lands between the loop's read and its write: the loop's write (the
    old PRIMARY's startedAt) would undo it, so the plan is dropped and made again."""
    three_zones(world)
    v1, v2 = world.task_definition(), world.task_definition()
    arn = world.service("web", v1, desired=2)
    original = world.store.services.with_deployments

    def read_then_update(service_arn: str) -> Any:
        found = original(service_arn)
        world.store.services.with_deployments = original  # type: ignore[method-assign]
        world.update(arn, v2)
        return found

    world.store.services.with_deployments = read_then_update  # type: ignore[method-assign]
    world.reconcile()
    primaries = [d for d in world.deployments(arn) if d.status == "PRIMARY"]
    assert [d.task_definition_arn for d in primaries] == [v2]
    assert {t.task_definition_arn for t in world.tasks("web")} == {v2}
    world.settle(arn)
    assert {t.task_definition_arn for t in world.running("web")} == {v2}


# The property: a deployment under random failures and delays stays within its bounds.

_CLUSTERS = itertools.count()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Path]]:
    data_dir = tmp_path_factory.mktemp("services")
    opened = Store.open(None, data_dir)
    yield opened, data_dir
    opened.close()


def healthy(world: World) -> int:
    return len(world.running("web"))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    desired=st.integers(1, 6),
    minimum=st.sampled_from([0, 25, 50, 75, 100]),
    maximum=st.sampled_from([100, 125, 150, 200]),
    fail_start=st.sampled_from([0.0, 0.2, 0.5]),
    crash=st.sampled_from([0.0, 0.02, 0.1]),
    breaker=st.sampled_from([{}, {"enable": True}, {"enable": True, "rollback": True}]),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_deployment_never_leaves_its_bounds(
    shared: tuple[Store, Path],
    desired: int,
    minimum: int,
    maximum: int,
    fail_start: float,
    crash: float,
    breaker: dict[str, bool],
    seed: int,
) -> None:
    """Healthy tasks never drop below ceil(desired x min / 100) by the scheduler's doing
    (a pass never stops a healthy task that takes the count below the minimum, or
    below where failures left it); tasks not STOPPED never exceed floor(desired x max
    / 100). Once failures stop, the deployment completes (unless its circuit breaker
    failed it for good)."""
    store, data_dir = shared
    world = World(store, data_dir, cluster=f"c{next(_CLUSTERS)}")
    rng = random.Random(seed)
    world.agent.rng = rng
    three_zones(world)
    config = {
        "minimumHealthyPercent": minimum, "maximumPercent": maximum,
        "deploymentCircuitBreaker": breaker,
    }  # fmt: skip
    arn = world.service("web", world.task_definition(), desired, deploymentConfiguration=config)
    world.settle(arn)
    low, high = replica_bounds(desired, minimum, maximum)

    def within_max() -> None:
        assert len(world.live("web")) <= high

    world.agent.fail_start, world.agent.crash = fail_start, crash
    world.update(arn, world.task_definition())
    for _ in range(30):
        before = healthy(world)
        world.reconcile()
        assert healthy(world) >= min(low, before), "the scheduler stopped a healthy task"
        within_max()
        world.agent.step()
        within_max()
        world.now += rng.uniform(0.2, 3.0)

    world.agent.fail_start = world.agent.crash = 0.0
    primary = next(d for d in world.deployments(arn) if d.status == "PRIMARY")
    if primary.rollout_state == "FAILED":
        return  # frozen by its circuit breaker, by design: nothing more to check
    for _ in range(150):
        before = healthy(world)
        world.run(1, tick=30.0)
        assert healthy(world) >= min(low, before)
        within_max()
        service = store.services.get(arn)
        assert service is not None
        primary = next(d for d in world.deployments(arn) if d.status == "PRIMARY")
        if service.state.get("steady") or primary.rollout_state == "FAILED":
            break
    if primary.rollout_state == "FAILED":
        return
    assert primary.rollout_state == "COMPLETED", world.events(arn)[-5:]
    running = world.running("web")
    assert len(running) == desired
    assert {t.started_by for t in running} == {primary.id}
    assert world.live("web") == running


def test_what_a_service_reacts_to_wakes_its_cluster(world: World) -> None:
    """Task reports (RUNNING, STOPPED, health), StopTask and instance changes wake the
    loop for the cluster; other reports do not."""
    a, *_ = three_zones(world)
    world.service("web", world.task_definition(), desired=2)
    world.reconcile()
    first, second = world.live("web")
    woken = world.control.take  # drains what was woken so far

    def report(task_arn: str, **params: Any) -> set[str]:
        woken()
        world.api("SubmitTaskStateChange", cluster="default", task=task_arn, **params)
        return woken()

    assert report(first.arn, status="ACTIVATING") == set()
    assert report(first.arn, status="RUNNING") == {world.cluster_arn}
    assert report(second.arn, status="STOPPED", reason="exited") == {world.cluster_arn}
    woken()
    world.api("StopTask", cluster="default", task=first.arn)
    assert woken() == {world.cluster_arn}
    world.api("UpdateContainerInstancesState", cluster="default", containerInstances=[a],
              status="DRAINING")  # fmt: skip
    assert woken() == {world.cluster_arn}
    world.instance(ZONES[0])
    assert woken() == {world.cluster_arn}


def test_a_sweep_leaves_a_steady_service_alone_until_something_changes(world: World) -> None:
    three_zones(world)
    arn = world.service("web", world.task_definition(), desired=1)
    world.settle(arn)
    world.control.take()
    assert world.loop.run_once(world.now) == 0  # steady, just passed, nothing written
    assert world.loop.run_once(world.now, {world.cluster_arn}) == 1  # woken
    world.update(arn, desiredCount=2)  # written: its version moved
    assert world.loop.run_once(world.now) == 1
    world.settle(arn)
    assert world.loop.run_once(world.now + STEADY_SWEEP_SECONDS) == 1  # the safety net
