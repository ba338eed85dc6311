"""Conformance of ``store.services`` (dockyard/store/services.py) on every backend:
create and replace-when-INACTIVE, updates under the row lock with a rising version,
the ListServices filters and pages, the loop's ``live`` list and the events' order."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest

from dockyard.store.models import Service, ServiceDeployment
from dockyard.store.store import Store
from tests.unit import test_store
from tests.unit.test_store import ACCOUNT, EPOCH, REGION, Backend, cluster_arn

# The store suite's backends (SQLite file, SQLite memory, PostgreSQL), shared.
backend = test_store.backend
durable_backend = test_store.durable_backend
store = test_store.store


def make_service(name: str, cluster: str = "work", **document: Any) -> Service:
    return Service(
        arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{name}",
        account_id=ACCOUNT,
        region=REGION,
        cluster_arn=cluster_arn(cluster),
        name=name,
        status="ACTIVE",
        created_at=EPOCH,
        updated_at=EPOCH,
        document={
            "desiredCount": 1,
            "schedulingStrategy": "REPLICA",
            "launchType": "EC2",
            **document,
        },
    )


def make_deployment(service: Service, n: int, **overrides: Any) -> ServiceDeployment:
    deployment = ServiceDeployment(
        service_arn=service.arn,
        id=f"ecs-svc/{n:019d}",
        status="PRIMARY",
        task_definition_arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:{n}",
        desired_count=1,
        rollout_state="IN_PROGRESS",
        rollout_reason=f"ECS deployment ecs-svc/{n:019d} in progress.",
        failed_tasks=0,
        created_at=EPOCH + n,
        updated_at=EPOCH + n,
        document={"revision": {"taskDefinition": f"web:{n}"}},
    )
    return replace(deployment, **overrides)


def set_status(store: Store, service: Service, status: str) -> None:
    store.services.update(service.arn, lambda s, d: (replace(s, status=status), []))


# Create


def test_create_stores_the_service_and_its_deployments(store: Store) -> None:
    web = make_service("web")
    assert store.services.create(web, [make_deployment(web, 1)])
    assert store.services.get(web.arn) == web
    service, deployments = store.services.with_deployments(web.arn) or (None, ())
    assert service == web
    assert deployments == (make_deployment(web, 1),)
    assert store.services.get("arn:aws:ecs:eu-west-1:123456789012:service/work/nope") is None
    assert store.services.with_deployments("nope") is None


def test_create_refuses_a_live_name_and_replaces_an_inactive_one(store: Store) -> None:
    web = make_service("web")
    store.services.create(web, [make_deployment(web, 1)])
    store.services.add_events(web.arn, ["old event"], EPOCH)
    assert not store.services.create(replace(web, document={"desiredCount": 9}), [])
    set_status(store, web, "DRAINING")
    assert not store.services.create(web, [])
    set_status(store, web, "INACTIVE")
    again = replace(web, created_at=EPOCH + 100, document={"desiredCount": 3})
    assert store.services.create(again, [make_deployment(web, 7)])
    assert store.services.get(web.arn) == again  # version 0 again: a new service
    assert [d.id for d in store.services.deployments(web.arn)] == [make_deployment(web, 7).id]
    assert store.services.events(web.arn) == []  # the old history went with it


# Update


def test_update_writes_the_change_and_raises_the_version(store: Store) -> None:
    web = make_service("web")
    first = make_deployment(web, 1)
    store.services.create(web, [first])
    seen: list[tuple[Service, tuple[ServiceDeployment, ...]]] = []

    def redeploy(
        service: Service, deployments: tuple[ServiceDeployment, ...]
    ) -> tuple[Service, list[ServiceDeployment]]:
        seen.append((service, deployments))
        retired = [replace(d, status="ACTIVE") for d in deployments]
        return replace(service, document={**service.document, "desiredCount": 4}), [
            *retired,
            make_deployment(web, 2),
        ]

    after = store.services.update(web.arn, redeploy)
    assert seen == [(web, (first,))]  # the change sees the stored state
    assert after is not None
    service, deployments = after
    assert (service.version, service.document["desiredCount"]) == (1, 4)
    assert [(d.id, d.status) for d in deployments] == [
        (make_deployment(web, 2).id, "PRIMARY"),  # newest first
        (first.id, "ACTIVE"),
    ]
    assert store.services.get(web.arn) == service
    assert store.services.deployments(web.arn) == deployments


def test_an_update_that_changes_nothing_keeps_the_version(store: Store) -> None:
    web = make_service("web")
    store.services.create(web, [])
    assert store.services.update(web.arn, lambda s, d: None) == (web, ())
    assert (store.services.get(web.arn) or web).version == 0
    assert (
        store.services.update("arn:aws:ecs:eu-west-1:123456789012:service/w/x", lambda s, d: None)
        is None
    )


def test_an_update_that_raises_writes_nothing(store: Store) -> None:
    web = make_service("web")
    store.services.create(web, [])

    def broken(service: Service, deployments: Any) -> Any:
        raise RuntimeError("refused halfway")

    with pytest.raises(RuntimeError):
        store.services.update(web.arn, broken)
    assert store.services.get(web.arn) == web


def test_concurrent_updates_are_serialised_by_the_row_lock(durable_backend: Backend) -> None:
    opened = durable_backend.open()
    try:
        web = make_service("web", desiredCount=0)
        opened.services.create(web, [])

        def bump(service: Service, deployments: Any) -> tuple[Service, list[Any]]:
            count = service.document["desiredCount"] + 1
            return replace(service, document={**service.document, "desiredCount": count}), []

        threads = [
            threading.Thread(
                target=lambda: [opened.services.update(web.arn, bump) for _ in range(5)]
            )
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        final = opened.services.get(web.arn)
        assert final is not None
        assert (final.document["desiredCount"], final.version) == (20, 20)
    finally:
        opened.close()


# Listing


def test_list_services_filters_and_pages(store: Store) -> None:
    for name, launch, scheduling in [
        ("a", "EC2", "REPLICA"),
        ("b", "EXTERNAL", "REPLICA"),
        ("c", "EC2", "DAEMON"),
        ("d", "EC2", "REPLICA"),
        ("gone", "EC2", "REPLICA"),
    ]:
        store.services.create(
            make_service(name, launchType=launch, schedulingStrategy=scheduling), []
        )
    store.services.create(make_service("elsewhere", cluster="other"), [])
    set_status(store, make_service("gone"), "INACTIVE")
    set_status(store, make_service("d"), "DRAINING")

    def names(page: Any) -> list[str]:
        return [s.name for s in page.items]

    work = cluster_arn("work")
    assert names(store.services.list_services(work)) == ["a", "b", "c", "d"]
    assert names(store.services.list_services(work, launch_type="EXTERNAL")) == ["b"]
    assert names(store.services.list_services(work, scheduling="DAEMON")) == ["c"]
    first = store.services.list_services(work, limit=3)
    assert names(first) == ["a", "b", "c"] and first.next_key is not None
    rest = store.services.list_services(work, after=first.next_key, limit=3)
    assert (names(rest), rest.next_key) == (["d"], None)
    assert [s.name for s in store.services.live(work)] == ["a", "b", "c", "d"]
    assert {s.name for s in store.services.live()} == {"a", "b", "c", "d", "elsewhere"}
    found = store.services.get_many([make_service("a").arn, make_service("zzz").arn])
    assert list(found) == [make_service("a").arn]


# Events


def test_events_come_newest_first_and_keep_a_plans_order(store: Store) -> None:
    web = make_service("web")
    store.services.create(web, [])
    store.services.add_events(web.arn, ["first", "second"], EPOCH)
    store.services.add_events(web.arn, [], EPOCH + 1)  # nothing to add: no row
    store.services.add_events(web.arn, ["third"], EPOCH + 2)
    events = store.services.events(web.arn)
    assert [e.message for e in events] == ["third", "second", "first"]
    assert len({e.id for e in events}) == 3
    assert events[0].created_at == EPOCH + 2
    assert [e.message for e in store.services.events(web.arn, limit=2)] == ["third", "second"]
    assert store.services.events(make_service("other").arn) == []
