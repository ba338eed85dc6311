"""How Dockyard's deployments read as ECS service deployment statuses
(dockyard/ecs/service_deployments.py), rollbacks included: a table of named cases."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from dockyard.ecs.service_deployments import deployment_status, rollback_target
from dockyard.store.models import Service, ServiceDeployment

SERVICE = Service(
    arn="arn:aws:ecs:eu-west-1:000000000000:service/work/web",
    account_id="000000000000",
    region="eu-west-1",
    cluster_arn="arn:aws:ecs:eu-west-1:000000000000:cluster/work",
    name="web",
    status="ACTIVE",
    created_at=0.0,
    updated_at=0.0,
)


def deployment(n: int, status: str, rollout: str, rollback: bool = False) -> ServiceDeployment:
    breaker = {"enable": True, "rollback": rollback}
    return ServiceDeployment(
        service_arn=SERVICE.arn,
        id=f"ecs-svc/{n:019d}",
        status=status,
        task_definition_arn=f"web:{n}",
        desired_count=2,
        rollout_state=rollout,
        rollout_reason="",
        failed_tasks=0,
        created_at=float(n),
        updated_at=float(n),
        document={"deploymentConfiguration": {"deploymentCircuitBreaker": breaker}},
    )


CASES: list[tuple[str, dict[str, Any], list[ServiceDeployment], str]] = [
    ("in progress", {}, [deployment(1, "PRIMARY", "IN_PROGRESS")], "IN_PROGRESS"),
    ("completed", {}, [deployment(1, "PRIMARY", "COMPLETED")], "SUCCESSFUL"),
    ("completed, replaced since", {}, [deployment(1, "INACTIVE", "COMPLETED")], "SUCCESSFUL"),
    ("superseded", {}, [deployment(1, "ACTIVE", "IN_PROGRESS")], "STOPPED"),
    (
        "service deleted",
        {"status": "DRAINING"},
        [deployment(1, "PRIMARY", "IN_PROGRESS")],
        "STOPPED",
    ),
    ("failed, no rollback", {}, [deployment(2, "PRIMARY", "FAILED")], "STOPPED"),
    (
        "failed, rollback with nothing to return to",
        {},
        [deployment(2, "PRIMARY", "FAILED", rollback=True)],
        "STOPPED",
    ),
    (
        "rolling back",
        {},
        [deployment(2, "ACTIVE", "FAILED", rollback=True), deployment(1, "PRIMARY", "IN_PROGRESS")],
        "ROLLBACK_IN_PROGRESS",
    ),
    (
        "rolled back",
        {},
        [deployment(2, "INACTIVE", "FAILED", rollback=True), deployment(1, "PRIMARY", "COMPLETED")],
        "ROLLBACK_SUCCESSFUL",
    ),
    (
        "rollback failed too",
        {},
        [deployment(2, "ACTIVE", "FAILED", rollback=True), deployment(1, "PRIMARY", "FAILED")],
        "ROLLBACK_FAILED",
    ),
]


@pytest.mark.parametrize(
    ("service", "deployments", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_status(
    service: dict[str, Any], deployments: list[ServiceDeployment], expected: str
) -> None:
    assert deployment_status(replace(SERVICE, **service), deployments[0], deployments) == expected


def test_the_rollback_target_is_the_newest_older_completed_deployment() -> None:
    failed = deployment(3, "ACTIVE", "FAILED", rollback=True)
    older = [deployment(1, "INACTIVE", "COMPLETED"), deployment(2, "PRIMARY", "IN_PROGRESS")]
    newer = deployment(4, "INACTIVE", "COMPLETED")
    assert rollback_target(failed, [newer, failed, *older]) == older[1]
    assert rollback_target(replace(failed, document={}), [failed, *older]) is None
