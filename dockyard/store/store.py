"""The store: every read and write of Dockyard's state goes through ``Store``.

One implementation on SQLAlchemy Core serves SQLite and PostgreSQL; the conformance
suite in ``tests/unit/test_store.py`` runs against both. Listings are keyset-paged:
``after`` is the last key of the previous page, and a page of ``limit`` items comes
back with ``next_key`` set when more follow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

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
from dockyard.store.pipeline import one_statement
from dockyard.store.placement import INSTANCE_TARGET, raise_versions
from dockyard.store.registry import RegistryStore
from dockyard.store.schema import (
    account_settings,
    attributes,
    clusters,
    container_instances,
    services,
    tags,
    task_definitions,
    tasks,
)
from dockyard.store.services import ServiceStore
from dockyard.store.tasks import PENDING_STATUSES, TaskStore
from dockyard.store.tasks import instance as _instance


def _dump(doc: Any) -> str:
    return orjson.dumps(doc).decode()


def _page(items: list[Any], limit: int, key: Any) -> Page[Any]:
    if len(items) > limit:
        items = items[:limit]
        return Page(tuple(items), key(items[-1]))
    return Page(tuple(items), None)


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.registry = RegistryStore(engine)
        self.tasks = TaskStore(engine)
        self.services = ServiceStore(engine)

    @classmethod
    def open(cls, url: str | None, data_dir: Path) -> Store:
        """Open (and migrate) the database at ``url``, or SQLite in ``data_dir``."""
        engine = db.open_engine(db.database_url(url, data_dir))
        db.migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def wipe(self) -> None:
        db.wipe(self.engine)

    # Clusters

    def put_cluster(self, cluster: Cluster) -> None:
        """Insert or replace the cluster with this ARN."""
        row = _cluster_row(cluster)
        with db.transaction(self.engine, write=True) as conn:
            done = conn.execute(update(clusters).where(clusters.c.arn == cluster.arn).values(row))
            if done.rowcount == 0:
                conn.execute(insert(clusters).values(arn=cluster.arn, **row))

    def get_cluster(self, account_id: str, region: str, name: str) -> Cluster | None:
        key = {"account_id": account_id, "region": region, "name": name}
        with db.statement(self.engine) as conn:
            row = conn.execute(_GET_CLUSTER, key).first()
        return _cluster(row) if row else None

    def list_clusters(
        self, account_id: str, region: str, after: str | None, limit: int
    ) -> Page[Cluster]:
        query = select(clusters).where(
            clusters.c.account_id == account_id,
            clusters.c.region == region,
            clusters.c.status != "INACTIVE",
        )
        if after is not None:
            query = query.where(clusters.c.arn > after)
        query = query.order_by(clusters.c.arn).limit(limit + 1)
        with db.transaction(self.engine) as conn:
            items = [_cluster(r) for r in conn.execute(query)]
        return _page(items, limit, lambda c: c.arn)

    def cluster_counts(self, cluster_arn: str) -> ClusterCounts:
        with db.transaction(self.engine) as conn:
            instances = conn.scalar(
                select(func.count()).where(
                    container_instances.c.cluster_arn == cluster_arn,
                    container_instances.c.status.in_(("ACTIVE", "DRAINING", "REGISTERING")),
                )
            )
            by_service_status: dict[str, int] = {
                status: count
                for status, count in conn.execute(
                    select(services.c.status, func.count())
                    .where(services.c.cluster_arn == cluster_arn)
                    .group_by(services.c.status)
                )
            }
            by_status: dict[str, int] = {
                status: count
                for status, count in conn.execute(
                    select(tasks.c.last_status, func.count())
                    .where(tasks.c.cluster_arn == cluster_arn, tasks.c.last_status != "STOPPED")
                    .group_by(tasks.c.last_status)
                )
            }
        pending = sum(n for s, n in by_status.items() if s in PENDING_STATUSES)
        return ClusterCounts(
            registered_instances=instances or 0,
            running_tasks=by_status.get("RUNNING", 0),
            pending_tasks=pending,
            active_services=by_service_status.get("ACTIVE", 0),
            draining_services=by_service_status.get("DRAINING", 0),
        )

    # Task definitions

    def add_task_definition(
        self,
        account_id: str,
        region: str,
        family: str,
        make: Callable[[int], TaskDefinition],
    ) -> TaskDefinition:
        """Store the family's next revision: ``make(revision)`` builds it.

        Registrations of one family queue for it, so each reads the revision the last
        one wrote; should two still collide, the loser retries with the next.
        """
        for _ in range(20):
            with db.transaction(self.engine, write=True) as conn:
                _lock_family(conn, account_id, region, family)
                latest = conn.scalar(
                    select(func.max(task_definitions.c.revision)).where(
                        task_definitions.c.account_id == account_id,
                        task_definitions.c.region == region,
                        task_definitions.c.family == family,
                    )
                )
                definition: TaskDefinition = make((latest or 0) + 1)
                try:
                    conn.execute(insert(task_definitions).values(_task_definition_row(definition)))
                except IntegrityError:
                    continue
                return definition
        raise RuntimeError(f"could not allocate a revision for family {family}")

    def get_task_definition(
        self, account_id: str, region: str, family: str, revision: int | None
    ) -> TaskDefinition | None:
        """The given revision, or with ``revision=None`` the latest ACTIVE one."""
        key = {"account_id": account_id, "region": region, "family": family}
        with db.statement(self.engine) as conn:
            if revision is None:
                row = conn.execute(_LATEST_TASK_DEFINITION, key).first()
            else:
                row = conn.execute(_TASK_DEFINITION, {**key, "revision": revision}).first()
        return _task_definition(row) if row else None

    def cluster_and_task_definition(
        self, account_id: str, region: str, name: str, family: str, revision: int | None
    ) -> tuple[Cluster | None, TaskDefinition | None]:
        """``get_cluster`` and ``get_task_definition`` in one statement (RunTask's)."""
        key = {"account_id": account_id, "region": region, "name": name, "family": family}
        if revision is None:
            [row] = one_statement(self.engine, _CLUSTER_AND_LATEST, key)
        else:
            [row] = one_statement(self.engine, _CLUSTER_AND_REVISION, {**key, "revision": revision})
        width = len(clusters.c)
        cluster, definition = _named(clusters, row[:width]), _named(task_definitions, row[width:])
        return (
            _cluster(cluster) if cluster.arn is not None else None,
            _task_definition(definition) if definition.arn is not None else None,
        )

    def set_task_definition_status(
        self, arn: str, status: str, deregistered_at: float | None
    ) -> TaskDefinition | None:
        with db.transaction(self.engine, write=True) as conn:
            values: dict[str, Any] = {"status": status}
            if deregistered_at is not None:
                values["deregistered_at"] = deregistered_at
            conn.execute(
                update(task_definitions).where(task_definitions.c.arn == arn).values(values)
            )
            row = conn.execute(
                select(task_definitions).where(task_definitions.c.arn == arn)
            ).first()
        return _task_definition(row) if row else None

    def list_task_definitions(
        self,
        account_id: str,
        region: str,
        *,
        family: str | None,
        status: str | None,
        descending: bool,
        after: tuple[str, int] | None,
        limit: int,
    ) -> Page[TaskDefinition]:
        """Sorted by family then revision; ``after`` is the (family, revision) last seen."""
        t = task_definitions.c
        query = select(task_definitions).where(t.account_id == account_id, t.region == region)
        if family is not None:
            query = query.where(t.family == family)
        if status is not None:
            query = query.where(t.status == status)
        if after is not None:
            f, r = after
            if descending:
                query = query.where((t.family < f) | and_(t.family == f, t.revision < r))
            else:
                query = query.where((t.family > f) | and_(t.family == f, t.revision > r))
        order = (t.family.desc(), t.revision.desc()) if descending else (t.family, t.revision)
        query = query.order_by(*order).limit(limit + 1)
        with db.transaction(self.engine) as conn:
            items = [_task_definition(r) for r in conn.execute(query)]
        return _page(items, limit, lambda d: f"{d.family}:{d.revision}")

    def list_families(
        self,
        account_id: str,
        region: str,
        *,
        prefix: str | None,
        status: str | None,
        after: str | None,
        limit: int,
    ) -> Page[str]:
        """Family names; ``status`` ACTIVE means families with an ACTIVE revision,
        INACTIVE families whose revisions are all INACTIVE, None every family."""
        t = task_definitions.c
        active = func.sum(case((t.status == "ACTIVE", 1), else_=0))
        query = (
            select(t.family)
            .where(t.account_id == account_id, t.region == region, t.status != "DELETE_IN_PROGRESS")
            .group_by(t.family)
        )
        if prefix:
            query = query.where(t.family.startswith(prefix, autoescape=True))
        if after is not None:
            query = query.where(t.family > after)
        if status == "ACTIVE":
            query = query.having(active > 0)
        elif status == "INACTIVE":
            query = query.having(active == 0)
        query = query.order_by(t.family).limit(limit + 1)
        with db.transaction(self.engine) as conn:
            names = [r[0] for r in conn.execute(query)]
        return _page(names, limit, lambda name: name)

    # Tags

    def get_tags(self, resource_arn: str) -> dict[str, str]:
        query = select(tags.c.key, tags.c.value).where(tags.c.resource_arn == resource_arn)
        with db.transaction(self.engine) as conn:
            return {k: v for k, v in conn.execute(query).all()}

    def put_tags(self, resource_arn: str, new: Mapping[str, str]) -> None:
        if not new:
            return
        with db.transaction(self.engine, write=True) as conn:
            conn.execute(
                delete(tags).where(tags.c.resource_arn == resource_arn, tags.c.key.in_(list(new)))
            )
            conn.execute(
                insert(tags),
                [{"resource_arn": resource_arn, "key": k, "value": v} for k, v in new.items()],
            )

    def delete_tags(self, resource_arn: str, keys: Iterable[str] | None = None) -> None:
        """Delete the named tags, or all of the resource's tags when ``keys`` is None."""
        query = delete(tags).where(tags.c.resource_arn == resource_arn)
        if keys is not None:
            query = query.where(tags.c.key.in_(list(keys)))
        with db.transaction(self.engine, write=True) as conn:
            conn.execute(query)

    # Account settings

    def put_account_setting(self, account_id: str, region: str, setting: AccountSetting) -> None:
        key = {
            "account_id": account_id,
            "region": region,
            "principal_arn": setting.principal_arn,
            "name": setting.name,
        }
        with db.transaction(self.engine, write=True) as conn:
            conn.execute(delete(account_settings).where(*_equal(account_settings, key)))
            conn.execute(insert(account_settings).values(value=setting.value, **key))

    def delete_account_setting(
        self, account_id: str, region: str, principal_arn: str, name: str
    ) -> bool:
        key = {
            "account_id": account_id,
            "region": region,
            "principal_arn": principal_arn,
            "name": name,
        }
        with db.transaction(self.engine, write=True) as conn:
            done = conn.execute(delete(account_settings).where(*_equal(account_settings, key)))
        return bool(done.rowcount)

    def list_account_settings(self, account_id: str, region: str) -> list[AccountSetting]:
        s = account_settings.c
        query = (
            select(s.name, s.value, s.principal_arn)
            .where(s.account_id == account_id, s.region == region)
            .order_by(s.name, s.principal_arn)
        )
        with db.transaction(self.engine) as conn:
            return [AccountSetting(n, v, p) for n, v, p in conn.execute(query).all()]

    # Attributes

    def put_attributes(self, items: Iterable[Attribute]) -> None:
        """Insert or replace each attribute; a name given twice for a target keeps the last."""
        by_key = {
            (a.cluster_arn, a.target_id, a.name): {
                "cluster_arn": a.cluster_arn,
                "target_id": a.target_id,
                "target_type": a.target_type,
                "name": a.name,
                "value": a.value,
            }
            for a in items
        }
        rows = list(by_key.values())
        if not rows:
            return
        with db.transaction(self.engine, write=True) as conn:
            for row in rows:
                conn.execute(
                    delete(attributes).where(
                        attributes.c.cluster_arn == row["cluster_arn"],
                        attributes.c.target_id == row["target_id"],
                        attributes.c.name == row["name"],
                    )
                )
            conn.execute(insert(attributes), rows)
            _bump_instances(conn, rows)

    def delete_attributes(self, items: Iterable[Attribute]) -> None:
        """Placement's cached instances go stale: their versions rise (``put`` too)."""
        rows = list(items)
        with db.transaction(self.engine, write=True) as conn:
            for a in rows:
                conn.execute(
                    delete(attributes).where(
                        attributes.c.cluster_arn == a.cluster_arn,
                        attributes.c.target_id == a.target_id,
                        attributes.c.name == a.name,
                    )
                )
            _bump_instances(
                conn, [{"target_type": a.target_type, "target_id": a.target_id} for a in rows]
            )

    def list_attributes(
        self,
        cluster_arn: str,
        *,
        target_type: str,
        name: str | None = None,
        value: str | None = None,
        target_id: str | None = None,
    ) -> list[Attribute]:
        a = attributes.c
        query = select(attributes).where(a.cluster_arn == cluster_arn, a.target_type == target_type)
        if name is not None:
            query = query.where(a.name == name)
        if value is not None:
            query = query.where(a.value == value)
        if target_id is not None:
            query = query.where(a.target_id == target_id)
        query = query.order_by(a.target_id, a.name)
        with db.transaction(self.engine) as conn:
            return [
                Attribute(r.cluster_arn, r.target_type, r.target_id, r.name, r.value)
                for r in conn.execute(query)
            ]

    # Container instances

    def put_container_instance(self, instance: ContainerInstance) -> None:
        row = {
            "account_id": instance.account_id,
            "region": instance.region,
            "cluster_arn": instance.cluster_arn,
            "ec2_instance_id": instance.ec2_instance_id,
            "status": instance.status,
            "registered_at": instance.registered_at,
            "document": _dump(instance.document),
        }
        c = container_instances.c
        with db.transaction(self.engine, write=True) as conn:
            done = conn.execute(
                update(container_instances).where(c.arn == instance.arn).values(row)
            )
            if done.rowcount == 0:
                conn.execute(insert(container_instances).values(arn=instance.arn, **row))
                raise_versions(conn, cluster_arns=[instance.cluster_arn])
            else:  # a new document: a new version (placement keeps parsed ones by it)
                raise_versions(conn, instance_arns=[instance.arn])

    def get_container_instance(self, arn: str) -> ContainerInstance | None:
        query = select(container_instances).where(container_instances.c.arn == arn)
        with db.transaction(self.engine) as conn:
            row = conn.execute(query).first()
        return _instance(row) if row else None

    def list_container_instances(
        self, cluster_arn: str, *, status: str | None, after: str | None, limit: int
    ) -> Page[ContainerInstance]:
        c = container_instances.c
        query = select(container_instances).where(c.cluster_arn == cluster_arn)
        query = query.where(c.status == status) if status else query.where(c.status != "INACTIVE")
        if after is not None:
            query = query.where(c.arn > after)
        query = query.order_by(c.arn).limit(limit + 1)
        with db.transaction(self.engine) as conn:
            items = [_instance(r) for r in conn.execute(query)]
        return _page(items, limit, lambda i: i.arn)


# Built once: every RunTask looks up its cluster and task definition.
_CLUSTER_NAMED = (
    (clusters.c.account_id == bindparam("account_id"))
    & (clusters.c.region == bindparam("region"))
    & (clusters.c.name == bindparam("name"))
)
_OF_FAMILY = (
    (task_definitions.c.account_id == bindparam("account_id"))
    & (task_definitions.c.region == bindparam("region"))
    & (task_definitions.c.family == bindparam("family"))
)
_GET_CLUSTER = select(clusters).where(_CLUSTER_NAMED)
_FAMILY = select(task_definitions).where(_OF_FAMILY)
_TASK_DEFINITION = _FAMILY.where(task_definitions.c.revision == bindparam("revision"))
_LATEST_TASK_DEFINITION = (
    _FAMILY.where(task_definitions.c.status == "ACTIVE")
    .order_by(task_definitions.c.revision.desc())
    .limit(1)
)

# One row whatever is found: a cluster's columns then a task definition's, None where
# there is no such row.
_ONE_ROW = select(literal(1).label("one")).subquery()
_latest = task_definitions.alias("latest")
_LATEST_REVISION = (
    select(func.max(_latest.c.revision))
    .where(
        _latest.c.account_id == bindparam("account_id"),
        _latest.c.region == bindparam("region"),
        _latest.c.family == bindparam("family"),
        _latest.c.status == "ACTIVE",
    )
    .scalar_subquery()
)


def _cluster_and(revision: Any) -> Any:
    joined = _ONE_ROW.outerjoin(clusters, _CLUSTER_NAMED).outerjoin(
        task_definitions, _OF_FAMILY & (task_definitions.c.revision == revision)
    )
    return select(*clusters.c, *task_definitions.c).select_from(joined)


_CLUSTER_AND_REVISION = _cluster_and(bindparam("revision"))
_CLUSTER_AND_LATEST = _cluster_and(_LATEST_REVISION)


def _named(table: Table, values: Sequence[Any]) -> SimpleNamespace:
    """A table's columns' values by name, as a row of it gives them."""
    return SimpleNamespace(**dict(zip(table.c.keys(), values, strict=True)))


def _bump_instances(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Raise the version of the container instances among attributes' targets."""
    arns = {r["target_id"] for r in rows if r["target_type"] == INSTANCE_TARGET}
    raise_versions(conn, instance_arns=arns)


def _lock_family(conn: Connection, account_id: str, region: str, family: str) -> None:
    """Hold the family until the transaction ends (PostgreSQL; SQLite's BEGIN IMMEDIATE
    already serialises writers). Retrying on a duplicate revision alone starves: with
    16 concurrent registrations some ran out of attempts."""
    if conn.dialect.name == "postgresql":
        key = f"{account_id}/{region}/{family}"
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(key))))


def _equal(table: Any, key: Mapping[str, Any]) -> list[Any]:
    return [table.c[name] == value for name, value in key.items()]


def _cluster_row(c: Cluster) -> dict[str, Any]:
    return {
        "account_id": c.account_id,
        "region": c.region,
        "name": c.name,
        "status": c.status,
        "created_at": c.created_at,
        "document": _dump(
            {
                "settings": [list(s) for s in c.settings],
                "configuration": c.configuration,
                "capacityProviders": list(c.capacity_providers),
                "defaultStrategy": list(c.default_strategy),
                "serviceConnectNamespace": c.service_connect_namespace,
            }
        ),
    }


def _cluster(row: Row[Any] | SimpleNamespace) -> Cluster:
    doc = orjson.loads(row.document)
    return Cluster(
        arn=row.arn,
        account_id=row.account_id,
        region=row.region,
        name=row.name,
        status=row.status,
        created_at=row.created_at,
        settings=tuple((n, v) for n, v in doc["settings"]),
        configuration=doc["configuration"],
        capacity_providers=tuple(doc["capacityProviders"]),
        default_strategy=tuple(doc["defaultStrategy"]),
        service_connect_namespace=doc["serviceConnectNamespace"],
    )


def _task_definition_row(d: TaskDefinition) -> dict[str, Any]:
    return {
        "arn": d.arn,
        "account_id": d.account_id,
        "region": d.region,
        "family": d.family,
        "revision": d.revision,
        "status": d.status,
        "registered_at": d.registered_at,
        "registered_by": d.registered_by,
        "deregistered_at": d.deregistered_at,
        "document": _dump(d.document),
    }


def _task_definition(row: Row[Any] | SimpleNamespace) -> TaskDefinition:
    return TaskDefinition(
        arn=row.arn,
        account_id=row.account_id,
        region=row.region,
        family=row.family,
        revision=row.revision,
        status=row.status,
        document=orjson.loads(row.document),
        registered_at=row.registered_at,
        registered_by=row.registered_by,
        deregistered_at=row.deregistered_at,
    )
