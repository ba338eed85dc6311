"""Task records, and the resources they hold on their container instances.

Placing and releasing happen in one write transaction with the instance's row locked
(``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises
writers), so concurrent RunTask calls can never both take an instance's last MiB: the
second re-reads what is left and is refused.

An instance's ``remainingResources`` (in its document, in the wire shape) is always its
``registeredResources`` less what its unstopped tasks hold: placing takes, reaching
STOPPED gives back, re-registering recomputes (``recompute_remaining``).

Every change to the set of tasks an instance should hold (a placement, a desired status
turning STOPPED, a task leaving as STOPPED, a status change of the instance) raises the
instance's ``assignments_version`` in the same transaction. The agent channel hands the
version to the agent, whose next poll with an older one is answered at once.

Lock order, to stay free of deadlocks: task rows (by ARN), then instance rows (by ARN).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Row, func, insert, select, update

from dockyard.store import db
from dockyard.store.models import ContainerInstance, Page, Resources, Task
from dockyard.store.schema import container_instances, tasks

# lastStatus values a task holds on the way to RUNNING: pendingTasksCount counts them.
PENDING_STATUSES = ("PROVISIONING", "PENDING", "ACTIVATING")

Change = Callable[[Task], Task | None]  # the new task, or None to leave it as it is


class TaskStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # Placing and changing

    def place(self, new: Sequence[Task]) -> tuple[list[Task], list[tuple[Task, str]]]:
        """Insert the tasks that still fit their instance, taking their resources.

        Returns (placed, refused); a refusal's reason is RESOURCE:CPU, RESOURCE:MEMORY,
        RESOURCE:PORTS, or INACTIVE for an instance no longer ACTIVE.
        """
        placed: list[Task] = []
        refused: list[tuple[Task, str]] = []
        arns = sorted({t.container_instance_arn for t in new if t.container_instance_arn})
        with db.transaction(self.engine, write=True) as conn:
            instances = _lock_instances(conn, arns)
            remaining = {arn: remaining_resources(i.document) for arn, i in instances.items()}
            for task in new:
                instance = instances.get(task.container_instance_arn or "")
                if instance is None or instance.status != "ACTIVE":
                    refused.append((task, "INACTIVE"))
                    continue
                reason = shortfall(remaining[instance.arn], task.resources)
                if reason is not None:
                    refused.append((task, reason))
                    continue
                remaining[instance.arn] = take(remaining[instance.arn], task.resources)
                placed.append(task)
            if placed:
                conn.execute(insert(tasks), [_row(t) for t in placed])
            touched = {t.container_instance_arn for t in placed if t.container_instance_arn}
            for arn in touched:
                _write_remaining(conn, instances[arn], remaining[arn])
            _bump(conn, touched)
        return placed, refused

    def update(self, arns: Iterable[str], change: Change) -> list[tuple[Task, Task]]:
        """Apply ``change`` to each task under its row lock; (before, after) for each
        task it changed. A task reaching STOPPED gives its resources back, and the
        instances whose assignments changed get a new version."""
        results: list[tuple[Task, Task]] = []
        with db.transaction(self.engine, write=True) as conn:
            query = select(tasks).where(tasks.c.arn.in_(sorted(set(arns)))).order_by(tasks.c.arn)
            for row in conn.execute(query.with_for_update()).all():
                before = _task(row)
                after = change(before)
                if after is not None and after != before:
                    conn.execute(update(tasks).where(tasks.c.arn == before.arn).values(_row(after)))
                    results.append((before, after))
            _release(conn, [a for b, a in results if _stopped(b, a)])
            changed = {
                a.container_instance_arn
                for b, a in results
                if a.container_instance_arn
                and (a.desired_status != b.desired_status or _stopped(b, a))
            }
            _bump(conn, changed)
        return results

    def mark_picked_up(self, arns: Iterable[str], now: float) -> None:
        """Record that an agent received these tasks (StopTask then waits for it)."""
        query = (
            update(tasks)
            .where(tasks.c.arn.in_(list(arns)), tasks.c.picked_up_at.is_(None))
            .values(picked_up_at=now)
        )
        with db.transaction(self.engine, write=True) as conn:
            conn.execute(query)

    # Reading

    def get(self, arn: str) -> Task | None:
        with db.transaction(self.engine) as conn:
            row = conn.execute(select(tasks).where(tasks.c.arn == arn)).first()
        return _task(row) if row else None

    def get_many(self, arns: Iterable[str]) -> dict[str, Task]:
        query = select(tasks).where(tasks.c.arn.in_(list(arns)))
        with db.transaction(self.engine) as conn:
            return {row.arn: _task(row) for row in conn.execute(query)}

    def list_tasks(
        self,
        cluster_arn: str,
        *,
        container_instance: str | None = None,
        family: str | None = None,
        started_by: str | None = None,
        group: str | None = None,
        desired_status: str | None = "RUNNING",
        launch_type: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> Page[Task]:
        """ListTasks' filters; every one given must match. Sorted by ARN."""
        t = tasks.c
        query = select(tasks).where(t.cluster_arn == cluster_arn)
        for column, value in (
            (t.container_instance_arn, container_instance),
            (t.family, family),
            (t.started_by, started_by),
            (t.group_name, group),
            (t.desired_status, desired_status),
            (t.launch_type, launch_type),
        ):
            if value is not None:
                query = query.where(column == value)
        if after is not None:
            query = query.where(t.arn > after)
        query = query.order_by(t.arn).limit(limit + 1)
        with db.transaction(self.engine) as conn:
            items = [_task(r) for r in conn.execute(query)]
        if len(items) > limit:
            return Page(tuple(items[:limit]), items[limit - 1].arn)
        return Page(tuple(items), None)

    def on_instance(self, instance_arn: str) -> list[Task]:
        """The instance's tasks that are not STOPPED yet, oldest first."""
        t = tasks.c
        query = (
            select(tasks)
            .where(t.container_instance_arn == instance_arn, t.last_status != "STOPPED")
            .order_by(t.created_at, t.arn)
        )
        with db.transaction(self.engine) as conn:
            return [_task(r) for r in conn.execute(query)]

    def counts(self, instance_arns: Iterable[str]) -> dict[str, tuple[int, int]]:
        """(running, pending) tasks per instance."""
        t = tasks.c
        query = (
            select(t.container_instance_arn, t.last_status, func.count())
            .where(t.container_instance_arn.in_(list(instance_arns)), t.last_status != "STOPPED")
            .group_by(t.container_instance_arn, t.last_status)
        )
        result: dict[str, tuple[int, int]] = {}
        with db.transaction(self.engine) as conn:
            for arn, status, count in conn.execute(query):
                running, pending = result.get(arn, (0, 0))
                if status == "RUNNING":
                    running += count
                elif status in PENDING_STATUSES:
                    pending += count
                result[arn] = (running, pending)
        return result

    # Container instances, as placement and the agent channel see them

    def active_instances(self, cluster_arn: str) -> list[ContainerInstance]:
        c = container_instances.c
        query = (
            select(container_instances)
            .where(c.cluster_arn == cluster_arn, c.status == "ACTIVE")
            .order_by(c.arn)
        )
        with db.transaction(self.engine) as conn:
            return [instance(r) for r in conn.execute(query)]

    def touch(self, instance_arn: str, now: float) -> None:
        """Record contact from the instance's agent (a poll or a registration)."""
        c = container_instances.c
        with db.transaction(self.engine, write=True) as conn:
            conn.execute(
                update(container_instances).where(c.arn == instance_arn).values(agent_seen_at=now)
            )

    def set_instance_status(self, instance_arn: str, status: str) -> None:
        """Change only the status column: a document rewrite here could undo a
        concurrent placement's remainingResources."""
        c = container_instances.c
        with db.transaction(self.engine, write=True) as conn:
            conn.execute(
                update(container_instances).where(c.arn == instance_arn).values(status=status)
            )
            _bump(conn, {instance_arn})

    def recompute_remaining(self, instance_arn: str) -> None:
        """remainingResources = registeredResources less what unstopped tasks hold (after
        a re-registration has replaced the document)."""
        with db.transaction(self.engine, write=True) as conn:
            found = _lock_instances(conn, [instance_arn]).get(instance_arn)
            if found is None:
                return
            t = tasks.c
            held = conn.execute(
                select(t.reserved).where(
                    t.container_instance_arn == instance_arn, t.last_status != "STOPPED"
                )
            )
            left = registered_resources(found.document)
            for (reserved,) in held:
                left = take(left, _resources(orjson.loads(reserved)))
            _write_remaining(conn, found, left)


# Resources arithmetic: ``ports`` of what is left are the ports already taken.


def shortfall(left: Resources, demand: Resources) -> str | None:
    """Why ``demand`` does not fit in ``left``, as an ECS failure reason; None if it fits."""
    if demand.cpu > left.cpu:
        return "RESOURCE:CPU"
    if demand.memory > left.memory:
        return "RESOURCE:MEMORY"
    if demand.ports & left.ports or demand.ports_udp & left.ports_udp:
        return "RESOURCE:PORTS"
    return None


def take(left: Resources, demand: Resources) -> Resources:
    return Resources(
        cpu=left.cpu - demand.cpu,
        memory=left.memory - demand.memory,
        ports=left.ports | demand.ports,
        ports_udp=left.ports_udp | demand.ports_udp,
    )


def give_back(
    left: Resources, held: Resources, reserved: frozenset[int], reserved_udp: frozenset[int]
) -> Resources:
    """``reserved``: the host's own ports (registered PORTS), which stay taken."""
    return Resources(
        cpu=left.cpu + held.cpu,
        memory=left.memory + held.memory,
        ports=(left.ports - held.ports) | reserved,
        ports_udp=(left.ports_udp - held.ports_udp) | reserved_udp,
    )


def registered_resources(document: Mapping[str, Any]) -> Resources:
    return _from_wire(document.get("registeredResources") or [])


def remaining_resources(document: Mapping[str, Any]) -> Resources:
    items = document.get("remainingResources")
    return _from_wire(items if items is not None else document.get("registeredResources") or [])


def _from_wire(items: Iterable[Mapping[str, Any]]) -> Resources:
    by_name = {item["name"]: item for item in items}

    def integer(name: str) -> int:
        return int(by_name.get(name, {}).get("integerValue") or 0)

    def ports(name: str) -> frozenset[int]:
        return frozenset(int(p) for p in by_name.get(name, {}).get("stringSetValue") or [])

    return Resources(integer("CPU"), integer("MEMORY"), ports("PORTS"), ports("PORTS_UDP"))


def _with_remaining(document: Mapping[str, Any], left: Resources) -> dict[str, Any]:
    """The document with its four standard remaining resources set to ``left``; any
    other resource the instance registered stays as registered."""
    values: dict[str, Any] = {
        "CPU": {"integerValue": left.cpu},
        "MEMORY": {"integerValue": left.memory},
        "PORTS": {"stringSetValue": [str(p) for p in sorted(left.ports)]},
        "PORTS_UDP": {"stringSetValue": [str(p) for p in sorted(left.ports_udp)]},
    }
    items = [
        {**item, **values.get(item["name"], {})}
        for item in document.get("registeredResources") or []
    ]
    return {**document, "remainingResources": items}


# Rows


def _lock_instances(conn: Connection, arns: Sequence[str]) -> dict[str, ContainerInstance]:
    c = container_instances.c
    query = select(container_instances).where(c.arn.in_(sorted(arns))).order_by(c.arn)
    return {r.arn: instance(r) for r in conn.execute(query.with_for_update())}


def _stopped(before: Task, after: Task) -> bool:
    return after.last_status == "STOPPED" != before.last_status


def _release(conn: Connection, stopped: Sequence[Task]) -> None:
    """Give what ``stopped`` tasks held back to their instances."""
    arns = {t.container_instance_arn for t in stopped if t.container_instance_arn}
    for arn, found in _lock_instances(conn, sorted(arns)).items():
        left = remaining_resources(found.document)
        own = registered_resources(found.document)
        for task in stopped:
            if task.container_instance_arn == arn:
                left = give_back(left, task.resources, own.ports, own.ports_udp)
        _write_remaining(conn, found, left)


def _write_remaining(conn: Connection, found: ContainerInstance, left: Resources) -> None:
    document = orjson.dumps(_with_remaining(found.document, left)).decode()
    c = container_instances.c
    conn.execute(update(container_instances).where(c.arn == found.arn).values(document=document))


def _bump(conn: Connection, arns: Iterable[str]) -> None:
    arns = sorted(set(arns))
    if arns:
        c = container_instances.c
        conn.execute(
            update(container_instances)
            .where(c.arn.in_(arns))
            .values(assignments_version=c.assignments_version + 1)
        )


def instance(row: Row[Any]) -> ContainerInstance:
    return ContainerInstance(
        arn=row.arn,
        account_id=row.account_id,
        region=row.region,
        cluster_arn=row.cluster_arn,
        ec2_instance_id=row.ec2_instance_id,
        status=row.status,
        registered_at=row.registered_at,
        document=orjson.loads(row.document),
        agent_seen_at=row.agent_seen_at,
        assignments_version=row.assignments_version,
    )


def _row(task: Task) -> dict[str, Any]:
    r = task.resources
    reserved = {
        "cpu": r.cpu,
        "memory": r.memory,
        "ports": sorted(r.ports),
        "portsUdp": sorted(r.ports_udp),
    }
    return {
        "arn": task.arn,
        "cluster_arn": task.cluster_arn,
        "task_definition_arn": task.task_definition_arn,
        "container_instance_arn": task.container_instance_arn,
        "family": task.family,
        "group_name": task.group,
        "started_by": task.started_by,
        "launch_type": task.launch_type,
        "last_status": task.last_status,
        "desired_status": task.desired_status,
        "created_at": task.created_at,
        "picked_up_at": task.picked_up_at,
        "reserved": orjson.dumps(reserved).decode(),
        "document": orjson.dumps(task.document).decode(),
    }


def _resources(doc: Mapping[str, Any]) -> Resources:
    return Resources(
        cpu=doc["cpu"],
        memory=doc["memory"],
        ports=frozenset(doc["ports"]),
        ports_udp=frozenset(doc["portsUdp"]),
    )


def _task(row: Row[Any]) -> Task:
    return Task(
        arn=row.arn,
        cluster_arn=row.cluster_arn,
        task_definition_arn=row.task_definition_arn,
        container_instance_arn=row.container_instance_arn,
        family=row.family,
        group=row.group_name,
        started_by=row.started_by,
        launch_type=row.launch_type,
        last_status=row.last_status,
        desired_status=row.desired_status,
        created_at=row.created_at,
        resources=_resources(orjson.loads(row.reserved)),
        picked_up_at=row.picked_up_at,
        document=orjson.loads(row.document),
    )
