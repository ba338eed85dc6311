"""The store conformance suite: every test runs on every backend.

Backends are SQLite in a file, SQLite in memory and PostgreSQL (a fresh database per
test on the session's throwaway server). Tests that reopen a store or write from many
threads run on the durable backends only: an in-memory database lives and dies with
its one shared connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Table, func, insert, inspect, select, text

from dockyard.store import db
from dockyard.store.models import (
    AccountSetting,
    Attribute,
    Cluster,
    ClusterCounts,
    ContainerInstance,
    Page,
    TaskDefinition,
)
from dockyard.store.schema import metadata, services, tasks
from dockyard.store.store import Store
from tests.postgres import fresh_database

T = TypeVar("T")

ACCOUNT, REGION = "123456789012", "eu-west-1"
OTHER_ACCOUNT, OTHER_REGION = "210987654321", "us-east-2"
EPOCH = 1714564800.25  # 2024-05-01T12:00:00.25Z: a fraction, to prove floats round-trip


# Backends


@dataclass(frozen=True)
class Backend:
    """How to open one backend's store; ``url`` is None for SQLite in ``data_dir``."""

    kind: str
    url: str | None
    data_dir: Path

    def open(self) -> Store:
        if self.kind == "sqlite-memory":
            store = Store(db.open_engine("sqlite://"))
            db.migrate(store.engine)
            return store
        return Store.open(self.url, self.data_dir)


def _backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    kind: str = request.param
    url = None
    if kind == "postgresql":
        url = fresh_database(request.getfixturevalue("postgres_server"))
    return Backend(kind, url, tmp_path)


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return _backend(request, tmp_path)


@pytest.fixture(params=["sqlite-file", "postgresql"])
def durable_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return _backend(request, tmp_path)


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    opened = backend.open()
    yield opened
    opened.close()


# Factories


def cluster_arn(name: str, account_id: str = ACCOUNT, region: str = REGION) -> str:
    return f"arn:aws:ecs:{region}:{account_id}:cluster/{name}"


def make_cluster(
    name: str, account_id: str = ACCOUNT, region: str = REGION, **overrides: Any
) -> Cluster:
    cluster = Cluster(
        arn=cluster_arn(name, account_id, region),
        account_id=account_id,
        region=region,
        name=name,
        status="ACTIVE",
        created_at=EPOCH,
    )
    return replace(cluster, **overrides)


def taskdef_maker(
    family: str, account_id: str = ACCOUNT, region: str = REGION, **overrides: Any
) -> Callable[[int], TaskDefinition]:
    """The ``make(revision)`` that ``add_task_definition`` calls."""

    def make(revision: int) -> TaskDefinition:
        definition = TaskDefinition(
            arn=f"arn:aws:ecs:{region}:{account_id}:task-definition/{family}:{revision}",
            account_id=account_id,
            region=region,
            family=family,
            revision=revision,
            status="ACTIVE",
            document={"family": family, "containerDefinitions": [{"name": "app", "image": "x"}]},
            registered_at=EPOCH + revision,
            registered_by=f"arn:aws:iam::{account_id}:root",
        )
        return replace(definition, **overrides)

    return make


def register(
    store: Store, family: str, count: int = 1, account_id: str = ACCOUNT, region: str = REGION
) -> list[TaskDefinition]:
    make = taskdef_maker(family, account_id, region)
    return [store.add_task_definition(account_id, region, family, make) for _ in range(count)]


def make_instance(ec2_id: str, cluster: str = "default", **overrides: Any) -> ContainerInstance:
    instance = ContainerInstance(
        arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/{cluster}/{ec2_id}",
        account_id=ACCOUNT,
        region=REGION,
        cluster_arn=cluster_arn(cluster),
        ec2_instance_id=ec2_id,
        status="ACTIVE",
        registered_at=EPOCH,
        document={"remainingResources": [{"name": "CPU", "integerValue": 1024}]},
    )
    return replace(instance, **overrides)


def make_attribute(name: str, value: str | None = None, **overrides: Any) -> Attribute:
    instance = make_instance("i-1").arn
    return replace(
        Attribute(cluster_arn("default"), "container-instance", instance, name, value), **overrides
    )


def insert_rows(store: Store, table: Table, rows: list[dict[str, Any]]) -> None:
    """Rows for tables the store does not write yet (services, tasks)."""
    with db.transaction(store.engine, write=True) as conn:
        conn.execute(insert(table), rows)


def service_row(cluster: str, name: str, status: str) -> dict[str, Any]:
    return {
        "arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{name}",
        "cluster_arn": cluster_arn(cluster),
        "name": name,
        "status": status,
        "document": "{}",
    }


def task_row(cluster: str, task_id: str, last_status: str) -> dict[str, Any]:
    return {
        "arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/{task_id}",
        "cluster_arn": cluster_arn(cluster),
        "last_status": last_status,
        "desired_status": "STOPPED" if last_status == "STOPPED" else "RUNNING",
        "task_definition_arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:1",
        "family": "web",
        "group_name": "family:web",
        "launch_type": "EC2",
        "created_at": 0.0,
        "reserved": '{"cpu": 0, "memory": 0, "ports": [], "portsUdp": []}',
        "document": "{}",
    }


def walk(
    fetch: Callable[[Any, int], Page[T]], limit: int, key: Callable[[str], Any] = str
) -> list[list[T]]:
    """Every page of a listing, following ``next_key`` from the first page to the last."""
    pages: list[list[T]] = []
    after = None
    while True:
        page = fetch(after, limit)
        pages.append(list(page.items))
        if page.next_key is None:
            return pages
        after = key(page.next_key)


def assert_pages(
    fetch: Callable[[Any, int], Page[T]],
    expected: list[Any],
    label: Callable[[T], Any],
    key: Callable[[str], Any] = str,
) -> None:
    """At every page size from 1 to past the end, the pages joined are ``expected``, every
    page but the last is full, and no empty page follows a full one."""
    for limit in range(1, len(expected) + 2):
        pages = walk(fetch, limit, key)
        whole, rest = divmod(len(expected), limit)
        sizes = [limit] * whole + ([rest] if rest or not whole else [])
        assert [label(item) for page in pages for item in page] == expected, f"limit {limit}"
        assert [len(page) for page in pages] == sizes, f"limit {limit}"


def taskdef_key(next_key: str) -> tuple[str, int]:
    family, _, revision = next_key.rpartition(":")
    return family, int(revision)


def row_counts(store: Store) -> dict[str, int]:
    with db.transaction(store.engine) as conn:
        return {
            t.name: conn.scalar(select(func.count()).select_from(t)) or 0
            for t in metadata.sorted_tables
        }


# Clusters


def test_cluster_round_trips_every_field(store: Store) -> None:
    cluster = make_cluster(
        "prod",
        settings=(("containerInsights", "enhanced"),),
        configuration={"executeCommandConfiguration": {"logging": "DEFAULT"}},
        capacity_providers=("FARGATE", "FARGATE_SPOT"),
        default_strategy=({"capacityProvider": "FARGATE", "weight": 1, "base": 0},),
        service_connect_namespace="arn:aws:servicediscovery:eu-west-1:123456789012:namespace/ns-1",
    )
    store.put_cluster(cluster)

    assert store.get_cluster(ACCOUNT, REGION, "prod") == cluster


def test_put_cluster_replaces_the_cluster_with_the_same_arn(store: Store) -> None:
    store.put_cluster(make_cluster("prod"))
    store.put_cluster(make_cluster("prod", status="INACTIVE", capacity_providers=("FARGATE",)))

    assert store.get_cluster(ACCOUNT, REGION, "prod") == make_cluster(
        "prod", status="INACTIVE", capacity_providers=("FARGATE",)
    )


@pytest.mark.parametrize(
    ("account_id", "region", "name"),
    [
        pytest.param(ACCOUNT, REGION, "staging", id="other-name"),
        pytest.param(OTHER_ACCOUNT, REGION, "prod", id="other-account"),
        pytest.param(ACCOUNT, OTHER_REGION, "prod", id="other-region"),
    ],
)
def test_get_cluster_is_scoped_to_account_region_and_name(
    store: Store, account_id: str, region: str, name: str
) -> None:
    store.put_cluster(make_cluster("prod"))

    assert store.get_cluster(account_id, region, name) is None


def test_list_clusters_pages_by_arn_and_leaves_out_inactive(store: Store) -> None:
    names = ["c1", "c2", "c3", "c4", "c5"]
    for name in reversed(names):
        store.put_cluster(make_cluster(name))
    store.put_cluster(make_cluster("c0-deleted", status="INACTIVE"))
    store.put_cluster(make_cluster("c9", account_id=OTHER_ACCOUNT))
    store.put_cluster(make_cluster("c9", region=OTHER_REGION))

    def fetch(after: str | None, limit: int) -> Page[Cluster]:
        return store.list_clusters(ACCOUNT, REGION, after, limit)

    assert_pages(fetch, names, lambda c: c.name)


def test_list_clusters_when_there_are_none(store: Store) -> None:
    assert store.list_clusters(ACCOUNT, REGION, None, 10) == Page((), None)


INSTANCE_STATUSES = [
    ("ACTIVE", True),
    ("DRAINING", True),
    ("REGISTERING", True),
    ("DEREGISTERING", False),
    ("REGISTRATION_FAILED", False),
    ("INACTIVE", False),
]


@pytest.mark.parametrize(("status", "counted"), INSTANCE_STATUSES)
def test_cluster_counts_registered_instances_by_status(
    store: Store, status: str, counted: bool
) -> None:
    store.put_container_instance(make_instance("i-always"))
    store.put_container_instance(make_instance("i-tested", status=status))
    store.put_container_instance(make_instance("i-elsewhere", cluster="other"))

    counts = store.cluster_counts(cluster_arn("default"))

    assert counts.registered_instances == 1 + counted


def test_cluster_counts_services_and_tasks(store: Store) -> None:
    insert_rows(
        store,
        services,
        [
            service_row("default", "web", "ACTIVE"),
            service_row("default", "api", "ACTIVE"),
            service_row("default", "old", "INACTIVE"),
            service_row("other", "web", "ACTIVE"),
        ],
    )
    task_statuses = ["RUNNING"] * 3 + ["PROVISIONING", "PENDING", "ACTIVATING"] + ["STOPPED"] * 4
    rows = [task_row("default", f"t{i}", s) for i, s in enumerate(task_statuses)]
    insert_rows(store, tasks, [*rows, task_row("other", "x", "RUNNING")])

    assert store.cluster_counts(cluster_arn("default")) == ClusterCounts(
        registered_instances=0, running_tasks=3, pending_tasks=3, active_services=2
    )


def test_cluster_counts_of_an_empty_or_unknown_cluster_are_zero(store: Store) -> None:
    store.put_cluster(make_cluster("empty"))

    assert store.cluster_counts(cluster_arn("empty")) == ClusterCounts()
    assert store.cluster_counts(cluster_arn("missing")) == ClusterCounts()


# Task definitions


def test_revisions_count_from_one_per_family_account_and_region(store: Store) -> None:
    assert [d.revision for d in register(store, "web", 3)] == [1, 2, 3]
    assert [d.revision for d in register(store, "api", 2)] == [1, 2]
    assert [d.revision for d in register(store, "web", 2, account_id=OTHER_ACCOUNT)] == [1, 2]
    assert [d.revision for d in register(store, "web", 1, region=OTHER_REGION)] == [1]
    assert [d.revision for d in register(store, "web", 1)] == [4]


def test_add_task_definition_stores_what_make_built(store: Store) -> None:
    (added,) = register(store, "web")

    assert added == taskdef_maker("web")(1)
    assert store.get_task_definition(ACCOUNT, REGION, "web", 1) == added


def test_get_task_definition_by_revision_or_latest_active(store: Store) -> None:
    first, second, third = register(store, "web", 3)
    store.set_task_definition_status(third.arn, "INACTIVE", EPOCH + 60)

    assert store.get_task_definition(ACCOUNT, REGION, "web", 1) == first
    assert store.get_task_definition(ACCOUNT, REGION, "web", 3) == replace(
        third, status="INACTIVE", deregistered_at=EPOCH + 60
    )
    assert store.get_task_definition(ACCOUNT, REGION, "web", None) == second
    assert store.get_task_definition(ACCOUNT, REGION, "web", 4) is None
    assert store.get_task_definition(ACCOUNT, REGION, "api", None) is None
    assert store.get_task_definition(OTHER_ACCOUNT, REGION, "web", 1) is None


def test_no_latest_revision_once_every_revision_is_inactive(store: Store) -> None:
    for definition in register(store, "web", 2):
        store.set_task_definition_status(definition.arn, "INACTIVE", EPOCH)

    assert store.get_task_definition(ACCOUNT, REGION, "web", None) is None


def test_cluster_and_task_definition_answer_as_the_two_lookups(store: Store) -> None:
    """RunTask's one-statement lookup agrees with get_cluster and get_task_definition
    whichever of the two exists."""
    store.put_cluster(make_cluster("work"))
    store.put_cluster(make_cluster("work", account_id=OTHER_ACCOUNT))
    register(store, "web", 3)
    store.set_task_definition_status(register(store, "web")[0].arn, "INACTIVE", EPOCH)
    register(store, "web", account_id=OTHER_ACCOUNT)
    for name in ("work", "gone"):
        for family, revision in [("web", 2), ("web", None), ("web", 4), ("web", 9), ("api", None)]:
            both = store.cluster_and_task_definition(ACCOUNT, REGION, name, family, revision)
            assert both == (
                store.get_cluster(ACCOUNT, REGION, name),
                store.get_task_definition(ACCOUNT, REGION, family, revision),
            ), (name, family, revision)
    found = store.cluster_and_task_definition(ACCOUNT, REGION, "work", "web", None)
    assert found[0] == make_cluster("work") and found[1] is not None
    assert found[1].revision == 3  # the latest ACTIVE: the 4th is INACTIVE


def test_set_task_definition_status(store: Store) -> None:
    (definition,) = register(store, "web")

    inactive = store.set_task_definition_status(definition.arn, "INACTIVE", EPOCH + 60)
    # Without a time, the deregistration time already recorded stays.
    deleting = store.set_task_definition_status(definition.arn, "DELETE_IN_PROGRESS", None)

    assert inactive == replace(definition, status="INACTIVE", deregistered_at=EPOCH + 60)
    assert deleting == replace(inactive, status="DELETE_IN_PROGRESS")
    assert store.get_task_definition(ACCOUNT, REGION, "web", 1) == deleting
    assert store.set_task_definition_status(definition.arn + "0", "INACTIVE", EPOCH) is None


@pytest.fixture
def three_families(store: Store) -> list[tuple[str, int, str]]:
    """api:1-3 (2 INACTIVE), web:1-2, worker:1 (INACTIVE): every (family, revision, status)."""
    register(store, "web", 2)
    register(store, "api", 3)
    register(store, "worker", 1)
    register(store, "web", 1, account_id=OTHER_ACCOUNT)
    for family, revision in [("api", 2), ("worker", 1)]:
        arn = taskdef_maker(family)(revision).arn
        store.set_task_definition_status(arn, "INACTIVE", EPOCH)
    return [
        ("api", 1, "ACTIVE"),
        ("api", 2, "INACTIVE"),
        ("api", 3, "ACTIVE"),
        ("web", 1, "ACTIVE"),
        ("web", 2, "ACTIVE"),
        ("worker", 1, "INACTIVE"),
    ]


@pytest.mark.parametrize("descending", [False, True], ids=["ASC", "DESC"])
@pytest.mark.parametrize(
    ("family", "status"),
    [(None, None), (None, "ACTIVE"), (None, "INACTIVE"), ("api", None), ("web", "ACTIVE")],
)
def test_list_task_definitions_pages_by_family_then_revision(
    store: Store,
    three_families: list[tuple[str, int, str]],
    family: str | None,
    status: str | None,
    descending: bool,
) -> None:
    expected = [(f, r) for f, r, s in three_families if family in (None, f) and status in (None, s)]
    if descending:
        expected.reverse()

    def fetch(after: tuple[str, int] | None, limit: int) -> Page[TaskDefinition]:
        return store.list_task_definitions(
            ACCOUNT,
            REGION,
            family=family,
            status=status,
            descending=descending,
            after=after,
            limit=limit,
        )

    assert_pages(fetch, expected, lambda d: (d.family, d.revision), taskdef_key)


@pytest.mark.parametrize(
    ("prefix", "status", "expected"),
    [
        pytest.param(None, None, ["a_b", "abc", "api", "web", "worker"], id="all"),
        pytest.param(None, "ACTIVE", ["a_b", "abc", "api", "web"], id="any-revision-active"),
        pytest.param(None, "INACTIVE", ["worker"], id="every-revision-inactive"),
        pytest.param("w", None, ["web", "worker"], id="prefix"),
        pytest.param("w", "ACTIVE", ["web"], id="prefix-and-status"),
        pytest.param("a_", None, ["a_b"], id="underscore-is-not-a-wildcard"),
        pytest.param("a%", None, [], id="percent-is-not-a-wildcard"),
        pytest.param("", None, ["a_b", "abc", "api", "web", "worker"], id="empty-prefix"),
        pytest.param("api", None, ["api"], id="prefix-is-whole-name"),
    ],
)
def test_list_families_filters(
    store: Store, prefix: str | None, status: str | None, expected: list[str]
) -> None:
    for family in ["web", "worker", "api", "abc", "a_b"]:
        register(store, family)
    register(store, "api")  # two revisions, one of them INACTIVE: still an ACTIVE family
    register(store, "gone")
    register(store, "elsewhere", account_id=OTHER_ACCOUNT)
    for family, revision in [("worker", 1), ("api", 1)]:
        store.set_task_definition_status(taskdef_maker(family)(revision).arn, "INACTIVE", EPOCH)
    store.set_task_definition_status(taskdef_maker("gone")(1).arn, "DELETE_IN_PROGRESS", EPOCH)

    page = store.list_families(ACCOUNT, REGION, prefix=prefix, status=status, after=None, limit=100)

    assert page == Page(tuple(expected), None)


def test_list_families_pages(store: Store) -> None:
    families = ["f1", "f2", "f3", "f4"]
    for family in reversed(families):
        register(store, family, 2)

    def fetch(after: str | None, limit: int) -> Page[str]:
        return store.list_families(
            ACCOUNT, REGION, prefix=None, status=None, after=after, limit=limit
        )

    assert_pages(fetch, families, lambda family: family)


def test_concurrent_registrations_get_distinct_consecutive_revisions(
    durable_backend: Backend,
) -> None:
    """Registrations of one family queue rather than race: each builds its definition once.

    (Racing and retrying on the duplicate revision starved: on PostgreSQL, 16 threads ran
    some registrations out of attempts.)
    """
    threads, per_thread = 8, 5
    opened = durable_backend.open()
    barrier = threading.Barrier(threads)
    make = taskdef_maker("web")
    built: list[int] = []  # every revision make() was asked for, collisions included
    revisions: list[int] = []
    errors: list[BaseException] = []

    def counting_make(revision: int) -> TaskDefinition:
        built.append(revision)
        return make(revision)

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                added = opened.add_task_definition(ACCOUNT, REGION, "web", counting_make)
                revisions.append(added.revision)
        except BaseException as exc:  # reported below, with the revisions that did land
            errors.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    stored = opened.list_task_definitions(
        ACCOUNT, REGION, family="web", status=None, descending=False, after=None, limit=100
    )
    opened.close()

    assert errors == []
    assert sorted(revisions) == list(range(1, threads * per_thread + 1))
    assert [d.revision for d in stored.items] == sorted(revisions)
    assert sorted(built) == sorted(revisions)


# Tags


def test_tags_merge_overwrite_and_delete(store: Store) -> None:
    arn, other = cluster_arn("prod"), cluster_arn("staging")
    store.put_tags(other, {"team": "ops"})

    store.put_tags(arn, {"team": "web", "env": "prod"})
    store.put_tags(arn, {"env": "production", "cost": "42"})
    store.put_tags(arn, {})
    assert store.get_tags(arn) == {"team": "web", "env": "production", "cost": "42"}

    store.delete_tags(arn, ["env", "cost", "never-set"])
    assert store.get_tags(arn) == {"team": "web"}

    store.put_tags(arn, {"env": "prod"})
    store.delete_tags(arn)
    assert store.get_tags(arn) == {}
    assert store.get_tags(other) == {"team": "ops"}


# Account settings


def test_account_settings_overwrite_list_and_delete(store: Store) -> None:
    root, user = f"arn:aws:iam::{ACCOUNT}:root", f"arn:aws:iam::{ACCOUNT}:user/ci"
    store.put_account_setting(
        ACCOUNT, REGION, AccountSetting("taskLongArnFormat", "disabled", root)
    )
    store.put_account_setting(ACCOUNT, REGION, AccountSetting("taskLongArnFormat", "enabled", root))
    store.put_account_setting(
        ACCOUNT, REGION, AccountSetting("taskLongArnFormat", "disabled", user)
    )
    store.put_account_setting(ACCOUNT, REGION, AccountSetting("awsvpcTrunking", "enabled", root))
    store.put_account_setting(OTHER_ACCOUNT, REGION, AccountSetting("awsvpcTrunking", "x", root))
    store.put_account_setting(ACCOUNT, OTHER_REGION, AccountSetting("awsvpcTrunking", "x", root))

    assert store.list_account_settings(ACCOUNT, REGION) == [
        AccountSetting("awsvpcTrunking", "enabled", root),
        AccountSetting("taskLongArnFormat", "enabled", root),
        AccountSetting("taskLongArnFormat", "disabled", user),
    ]

    assert store.delete_account_setting(ACCOUNT, REGION, user, "taskLongArnFormat") is True
    assert store.delete_account_setting(ACCOUNT, REGION, user, "taskLongArnFormat") is False
    assert store.delete_account_setting(ACCOUNT, REGION, root, "containerInsights") is False
    assert [s.name for s in store.list_account_settings(ACCOUNT, REGION)] == [
        "awsvpcTrunking",
        "taskLongArnFormat",
    ]


# Attributes


def test_put_attributes_overwrites_the_same_name_on_the_same_target(store: Store) -> None:
    store.put_attributes([make_attribute("stack", "blue"), make_attribute("gpu")])
    store.put_attributes([make_attribute("stack", "green")])

    assert store.list_attributes(cluster_arn("default"), target_type="container-instance") == [
        make_attribute("gpu"),
        make_attribute("stack", "green"),
    ]


def test_put_attributes_with_one_name_twice_keeps_the_last(store: Store) -> None:
    store.put_attributes([make_attribute("stack", "blue"), make_attribute("stack", "green")])

    assert store.list_attributes(cluster_arn("default"), target_type="container-instance") == [
        make_attribute("stack", "green")
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param({}, ["i-1/gpu", "i-1/stack=blue", "i-2/stack=green"], id="all"),
        pytest.param({"name": "stack"}, ["i-1/stack=blue", "i-2/stack=green"], id="name"),
        pytest.param({"name": "stack", "value": "green"}, ["i-2/stack=green"], id="value"),
        pytest.param({"target_id": "i-1"}, ["i-1/gpu", "i-1/stack=blue"], id="target"),
        pytest.param({"name": "missing"}, [], id="no-match"),
    ],
)
def test_list_attributes_filters(
    store: Store, filters: dict[str, str], expected: list[str]
) -> None:
    second = make_instance("i-2").arn
    service = service_row("default", "web", "ACTIVE")["arn"]
    store.put_attributes(
        [
            make_attribute("stack", "green", target_id=second),
            make_attribute("stack", "blue"),
            make_attribute("gpu"),
            make_attribute("stack", "blue", cluster_arn=cluster_arn("other")),
            make_attribute("stack", "blue", target_type="service", target_id=service),
        ]
    )
    if "target_id" in filters:
        filters = {**filters, "target_id": make_instance(filters["target_id"]).arn}

    found = store.list_attributes(
        cluster_arn("default"), target_type="container-instance", **filters
    )

    def label(a: Attribute) -> str:
        target = a.target_id.rsplit("/", 1)[1]
        return f"{target}/{a.name}" + (f"={a.value}" if a.value is not None else "")

    assert [label(a) for a in found] == expected


def test_delete_attributes(store: Store) -> None:
    store.put_attributes([make_attribute("stack", "blue"), make_attribute("gpu")])

    # The value plays no part in finding what to delete; unknown names are ignored.
    store.delete_attributes([make_attribute("stack", "anything"), make_attribute("never-set")])

    assert store.list_attributes(cluster_arn("default"), target_type="container-instance") == [
        make_attribute("gpu")
    ]


# Container instances


def test_container_instance_put_get_and_replace(store: Store) -> None:
    instance = make_instance("i-1")
    store.put_container_instance(instance)
    assert store.get_container_instance(instance.arn) == instance

    draining = replace(instance, status="DRAINING", document={"agentConnected": False})
    store.put_container_instance(draining)
    # A new document comes with a new version (placement keeps parsed ones by it).
    assert store.get_container_instance(instance.arn) == replace(draining, assignments_version=1)
    assert store.get_container_instance(make_instance("i-2").arn) is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(None, ["i-1", "i-2", "i-3", "i-4"], id="default-leaves-out-inactive"),
        pytest.param("ACTIVE", ["i-1", "i-3"], id="active"),
        pytest.param("DRAINING", ["i-2", "i-4"], id="draining"),
        pytest.param("INACTIVE", ["i-5"], id="inactive"),
    ],
)
def test_list_container_instances(store: Store, status: str | None, expected: list[str]) -> None:
    statuses = {"i-1": "ACTIVE", "i-2": "DRAINING", "i-3": "ACTIVE", "i-4": "DRAINING"}
    for ec2_id, instance_status in {**statuses, "i-5": "INACTIVE"}.items():
        store.put_container_instance(make_instance(ec2_id, status=instance_status))
    store.put_container_instance(make_instance("i-0", cluster="other"))

    def fetch(after: str | None, limit: int) -> Page[ContainerInstance]:
        return store.list_container_instances(
            cluster_arn("default"), status=status, after=after, limit=limit
        )

    assert_pages(fetch, expected, lambda i: i.ec2_instance_id)


# The whole store


POPULATED = {
    "account_settings",
    "attributes",
    "clusters",
    "container_instances",
    "services",
    "tags",
    "task_definitions",
    "tasks",
}


def populate(store: Store) -> None:
    """A row in every table of ``POPULATED``."""
    store.put_cluster(make_cluster("default"))
    register(store, "web")
    store.put_tags(cluster_arn("default"), {"team": "web"})
    store.put_account_setting(
        ACCOUNT, REGION, AccountSetting("taskLongArnFormat", "enabled", "arn:aws:iam::1:root")
    )
    store.put_attributes([make_attribute("stack", "blue")])
    store.put_container_instance(make_instance("i-1"))
    insert_rows(store, services, [service_row("default", "web", "ACTIVE")])
    insert_rows(store, tasks, [task_row("default", "t1", "RUNNING")])


def test_wipe_empties_every_table_and_the_store_stays_usable(store: Store) -> None:
    populate(store)
    assert {table for table, n in row_counts(store).items() if n} == POPULATED

    store.wipe()

    assert set(row_counts(store).values()) == {0}
    assert [d.revision for d in register(store, "web")] == [1]


def test_reopening_keeps_the_data(durable_backend: Backend) -> None:
    first = durable_backend.open()
    populate(first)
    first.close()

    reopened = durable_backend.open()
    try:
        assert reopened.get_cluster(ACCOUNT, REGION, "default") == make_cluster("default")
        assert reopened.get_tags(cluster_arn("default")) == {"team": "web"}
        assert [d.revision for d in register(reopened, "web")] == [2]
    finally:
        reopened.close()


def test_migrating_a_current_schema_changes_nothing(backend: Backend) -> None:
    opened = backend.open()
    try:
        populate(opened)
        before = _schema(opened), row_counts(opened)

        db.migrate(opened.engine)
        db.migrate(opened.engine)

        assert (_schema(opened), row_counts(opened)) == before
    finally:
        opened.close()


def test_postgresql_leaves_room_for_instances_rewritten_in_place(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Placement rewrites instance documents: pages with room keep the updates HOT."""
    opened = Store.open(fresh_database(request.getfixturevalue("postgres_server")), tmp_path)
    try:
        with opened.engine.connect() as conn:
            query = "SELECT reloptions FROM pg_class WHERE relname = 'container_instances'"
            assert conn.execute(text(query)).scalar() == ["fillfactor=70"]
    finally:
        opened.close()


def _schema(store: Store) -> tuple[Any, ...]:
    """The alembic revision, and every table's columns and indexes."""
    with store.engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        inspector = inspect(conn)
        tables = {
            name: (
                [c["name"] for c in inspector.get_columns(name)],
                sorted(i["name"] or "" for i in inspector.get_indexes(name)),
            )
            for name in inspector.get_table_names()
        }
    return tuple(v for (v,) in versions), tables
