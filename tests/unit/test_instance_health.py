"""Lost hosts: which instances are lost (pure), and what giving up their tasks writes,
against a real SQLite store with the clock passed in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.api.agent_hub import AgentHub
from dockyard.control.hub import ControlHub
from dockyard.control.instance_health import (
    STOP_CODE,
    check_interval,
    expire_lost_hosts,
    host_lost_reason,
    is_lost,
    lost_instances,
)
from dockyard.control.model import (
    CircuitBreaker,
    Deployment,
    ServiceSnapshot,
    ServiceSpec,
    TaskState,
)
from dockyard.control.services import reconcile
from dockyard.ecs.task_lifecycle import apply_task_change, stop
from dockyard.ecs.task_shapes import ContainerChange, TaskChange
from dockyard.store.models import Cluster, ContainerInstance, Resources, Task
from dockyard.store.resources import remaining_resources
from dockyard.store.store import Store

ACCOUNT, REGION = "000000000000", "eu-west-1"
CLUSTER = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/work"
OTHER_CLUSTER = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/other"
GRACE = 300.0
T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z


def instance_arn(n: int, cluster: str = "work") -> str:
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/{cluster}/{n:032x}"


def instance(
    n: int,
    *,
    agent: bool = True,
    seen: float | None = T0,
    status: str = "ACTIVE",
    registered: float = T0,
) -> ContainerInstance:
    info = {"agentVersion": "1.0", "agentHash": "dockyard-test" if agent else "manual"}
    return ContainerInstance(
        arn=instance_arn(n),
        account_id=ACCOUNT,
        region=REGION,
        cluster_arn=CLUSTER,
        ec2_instance_id=f"i-{n:017x}",
        status=status,
        registered_at=registered,
        document={
            "versionInfo": info,
            "registeredResources": [
                {"name": "CPU", "type": "INTEGER", "integerValue": 1024},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 2048},
            ],
        },
        agent_seen_at=seen,
    )


# Which instances are lost


def test_an_agent_silent_for_longer_than_the_grace_is_lost() -> None:
    quiet = instance(1, seen=T0)
    assert not is_lost(quiet, T0 + GRACE, GRACE)  # exactly the grace: not yet
    assert is_lost(quiet, T0 + GRACE + 0.001, GRACE)


def test_an_instance_without_an_agent_is_never_lost() -> None:
    assert not is_lost(instance(1, agent=False, seen=None), T0 + 10 * GRACE, GRACE)
    assert not is_lost(instance(1, agent=False, seen=T0), T0 + 10 * GRACE, GRACE)


def test_draining_and_deregistered_instances_can_be_lost_too() -> None:
    later = T0 + 2 * GRACE
    assert is_lost(instance(1, status="DRAINING"), later, GRACE)
    assert is_lost(instance(1, status="INACTIVE"), later, GRACE)
    assert not is_lost(instance(1, status="INACTIVE", agent=False), later, GRACE)


def test_without_a_recorded_contact_the_registration_counts() -> None:
    never = instance(1, seen=None, registered=T0)
    assert not is_lost(never, T0 + GRACE - 1, GRACE)
    assert is_lost(never, T0 + GRACE + 1, GRACE)


def test_lost_instances_picks_the_lost_ones_in_order() -> None:
    now = T0 + GRACE + 10
    candidates = [
        instance(1, seen=T0),  # lost
        instance(2, seen=now - 1),  # polled a second ago
        instance(3, agent=False),  # API-only
        instance(4, seen=T0 - 50),  # lost
        instance(5, status="INACTIVE", seen=now - 1),  # deregistered a second ago
    ]
    assert [i.arn for i in lost_instances(candidates, now, GRACE)] == [
        instance_arn(1),
        instance_arn(4),
    ]


def test_silence_while_the_server_was_down_does_not_count() -> None:
    started = T0 + 10 * GRACE  # the server was down from T0 until then
    quiet = instance(1, seen=T0)
    assert not is_lost(quiet, started + GRACE, GRACE, watching_since=started)
    assert is_lost(quiet, started + GRACE + 1, GRACE, watching_since=started)
    assert lost_instances([quiet], started + 1, GRACE, watching_since=started) == []


@given(
    seen=st.floats(0, 1e6),
    grace=st.floats(1, 1e4),
    first=st.floats(0, 2e6),
    later=st.floats(0, 1e6),
)
def test_once_lost_an_instance_stays_lost_while_silent(
    seen: float, grace: float, first: float, later: float
) -> None:
    quiet = instance(1, seen=seen)
    if is_lost(quiet, first, grace):
        assert is_lost(quiet, first + later, grace)
    assert is_lost(quiet, first, grace) == (first - seen > grace)


def test_the_reason_names_the_instance_the_time_and_the_grace() -> None:
    reason = host_lost_reason(instance(7, seen=T0), GRACE)
    assert reason == (
        f"Host lost: the agent of container instance {7:032x} has been silent since "
        "2026-09-21T14:13:20Z (more than 300 s)."
    )
    assert len(reason) <= 255
    assert "(more than 2.5 s)." in host_lost_reason(instance(7), 2.5)


def test_the_check_runs_four_times_per_grace_and_at_least_every_15_s() -> None:
    assert check_interval(300.0) == 15.0
    assert check_interval(40.0) == 10.0
    assert check_interval(2.0) == 0.5


# Giving up the tasks of a lost host, in a real store


def task(serial: int, on: int, *, status: str = "RUNNING", cluster: str = CLUSTER) -> Task:
    name = cluster.rpartition("/")[2]
    return Task(
        arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{name}/{serial:032x}",
        cluster_arn=cluster,
        task_definition_arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:1",
        container_instance_arn=instance_arn(on, name),
        family="web",
        group="service:web",
        started_by="ecs-svc/1234567890123456789",
        launch_type="EC2",
        last_status=status,
        desired_status="RUNNING",
        created_at=T0,
        resources=Resources(cpu=256, memory=512, ports=frozenset({8000 + serial})),
        picked_up_at=T0 if status == "RUNNING" else None,
        document={"containers": [{"name": "web", "lastStatus": status}], "version": 1},
    )


class Host:
    """A store with a cluster, an agent-managed instance (1), an API-only one (2), an
    agent-managed one that keeps polling (3), and one in another cluster (4)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.control = ControlHub()
        self.agents = AgentHub(timeout=60)
        for arn, name in ((CLUSTER, "work"), (OTHER_CLUSTER, "other")):
            store.put_cluster(Cluster(arn, ACCOUNT, REGION, name, "ACTIVE", created_at=T0))
        for n, agent in ((1, True), (2, False), (3, True)):
            self.register(instance(n, agent=agent))
        other = instance(4)
        self.register(replace(other, arn=instance_arn(4, "other"), cluster_arn=OTHER_CLUSTER))

    def register(self, found: ContainerInstance) -> None:
        self.store.put_container_instance(found)
        self.store.tasks.touch(found.arn, T0)

    def expire(self, now: float) -> list[str]:
        lost = expire_lost_hosts(self.store, self.control, self.agents, now, GRACE)
        return [arn for host in lost for arn in host.stopped]

    def task(self, serial: int) -> Task:
        found = self.store.tasks.get(task(serial, 0).arn) or self.store.tasks.get(
            task(serial, 0, cluster=OTHER_CLUSTER).arn
        )
        assert found is not None
        return found

    def free_memory(self, n: int, cluster: str = "work") -> int:
        found = self.store.get_container_instance(instance_arn(n, cluster))
        assert found is not None
        return remaining_resources(found.document).memory


@pytest.fixture
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    store = Store.open(None, tmp_path_factory.mktemp("store"))
    yield Host(store)
    store.close()


def test_the_tasks_of_a_lost_host_are_stopped_at_once_and_their_resources_freed(
    host: Host,
) -> None:
    placed = host.store.tasks.place(
        [
            task(1, 1),  # RUNNING on the lost host
            task(2, 1, status="PENDING"),  # never picked up
            task(3, 2),  # API-only instance: never touched
            task(4, 3),  # its agent keeps polling
        ]
    )
    assert not placed.refused
    assert host.free_memory(1) == 2048 - 2 * 512
    before = host.store.get_container_instance(instance_arn(1))
    assert before is not None

    polled = T0 + GRACE + 10
    host.store.tasks.touch(instance_arn(3), polled)
    assert host.expire(T0 + GRACE) == []  # not yet: exactly the grace
    assert host.control.take() == set()

    now = T0 + GRACE + 20
    assert sorted(host.expire(now)) == [task(1, 1).arn, task(2, 1).arn]
    reason = (
        f"Host lost: the agent of container instance {1:032x} has been silent since "
        "2026-09-21T14:13:20Z (more than 300 s)."
    )
    for serial in (1, 2):
        stopped = host.task(serial)
        assert (stopped.last_status, stopped.desired_status) == ("STOPPED", "STOPPED")
        assert stopped.document["stopCode"] == STOP_CODE == "InfrastructureHealth"
        assert stopped.document["stoppedReason"] == reason
        assert stopped.document["stoppedAt"] == now
        assert stopped.document["containers"][0]["lastStatus"] == "STOPPED"
        assert stopped.document["version"] == 2
    for serial in (3, 4):
        assert host.task(serial).last_status == "RUNNING"
        assert host.task(serial).desired_status == "RUNNING"

    # Resources back, the agent's next poll sees a new version with an empty list, the
    # instance itself is left as it was: ACTIVE and registered.
    assert host.free_memory(1) == 2048
    after = host.store.get_container_instance(instance_arn(1))
    assert after is not None and after.status == "ACTIVE"
    assert after.assignments_version > before.assignments_version
    assert host.store.tasks.on_instance(instance_arn(1)) == []
    assert host.control.take() == {CLUSTER}

    # Nothing is left to give up: the next runs do nothing.
    assert host.expire(now + 15) == []
    assert host.control.take() == set()


def test_a_server_just_started_gives_every_agent_the_full_grace(host: Host) -> None:
    host.store.tasks.place([task(1, 1)])
    started = T0 + 10 * GRACE  # back after a long outage: every agent looks silent
    lost = expire_lost_hosts(
        host.store, host.control, host.agents, started + 1, GRACE, watching_since=started
    )
    assert lost == [] and host.task(1).last_status == "RUNNING"
    lost = expire_lost_hosts(
        host.store, host.control, host.agents, started + GRACE + 1, GRACE, watching_since=started
    )
    assert [h.stopped for h in lost] == [(task(1, 1).arn,)]
    assert lost[0].silent_since == T0


def test_a_task_already_told_to_stop_keeps_its_reason(host: Host) -> None:
    host.store.tasks.place([task(1, 1)])
    host.store.tasks.update(
        [task(1, 1).arn], lambda t: stop(t, "scaled in", "UserInitiated", T0 + 5, at_once=False)
    )
    assert host.task(1).last_status == "RUNNING"  # waiting for an agent that is gone

    assert host.expire(T0 + GRACE + 1) == [task(1, 1).arn]
    stopped = host.task(1)
    assert (stopped.last_status, stopped.desired_status) == ("STOPPED", "STOPPED")
    assert (stopped.document["stopCode"], stopped.document["stoppedReason"]) == (
        "UserInitiated",
        "scaled in",
    )
    assert host.free_memory(1) == 2048


def test_tasks_left_on_a_deregistered_instance_whose_agent_died_are_given_up(
    host: Host,
) -> None:
    host.store.tasks.place([task(1, 1)])
    # Deregistered with force while its agent was connected: the agent should stop the
    # task and report, but dies first.
    host.store.tasks.set_instance_status(instance_arn(1), "INACTIVE")
    host.store.tasks.update(
        [task(1, 1).arn],
        lambda t: stop(
            t, "Container instance deregistered with force", "UserInitiated", T0, at_once=False
        ),
    )
    assert host.expire(T0 + GRACE + 1) == [task(1, 1).arn]
    stopped = host.task(1)
    assert (stopped.last_status, stopped.document["stopCode"]) == ("STOPPED", "UserInitiated")
    assert stopped.document["stoppedReason"] == "Container instance deregistered with force"


def test_each_cluster_with_a_lost_host_is_woken(host: Host) -> None:
    host.store.tasks.place([task(1, 1), task(5, 4, cluster=OTHER_CLUSTER)])
    host.store.tasks.touch(instance_arn(3), T0 + GRACE)
    assert len(host.expire(T0 + GRACE + 1)) == 2
    assert host.control.take() == {CLUSTER, OTHER_CLUSTER}
    assert host.free_memory(4, "other") == 2048


def test_an_agent_that_polled_in_time_keeps_its_tasks(host: Host) -> None:
    host.store.tasks.place([task(1, 1)])
    host.store.tasks.touch(instance_arn(1), T0 + GRACE)
    assert host.expire(T0 + GRACE + 1) == []
    assert host.task(1).last_status == "RUNNING"
    assert host.expire(T0 + 2 * GRACE + 1) == [task(1, 1).arn]


def test_late_reports_of_the_returning_agent_cannot_bring_a_task_back(host: Host) -> None:
    host.store.tasks.place([task(1, 1), task(2, 1, status="PENDING")])
    host.expire(T0 + GRACE + 1)

    def report(status: str, code: str | None = None, exit_code: int | None = None) -> None:
        container = ContainerChange("web", status, runtime_id="abc123", exit_code=exit_code)
        change = TaskChange(None, "", status, "exited", code, (container,), None, None, None)
        for serial in (1, 2):
            host.store.tasks.update(
                [task(serial, 1).arn],
                lambda t: apply_task_change(t, change, T0 + GRACE + 30),
            )

    report("RUNNING")
    report("STOPPED", "EssentialContainerExited", 143)
    for serial in (1, 2):
        stopped = host.task(serial)
        assert (stopped.last_status, stopped.desired_status) == ("STOPPED", "STOPPED")
        assert stopped.document["stopCode"] == "InfrastructureHealth"
        assert stopped.document["stoppedReason"].startswith("Host lost:")
        assert stopped.document["stoppedAt"] == T0 + GRACE + 1
    assert host.free_memory(1) == 2048  # given back once, not twice


# The service reconciler does not count a lost host's tasks as failures


def test_tasks_of_a_lost_host_never_trip_the_circuit_breaker() -> None:
    service = ServiceSpec(
        arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/work/web",
        name="web",
        task_definition_arn="web:1",
        desired_count=3,
        circuit_breaker=CircuitBreaker(enable=True, rollback=False),
    )
    primary = Deployment("ecs-svc/1", "PRIMARY", "web:1", desired_count=3)
    # Even once the instance is no longer lost (its agent came back),
    # and though the last health seen was UNHEALTHY.
    lost = tuple(
        TaskState(
            f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/work/t{i}",
            "ecs-svc/1",
            "gone",
            "STOPPED",
            desired_status="STOPPED",
            health="UNHEALTHY",
            started_at=T0,
            stopped_at=T0 + GRACE + 1,
            stop_code="InfrastructureHealth",
        )
        for i in range(3)
    )
    plan = reconcile(ServiceSnapshot(service, (primary,), lost, now=T0 + GRACE + 2))
    assert all(u.rollout_state != "FAILED" for u in plan.deployment_updates)
    assert all(u.failed_tasks in (None, 0) for u in plan.deployment_updates)
    assert sum(start.count for start in plan.start) == 3
