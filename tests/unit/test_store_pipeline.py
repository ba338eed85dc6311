"""The pipelined write transaction (store/pipeline.py) on SQLite and PostgreSQL: rows
written as arrays read back exactly, an error writes nothing, and the connection goes
back to the pool as it came."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from dockyard.store import db
from dockyard.store.models import Cluster, ContainerInstance, Resources, Task
from dockyard.store.pipeline import inserting, write_transaction
from dockyard.store.schema import tags
from dockyard.store.store import Store
from tests.postgres import fresh_database

CLUSTER = "arn:aws:ecs:eu-west-1:000000000000:cluster/work"
INSTANCE = "arn:aws:ecs:eu-west-1:000000000000:container-instance/work/" + "a" * 32
TAGS_AS_ARRAYS = inserting(tags)  # built once, as the store's own statements are


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = None
    if request.param == "postgresql":
        url = fresh_database(request.getfixturevalue("postgres_server"))
    opened = Store.open(url, tmp_path)
    opened.put_cluster(Cluster(CLUSTER, "000000000000", "eu-west-1", "work", "ACTIVE", 0.0))
    resources = [
        {"name": "CPU", "type": "INTEGER", "integerValue": 4096},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": 8192},
        {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22"]},
    ]
    opened.put_container_instance(
        ContainerInstance(
            arn=INSTANCE,
            account_id="000000000000",
            region="eu-west-1",
            cluster_arn=CLUSTER,
            ec2_instance_id="i-0",
            status="ACTIVE",
            registered_at=0.0,
            document={"registeredResources": resources, "remainingResources": resources},
        )
    )
    yield opened
    opened.close()


def task(n: int, **changes: object) -> Task:
    made = Task(
        arn=f"arn:aws:ecs:eu-west-1:000000000000:task/work/{n:032x}",
        cluster_arn=CLUSTER,
        task_definition_arn="arn:aws:ecs:eu-west-1:000000000000:task-definition/web:1",
        container_instance_arn=INSTANCE,
        family="web",
        group="service:web",
        started_by=None,
        launch_type="EC2",
        last_status="PENDING",
        desired_status="RUNNING",
        created_at=1700000000.25,
        resources=Resources(cpu=128, memory=256, ports=frozenset({8080 + n})),
        # What text form would have to escape: quotes, backslashes, braces, commas.
        document={"containers": [{"name": 'a "b" \\c {d}, e', "image": "ünïcode\nline"}]},
    )
    return replace(made, **changes)


def test_placed_tasks_read_back_as_written(store: Store) -> None:
    new = [task(1), task(2, started_by="me", picked_up_at=None), task(3, group="family:web")]
    done = store.tasks.place(new)
    assert [t.arn for t in done.placed] == [t.arn for t in new] and not done.refused
    for written in new:
        assert store.tasks.get(written.arn) == written
    instance = store.get_container_instance(INSTANCE)
    assert instance is not None and instance.assignments_version == 1
    remaining = {r["name"]: r for r in instance.document["remainingResources"]}
    assert remaining["MEMORY"]["integerValue"] == 8192 - 3 * 256
    assert remaining["PORTS"]["stringSetValue"] == ["22", "8081", "8082", "8083"]


def test_an_error_in_the_block_writes_nothing(store: Store) -> None:
    row = {"resource_arn": CLUSTER, "key": "k", "value": "v"}
    with pytest.raises(RuntimeError), write_transaction(store.engine) as batch:
        batch.execute_many(insert(tags), [row], as_arrays=TAGS_AS_ARRAYS)
        batch.sync()
        raise RuntimeError("after the write")
    assert store.get_tags(CLUSTER) == {}
    # The connection went back to the pool as it came: an ordinary transaction that
    # fails is rolled back, not committed statement by statement.
    with pytest.raises(RuntimeError), db.transaction(store.engine, write=True) as conn:
        conn.execute(insert(tags), [row])
        raise RuntimeError("after the write")
    with db.transaction(store.engine) as conn:
        assert conn.execute(select(tags)).all() == []


def test_the_block_commits_with_or_without_commit(store: Store) -> None:
    for key in ("a", "b"):
        with write_transaction(store.engine) as batch:
            rows = [{"resource_arn": CLUSTER, "key": key, "value": "x"}]
            batch.execute_many(insert(tags), rows, as_arrays=TAGS_AS_ARRAYS)
            if key == "a":
                batch.commit()
    assert store.get_tags(CLUSTER) == {"a": "x", "b": "x"}
