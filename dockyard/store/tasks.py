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
version to the agent, whose next poll with an older one is answered at once. So does
every write of the instance's document (``recompute_remaining`` too): placement keeps
parsed documents by version (``placement.py``). Each of these writes raises its
cluster's ``placement_version`` as well (``placement.raise_versions``), so RunTask can
tell in one row that nothing but its own placements changed since its last read.

Lock order, to stay free of deadlocks: task rows (by ARN), then instance rows (by ARN),
then the cluster's row.

RunTask's placements usually take the short way on PostgreSQL: one statement that
checks and writes at once (``placing_at_once.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Text,
    any_,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from dockyard.store import db, placement, task_rows
from dockyard.store.models import ContainerInstance, Page, Resources, Task
from dockyard.store.pipeline import inserting, write_transaction
from dockyard.store.placing_at_once import place_at_once
from dockyard.store.resources import (
    give_back,
    registered_resources,
    remaining_resources,
    shortfall,
    take,
    with_remaining,
)
from dockyard.store.schema import container_instances, tasks
from dockyard.store.task_rows import Placed

# lastStatus values a task holds on the way to RUNNING: pendingTasksCount counts them.
PENDING_STATUSES = ("PROVISIONING", "PENDING", "ACTIVATING")

Change = Callable[[Task], Task | None]  # the new task, or None to leave it as it is


class TaskStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # Placing and changing

    def place(
        self,
        new: Sequence[Task],
        *,
        distinct: bool = False,
        expected: placement.Expected | None = None,
        versions: Mapping[str, int] | None = None,
    ) -> Placed:
        """Insert the tasks that still fit their instance, taking their resources; with
        ``distinct``, only where no task of their group is held yet (distinctInstance);
        with ``expected``, only if the cluster is still the one they were planned on
        (else nothing is written and ``Placed.stale`` is set); ``versions``: with it,
        the ``assignments_version`` of each instance the plan saw, for the short way.

        A refusal's reason is RESOURCE:CPU, RESOURCE:MEMORY, RESOURCE:GPU,
        RESOURCE:PORTS, DistinctInstance, or INACTIVE for an instance no longer ACTIVE.
        A task asking for GPUs is placed holding the first free ones (by ID).
        """
        if not new and expected is None:
            return Placed([], [], {}, {})
        if expected is not None and versions is not None and not distinct:
            at_once = place_at_once(self.engine, new, expected, versions)
            if at_once is not None:
                return at_once
        placed: list[Task] = []
        refused: list[tuple[Task, str]] = []
        arns = sorted({t.container_instance_arn for t in new if t.container_instance_arn})
        groups = sorted({t.group for t in new})
        # Two round trips on PostgreSQL: the reads, then the writes (pipeline.py).
        with write_transaction(self.engine) as batch:
            locked = batch.query(_LOCK_INSTANCES, {"arns": arns}, postgresql=_LOCK_ANY_INSTANCES)
            # Read under the instances' locks, so a concurrent call cannot add one meanwhile.
            of_groups = (
                batch.query(_GROUPS_HELD, {"arns": arns, "groups": groups}) if distinct else None
            )
            check = batch.query(*expected.query()) if expected is not None else None
            batch.sync()
            instances = {row.arn: row for row in locked.all()}
            for row in instances.values():
                task_rows.know(row.arn, row.assignments_version, row.document)
            if expected is not None and check is not None and not expected.seen_in(check.all()):
                return Placed([], [], {}, {}, stale=True)
            held = {(arn, group) for arn, group in of_groups.all()} if of_groups else set()
            parsed = {arn: task_rows.parsed(row.document) for arn, row in instances.items()}
            remaining = {arn: left for arn, (_, left) in parsed.items()}
            for task in new:
                target = instances.get(task.container_instance_arn or "")
                if target is None or target.status != "ACTIVE":
                    refused.append((task, "INACTIVE"))
                    continue
                reason = shortfall(remaining[target.arn], task.resources)
                if reason is None and (target.arn, task.group) in held:
                    reason = "DistinctInstance"
                if reason is not None:
                    refused.append((task, reason))
                    continue
                holding, remaining[target.arn] = task_rows.holding(task, remaining[target.arn])
                if distinct:
                    held.add((target.arn, task.group))
                placed.append(holding)
            touched = sorted({t.container_instance_arn for t in placed if t.container_instance_arn})
            if not touched:
                return Placed(placed, refused, {}, {})
            batch.execute_many(
                _INSERT_TASKS, [task_rows.row(t) for t in placed], as_arrays=_INSERT_ARRAYS
            )
            documents = [
                {
                    "instance": arn,
                    "new_document": task_rows.with_remaining_text(parsed[arn][0], remaining[arn]),
                }
                for arn in touched
            ]
            for document in documents:
                version = instances[document["instance"]].assignments_version + 1
                task_rows.know(document["instance"], version, document["new_document"])
            batch.execute_many(_WRITE_PLACED, documents, as_arrays=_WRITE_PLACED_ARRAYS)
            clusters = sorted({instances[arn].cluster_arn for arn in touched})
            raised = [batch.query(placement.RAISE_CLUSTER, {"cluster": arn}) for arn in clusters]
            batch.commit()
        cluster_versions = {arn: version for rows in raised for arn, version in rows.all()}
        versions = {arn: instances[arn].assignments_version + 1 for arn in touched}
        return Placed(placed, refused, versions, cluster_versions)

    def update(self, arns: Iterable[str], change: Change) -> list[tuple[Task, Task]]:
        """Apply ``change`` to each task under its row lock; (before, after) for each
        task it changed. A task reaching STOPPED gives its resources back, and the
        instances whose assignments changed get a new version."""
        results: list[tuple[Task, Task]] = []
        with db.transaction(self.engine, write=True) as conn:
            query = select(tasks).where(tasks.c.arn.in_(sorted(set(arns)))).order_by(tasks.c.arn)
            for row in conn.execute(query.with_for_update()).all():
                before = task_rows.task(row)
                after = change(before)
                if after is not None and after != before:
                    conn.execute(
                        update(tasks).where(tasks.c.arn == before.arn).values(task_rows.row(after))
                    )
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
        return task_rows.task(row) if row else None

    def get_many(self, arns: Iterable[str]) -> dict[str, Task]:
        query = select(tasks).where(tasks.c.arn.in_(list(arns)))
        with db.transaction(self.engine) as conn:
            return {row.arn: task_rows.task(row) for row in conn.execute(query)}

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
            items = [task_rows.task(r) for r in conn.execute(query)]
        if len(items) > limit:
            return Page(tuple(items[:limit]), items[limit - 1].arn)
        return Page(tuple(items), None)

    def of_group(
        self, cluster_arn: str, group: str, *, stopped_of: Collection[str] = ()
    ) -> list[Task]:
        """The group's tasks that are not STOPPED, and its STOPPED ones started by one of
        ``stopped_of`` (a service's live deployment IDs), oldest first."""
        t = tasks.c
        alive = t.last_status != "STOPPED"
        if stopped_of:
            alive = alive | t.started_by.in_(sorted(stopped_of))
        query = (
            select(tasks)
            .where(t.cluster_arn == cluster_arn, t.group_name == group, alive)
            .order_by(t.created_at, t.arn)
        )
        with db.transaction(self.engine) as conn:
            return [task_rows.task(r) for r in conn.execute(query)]

    def on_instance(self, instance_arn: str) -> list[Task]:
        """The instance's tasks that are not STOPPED yet, oldest first."""
        t = tasks.c
        query = (
            select(tasks)
            .where(t.container_instance_arn == instance_arn, t.last_status != "STOPPED")
            .order_by(t.created_at, t.arn)
        )
        with db.transaction(self.engine) as conn:
            return [task_rows.task(r) for r in conn.execute(query)]

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

    def placement_view(
        self,
        cluster_arn: str,
        *,
        group: str,
        attribute_names: Collection[str],
        known: Mapping[str, int],
        instance_arns: Collection[str] | None = None,
        running: bool = False,
        groups: bool = False,
    ) -> placement.PlacementView:
        """What placement reads of the cluster: see ``placement.py``."""
        view = placement.read(
            self.engine,
            cluster_arn,
            group=group,
            attribute_names=attribute_names,
            known=known,
            instance_arns=instance_arns,
            running=running,
            groups=groups,
        )
        for arn, document in view.documents.items():
            task_rows.know(arn, document.version, document.document)
        return view

    def placement_fingerprint(
        self, cluster_arn: str, *, silent: Collection[str] = (), cutoff: float = 0.0
    ) -> placement.Fingerprint:
        """Whether anything placement reads changed: see ``placement.py``."""
        return placement.fingerprint(self.engine, cluster_arn, silent=silent, cutoff=cutoff)

    def active_instances(self, cluster_arn: str) -> list[ContainerInstance]:
        c = container_instances.c
        query = (
            select(container_instances)
            .where(c.cluster_arn == cluster_arn, c.status == "ACTIVE")
            .order_by(c.arn)
        )
        with db.transaction(self.engine) as conn:
            return [instance(r) for r in conn.execute(query)]

    def silent_instances(self, cutoff: float) -> list[ContainerInstance]:
        """Instances of any cluster and status whose agent has not been in contact since
        ``cutoff`` and that still hold a task not STOPPED (lost-host candidates)."""
        c, t = container_instances.c, tasks.c
        holding = select(t.arn).where(t.container_instance_arn == c.arn, t.last_status != "STOPPED")
        query = (
            select(container_instances)
            .where(c.agent_seen_at.is_(None) | (c.agent_seen_at < cutoff), holding.exists())
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
        a re-registration has replaced the document). The version rises, as with every
        document write, so placement's cached copy of the document is read again."""
        with db.transaction(self.engine, write=True) as conn:
            found = _lock_instances(conn, [instance_arn]).get(instance_arn)
            if found is None:
                return
            _write_remaining(conn, found, _left(conn, found))
            _bump(conn, [instance_arn])

    def reregister(self, instance: ContainerInstance) -> None:
        """Replace a registered instance's row (a new registration of the same host), its
        remainingResources what the new registeredResources leave of its unstopped
        tasks: in one transaction, so no placement ever sees the whole host free."""
        c = container_instances.c
        with db.transaction(self.engine, write=True) as conn:
            if not _lock_instances(conn, [instance.arn]):
                raise KeyError(instance.arn)
            row = {
                "cluster_arn": instance.cluster_arn,
                "ec2_instance_id": instance.ec2_instance_id,
                "status": instance.status,
                "registered_at": instance.registered_at,
                "document": _remaining_document(instance, _left(conn, instance)),
            }
            conn.execute(update(container_instances).where(c.arn == instance.arn).values(row))
            _bump(conn, [instance.arn])


# Rows


def _lock_instances(conn: Connection, arns: Sequence[str]) -> dict[str, ContainerInstance]:
    return {r.arn: instance(r) for r in conn.execute(_LOCK_INSTANCES, {"arns": sorted(arns)})}


# Built once: placing runs these on every RunTask (building one costs about what
# running it does on SQLite).
_LOCKING = select(container_instances).order_by(container_instances.c.arn).with_for_update()
_LOCK_INSTANCES = _LOCKING.where(container_instances.c.arn.in_(bindparam("arns", expanding=True)))
# PostgreSQL's form: one array parameter, so the text does not change with the count.
_LOCK_ANY_INSTANCES = _LOCKING.where(
    container_instances.c.arn == any_(bindparam("arns", type_=ARRAY(Text)))
)
_INSERT_TASKS = insert(tasks)
_INSERT_ARRAYS = inserting(tasks)
_WRITE_PLACED = (
    update(container_instances)
    .where(container_instances.c.arn == bindparam("instance"))
    .values(
        document=bindparam("new_document"),
        assignments_version=container_instances.c.assignments_version + 1,
    )
)
_placed_documents = select(
    func.unnest(bindparam("instance", type_=ARRAY(Text))).label("arn"),
    func.unnest(bindparam("new_document", type_=ARRAY(Text))).label("document"),
).subquery()
_WRITE_PLACED_ARRAYS = (
    update(container_instances)
    .where(container_instances.c.arn == _placed_documents.c.arn)
    .values(
        document=_placed_documents.c.document,
        assignments_version=container_instances.c.assignments_version + 1,
    )
)
# (instance, group) for each of the groups with a task not STOPPED on the instance.
_GROUPS_HELD = (
    select(tasks.c.container_instance_arn, tasks.c.group_name)
    .where(
        tasks.c.container_instance_arn.in_(bindparam("arns", expanding=True)),
        tasks.c.group_name.in_(bindparam("groups", expanding=True)),
        tasks.c.last_status != "STOPPED",
    )
    .distinct()
)


def _left(conn: Connection, found: ContainerInstance) -> Resources:
    """What the instance's registeredResources leave of its unstopped tasks."""
    t = tasks.c
    held = conn.execute(
        select(t.reserved).where(t.container_instance_arn == found.arn, t.last_status != "STOPPED")
    )
    left = registered_resources(found.document)
    for (reserved,) in held:
        left = take(left, task_rows.reserved(orjson.loads(reserved)))
    return left


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
    document = _remaining_document(found, left)
    c = container_instances.c
    conn.execute(update(container_instances).where(c.arn == found.arn).values(document=document))


def _remaining_document(found: ContainerInstance, left: Resources) -> str:
    return orjson.dumps(with_remaining(found.document, left)).decode()


def _bump(conn: Connection, arns: Iterable[str]) -> None:
    placement.raise_versions(conn, instance_arns=list(arns))


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
