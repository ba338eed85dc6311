"""Services, their deployments and their events.

A service's row and its deployments change together under the service's row lock
(``update``): UpdateService and the service's reconciler loop both write them, and each
sees the other's last write. ``version`` rises with every write, so the loop can tell
that a plan was made on an older read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Row, delete, insert, select, update

from dockyard.store import db
from dockyard.store.models import Page, Service, ServiceDeployment, ServiceEvent
from dockyard.store.schema import service_deployments, service_events, services

Deployments = tuple[ServiceDeployment, ...]
# The new service and the deployments to insert or replace (by id), or None to leave
# everything as it is.
ServiceChange = Callable[[Service, Deployments], tuple[Service, Sequence[ServiceDeployment]] | None]


class ServiceStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, service: Service, deployments: Sequence[ServiceDeployment]) -> bool:
        """Insert the service with its first deployments; False when a service of that
        ARN exists and is not INACTIVE. An INACTIVE one is replaced, with its history."""
        with db.transaction(self.engine, write=True) as conn:
            old = conn.execute(
                select(services.c.status).where(services.c.arn == service.arn).with_for_update()
            ).first()
            if old is not None:
                if old.status != "INACTIVE":
                    return False
                _forget(conn, service.arn)
            conn.execute(insert(services).values(_service_row(service)))
            if deployments:
                conn.execute(insert(service_deployments), [_deployment_row(d) for d in deployments])
        return True

    def update(self, arn: str, change: ServiceChange) -> tuple[Service, Deployments] | None:
        """Apply ``change`` under the service's row lock; the service and all its
        deployments as they are afterwards, or None when there is no such service."""
        with db.transaction(self.engine, write=True) as conn:
            row = conn.execute(
                select(services).where(services.c.arn == arn).with_for_update()
            ).first()
            if row is None:
                return None
            before = _service(row)
            current = _deployments(conn, arn)
            result = change(before, current)
            if result is None:
                return before, current
            after, changed = result
            after = _bumped(after, before.version)
            conn.execute(update(services).where(services.c.arn == arn).values(_service_row(after)))
            for d in changed:
                c = service_deployments.c
                done = conn.execute(
                    update(service_deployments)
                    .where(c.service_arn == arn, c.id == d.id)
                    .values(_deployment_row(d))
                )
                if done.rowcount == 0:
                    conn.execute(insert(service_deployments).values(_deployment_row(d)))
            return after, _deployments(conn, arn)

    # Reading

    def get(self, arn: str) -> Service | None:
        with db.transaction(self.engine) as conn:
            row = conn.execute(select(services).where(services.c.arn == arn)).first()
        return _service(row) if row else None

    def get_many(self, arns: Iterable[str]) -> dict[str, Service]:
        query = select(services).where(services.c.arn.in_(list(arns)))
        with db.transaction(self.engine) as conn:
            return {row.arn: _service(row) for row in conn.execute(query)}

    def deployments(self, service_arn: str) -> Deployments:
        """All the service's deployments, newest first."""
        with db.transaction(self.engine) as conn:
            return _deployments(conn, service_arn)

    def with_deployments(self, service_arn: str) -> tuple[Service, Deployments] | None:
        """The service and its deployments, read together."""
        with db.transaction(self.engine) as conn:
            row = conn.execute(select(services).where(services.c.arn == service_arn)).first()
            return (_service(row), _deployments(conn, service_arn)) if row else None

    def list_services(
        self,
        cluster_arn: str,
        *,
        launch_type: str | None = None,
        scheduling: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> Page[Service]:
        """The cluster's ACTIVE and DRAINING services, by ARN, filtered as ListServices."""
        s = services.c
        query = select(services).where(s.cluster_arn == cluster_arn, s.status != "INACTIVE")
        if after is not None:
            query = query.where(s.arn > after)
        items = []
        with db.transaction(self.engine) as conn:
            for row in conn.execute(query.order_by(s.arn)):
                found = _service(row)
                doc = found.document
                if launch_type is not None and doc.get("launchType") != launch_type:
                    continue
                if scheduling is not None and doc.get("schedulingStrategy") != scheduling:
                    continue
                items.append(found)
                if len(items) > limit:
                    break
        if len(items) > limit:
            return Page(tuple(items[:limit]), items[limit - 1].arn)
        return Page(tuple(items), None)

    def live(self, cluster_arn: str | None = None) -> list[Service]:
        """Every ACTIVE or DRAINING service (of one cluster, or all): the loop's work."""
        query = select(services).where(services.c.status != "INACTIVE")
        if cluster_arn is not None:
            query = query.where(services.c.cluster_arn == cluster_arn)
        with db.transaction(self.engine) as conn:
            return [_service(r) for r in conn.execute(query.order_by(services.c.arn))]

    # Events

    def add_events(self, service_arn: str, messages: Sequence[str], at: float) -> None:
        if not messages:
            return
        rows = [
            # Events of one plan share a time: keep their order in the id's tie-break.
            {
                "id": f"{uuid.uuid4()}",
                "service_arn": service_arn,
                "created_at": at + i * 1e-6,
                "message": m,
            }
            for i, m in enumerate(messages)
        ]
        with db.transaction(self.engine, write=True) as conn:
            conn.execute(insert(service_events), rows)

    def events(self, service_arn: str, limit: int = 100) -> list[ServiceEvent]:
        """The newest ``limit`` events, newest first."""
        e = service_events.c
        query = (
            select(service_events)
            .where(e.service_arn == service_arn)
            .order_by(e.created_at.desc())
            .limit(limit)
        )
        with db.transaction(self.engine) as conn:
            return [
                ServiceEvent(r.id, r.service_arn, r.created_at, r.message)
                for r in conn.execute(query)
            ]


# Rows


def _forget(conn: Connection, arn: str) -> None:
    conn.execute(delete(service_deployments).where(service_deployments.c.service_arn == arn))
    conn.execute(delete(service_events).where(service_events.c.service_arn == arn))
    conn.execute(delete(services).where(services.c.arn == arn))


def _bumped(service: Service, version: int) -> Service:
    return replace(service, version=version + 1)


def _deployments(conn: Connection, service_arn: str) -> Deployments:
    c = service_deployments.c
    query = (
        select(service_deployments)
        .where(c.service_arn == service_arn)
        .order_by(c.created_at.desc(), c.id.desc())
    )
    return tuple(_deployment(r) for r in conn.execute(query))


def _service_row(s: Service) -> dict[str, Any]:
    return {
        "arn": s.arn,
        "account_id": s.account_id,
        "region": s.region,
        "cluster_arn": s.cluster_arn,
        "name": s.name,
        "status": s.status,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "document": orjson.dumps(s.document).decode(),
        "state": orjson.dumps(s.state).decode(),
        "version": s.version,
    }


def _service(row: Row[Any]) -> Service:
    return Service(
        arn=row.arn,
        account_id=row.account_id,
        region=row.region,
        cluster_arn=row.cluster_arn,
        name=row.name,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        document=orjson.loads(row.document),
        state=orjson.loads(row.state),
        version=row.version,
    )


def _deployment_row(d: ServiceDeployment) -> dict[str, Any]:
    return {
        "service_arn": d.service_arn,
        "id": d.id,
        "status": d.status,
        "task_definition_arn": d.task_definition_arn,
        "desired_count": d.desired_count,
        "rollout_state": d.rollout_state,
        "rollout_reason": d.rollout_reason,
        "failed_tasks": d.failed_tasks,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "document": orjson.dumps(d.document).decode(),
    }


def _deployment(row: Row[Any]) -> ServiceDeployment:
    return ServiceDeployment(
        service_arn=row.service_arn,
        id=row.id,
        status=row.status,
        task_definition_arn=row.task_definition_arn,
        desired_count=row.desired_count,
        rollout_state=row.rollout_state,
        rollout_reason=row.rollout_reason,
        failed_tasks=row.failed_tasks,
        created_at=row.created_at,
        updated_at=row.updated_at,
        document=orjson.loads(row.document),
    )
