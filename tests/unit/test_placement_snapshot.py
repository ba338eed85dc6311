"""The snapshot RunTask places on, against a real (SQLite) store:

- its memos never change an answer: after any sequence of the writes that touch what
  placement reads (placements, stops, attributes, status, registrations, agent
  contact and silence), the memoised snapshot equals one built from nothing;
- the journal adds exactly the placements a snapshot read before them lacks;
- ``current`` (no read when only this process's placements changed the cluster)
  answers what a read from nothing would, whoever wrote what in between.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.ecs import placement_snapshot
from dockyard.ecs.placement_journal import Journal
from dockyard.ecs.placement_snapshot import Needs, current, forget_cluster, snapshot
from dockyard.scheduler.model import Instance
from dockyard.store import task_rows
from dockyard.store import tasks as task_store
from dockyard.store.models import Attribute, Cluster, ContainerInstance, Resources, Task
from dockyard.store.placement import Expected
from dockyard.store.store import Store
from tests.postgres import fresh_database

CLUSTER = "arn:aws:ecs:eu-west-1:000000000000:cluster/work"
NEEDS = Needs("service:web", frozenset({"ecs.availability-zone", "rack"}), True, True)
# What most RunTask calls read: no runningTasksCount (task reports raise no version).
STEADY = Needs("service:web", frozenset({"ecs.availability-zone", "rack"}), False, True)
TIMEOUT = 60.0


def instance_arn(n: int) -> str:
    return f"arn:aws:ecs:eu-west-1:000000000000:container-instance/work/{n:032x}"


def register(store: Store, n: int, now: float, *, agent: bool = False, memory: int = 4096) -> None:
    resources = [
        {"name": "CPU", "type": "INTEGER", "integerValue": 4096},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
    ]
    info = {"agentVersion": "1.0", "agentHash": "dockyard-test" if agent else "manual"}
    arn = instance_arn(n)
    store.put_container_instance(
        ContainerInstance(
            arn=arn,
            account_id="000000000000",
            region="eu-west-1",
            cluster_arn=CLUSTER,
            ec2_instance_id=f"i-{n:017x}",
            status="ACTIVE",
            registered_at=now,
            document={"versionInfo": info, "registeredResources": resources},
        )
    )
    store.tasks.touch(arn, now)
    store.put_attributes(
        [Attribute(CLUSTER, "container-instance", arn, "ecs.availability-zone", "abc"[n % 3])]
    )


def task(n: int, serial: int, group: str = "service:web", memory: int = 256) -> Task:
    return Task(
        arn=f"arn:aws:ecs:eu-west-1:000000000000:task/work/{serial:032x}",
        cluster_arn=CLUSTER,
        task_definition_arn="arn:aws:ecs:eu-west-1:000000000000:task-definition/web:1",
        container_instance_arn=instance_arn(n),
        family="web",
        group=group,
        started_by=None,
        launch_type="EC2",
        last_status="PENDING",
        desired_status="RUNNING",
        created_at=0.0,
        resources=Resources(cpu=128, memory=memory),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    url = None
    if request.param == "postgresql":
        url = fresh_database(request.getfixturevalue("postgres_server"))
    opened = Store.open(url, tmp_path_factory.mktemp("store"))
    opened.put_cluster(
        Cluster(CLUSTER, "000000000000", "eu-west-1", "work", "ACTIVE", created_at=0.0)
    )
    for n in range(6):
        register(opened, n, 0.0, agent=n % 2 == 0)
    yield opened
    opened.close()


def forget() -> None:
    placement_snapshot.forget()


def take(store: Store, now: float) -> list[Instance]:
    return snapshot(store, CLUSTER, NEEDS, now=now, agent_timeout=TIMEOUT).instances


def fresh(store: Store, now: float) -> list[Instance]:
    forget()
    return take(store, now)


class World:
    """The writes placement must notice, on instances 0-5 (and those joining later)."""

    def __init__(self, store: Store) -> None:
        self.store, self.now, self.serial, self.placed = store, 1.0, 0, list[str]()
        self.joined = 0

    def place(self, n: int, group: str) -> None:
        self.serial += 1
        done = self.store.tasks.place([task(n % 6, self.serial, group)])
        self.placed += [t.arn for t in done.placed]

    def run(self, _: int, __: str) -> None:
        if self.placed:
            arn = self.placed[0]
            self.store.tasks.update([arn], lambda t: _with(t, last_status="RUNNING"))

    def stop(self, _: int, __: str) -> None:
        if self.placed:
            arn = self.placed.pop()
            self.store.tasks.update(
                [arn], lambda t: _with(t, last_status="STOPPED", desired_status="STOPPED")
            )

    def attribute(self, n: int, value: str) -> None:
        self.store.put_attributes(
            [Attribute(CLUSTER, "container-instance", instance_arn(n % 6), "rack", value)]
        )

    def drop_attribute(self, n: int, _: str) -> None:
        self.store.delete_attributes(
            [Attribute(CLUSTER, "container-instance", instance_arn(n % 6), "rack")]
        )

    def drain(self, n: int, _: str) -> None:
        self.store.tasks.set_instance_status(instance_arn(n % 6), "DRAINING")

    def activate(self, n: int, _: str) -> None:
        self.store.tasks.set_instance_status(instance_arn(n % 6), "ACTIVE")

    def join(self, _: int, __: str) -> None:
        register(self.store, 6 + self.joined, self.now, agent=True)
        self.joined += 1

    def reregister(self, n: int, _: str) -> None:
        register(self.store, n % 6, self.now, agent=n % 2 == 0, memory=2048 + n)
        self.store.tasks.recompute_remaining(instance_arn(n % 6))

    def wait(self, n: int, _: str) -> None:
        self.now += [1.0, 30.0, 61.0][n % 3]

    def poll(self, n: int, _: str) -> None:
        self.store.tasks.touch(instance_arn(n % 6), self.now)


def _with(t: Task, **changes: Any) -> Task:
    from dataclasses import replace

    return replace(t, **changes)


OPERATIONS = [name for name in vars(World) if not name.startswith("_")]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(OPERATIONS),
            st.integers(0, 11),
            st.sampled_from(["service:web", "family:web", "r1", "r2"]),
        ),
        max_size=12,
    )
)
def test_the_memo_never_changes_a_snapshot(store: Store, steps: list[tuple[str, int, str]]) -> None:
    store.wipe()
    store.put_cluster(Cluster(CLUSTER, "000000000000", "eu-west-1", "work", "ACTIVE", 0.0))
    for n in range(6):
        register(store, n, 0.0, agent=n % 2 == 0)
    world = World(store)
    forget()
    take(store, world.now)
    for operation, n, argument in steps:
        getattr(world, operation)(n, argument)
        assert take(store, world.now) == fresh(store, world.now), operation


def test_a_plan_on_a_cluster_that_changed_is_not_written(store: Store) -> None:
    found = store.tasks.placement_fingerprint(CLUSTER)
    expected = Expected(CLUSTER, found, (), 0.0)
    first = store.tasks.place([task(0, 1)], expected=expected)
    assert not first.stale and len(first.placed) == 1
    # Expecting the cluster as it was before that write: stale, and nothing written.
    again = store.tasks.place([task(1, 2)], expected=expected)
    assert again.stale and again.placed == [] and again.refused == []
    assert store.tasks.get(task(1, 2).arn) is None
    assert store.tasks.placement_fingerprint(CLUSTER).version == found.version + 1
    # Expecting it as it is now: written.
    now = Expected(CLUSTER, store.tasks.placement_fingerprint(CLUSTER), (), 0.0)
    assert len(store.tasks.place([task(1, 2)], expected=now).placed) == 1


def test_a_plan_on_known_instances_is_written_in_one_go_as_the_long_way_would(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a plan whose instances the store knows at the planned versions is
    written in one statement (``placing_at_once.py``); SQLite goes the long way. Either
    way: the same tasks, resources and versions, and a stale plan writes nothing."""
    forget()
    read = snapshot(store, CLUSTER, NEEDS, now=1.0, agent_timeout=TIMEOUT)  # the documents
    versions = {instance_arn(n): read.versions[read.index[instance_arn(n)]] for n in (0, 1, 2)}
    expected = Expected(CLUSTER, store.tasks.placement_fingerprint(CLUSTER), (), 0.0)
    new = [task(0, 1), task(0, 2, memory=1024), task(1, 3)]
    if store.engine.dialect.name == "postgresql":  # no long way there
        monkeypatch.setattr(task_store, "write_transaction", None)
    done = store.tasks.place(new, expected=expected, versions=versions)
    assert not done.stale and [t.arn for t in done.placed] == [t.arn for t in new]
    assert done.versions == {instance_arn(n): versions[instance_arn(n)] + 1 for n in (0, 1)}
    assert done.cluster_versions == {CLUSTER: expected.fingerprint.version + 1}
    assert {t.arn for t in store.tasks.on_instance(instance_arn(0))} == {new[0].arn, new[1].arn}
    after = {i.arn: i for i in fresh(store, 1.0)}
    assert after[instance_arn(0)].remaining.memory == 4096 - 256 - 1024
    assert after[instance_arn(1)].remaining.memory == 4096 - 256
    # Planned on the cluster before that write: stale, nothing written.
    again = store.tasks.place([task(2, 4)], expected=expected, versions=versions)
    assert again.stale and store.tasks.get(task(2, 4).arn) is None


def test_a_document_known_wrongly_is_never_written_over(store: Store) -> None:
    """The one-statement write checks the stored document is the one it changed: a
    memo that went wrong costs a fresh plan, never a lost write."""
    forget()
    read = snapshot(store, CLUSTER, NEEDS, now=1.0, agent_timeout=TIMEOUT)
    arn = instance_arn(0)
    version = read.versions[read.index[arn]]
    known = task_rows._KNOWN[arn][1]  # the memo the one-statement write goes by
    task_rows._KNOWN[arn] = (version, known.replace("4096", "9999"))
    expected = Expected(CLUSTER, store.tasks.placement_fingerprint(CLUSTER), (), 0.0)
    done = store.tasks.place([task(0, 1)], expected=expected, versions={arn: version})
    if store.engine.dialect.name == "postgresql":
        assert done.stale and store.tasks.get(task(0, 1).arn) is None
    else:  # the long way reads the document under the instance's lock
        assert len(done.placed) == 1
    remaining = {i.arn: i.remaining for i in fresh(store, 1.0)}[arn]
    assert remaining.memory == (4096 if done.stale else 4096 - 256)
    assert remaining.cpu == (4096 if done.stale else 4096 - 128)


def test_the_journal_adds_what_a_snapshot_missed_and_nothing_twice(store: Store) -> None:
    journal = Journal()
    forget()
    mark = journal.mark()
    before = snapshot(store, CLUSTER, NEEDS, now=1.0, agent_timeout=TIMEOUT)
    journal.record(store.tasks.place([task(0, 1), task(0, 2), task(1, 3, group="other")]))
    after = snapshot(store, CLUSTER, NEEDS, now=1.0, agent_timeout=TIMEOUT)

    def caught(read: placement_snapshot.ClusterSnapshot) -> list[tuple[int, dict[str, int]]]:
        instances = journal.catch_up(read.instances, read.versions, read.index, mark, "service:web")
        return [(i.remaining.memory, dict(i.group_counts)) for i in instances]

    expected = [(i.remaining.memory, dict(i.group_counts)) for i in after.instances]
    assert caught(before) == expected  # the snapshot read before: both placements added
    assert caught(after) == expected  # read after: already in it, not added again
    assert expected[0] == (4096 - 512, {"service:web": 2})


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from([*OPERATIONS, "ours", "ours", "ours"]),
            st.integers(0, 11),
            st.sampled_from(["service:web", "family:web", "r1", "r2"]),
        ),
        max_size=14,
    )
)
def test_current_answers_what_a_read_would(store: Store, steps: list[tuple[str, int, str]]) -> None:
    store.wipe()
    store.put_cluster(Cluster(CLUSTER, "000000000000", "eu-west-1", "work", "ACTIVE", 0.0))
    for n in range(6):
        register(store, n, 0.0, agent=n % 2 == 0)
    world, journal = World(store), Journal()
    forget()

    def now() -> list[Instance]:
        """What RunTask plans on: an answer the store would not take (it changed other
        than by the journal's placements) is read again."""
        answer = current(
            store, CLUSTER, STEADY, now=world.now, agent_timeout=TIMEOUT, written=journal
        )
        if answer.expected is not None and store.tasks.place([], expected=answer.expected).stale:
            forget_cluster(CLUSTER)
            answer = current(
                store, CLUSTER, STEADY, now=world.now, agent_timeout=TIMEOUT, written=journal
            )
            assert answer.expected is None  # a fresh read
        return answer.instances

    now()
    for operation, n, argument in steps:
        if operation == "ours":  # this process's placement: through the journal
            world.serial += 1
            group = "service:web" if argument.startswith("r") else argument
            done = store.tasks.place([task(n % 6, world.serial, group)])
            journal.record(done)
            world.placed += [t.arn for t in done.placed]
        else:
            getattr(world, operation)(n, argument)
        answer = now()
        kept = dict(placement_snapshot._CURRENT)  # only the other memos go
        forget()
        read = snapshot(store, CLUSTER, STEADY, now=world.now, agent_timeout=TIMEOUT)
        placement_snapshot._CURRENT.update(kept)
        assert answer == read.instances, operation
