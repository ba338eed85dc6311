"""ECS API handlers. Importing this package registers every handler on ``ECS``."""

from dockyard.ecs import (  # noqa: F401  (imported for their registrations)
    account_settings,
    attributes,
    clusters,
    container_instances,
    service_deployments,
    services,
    tags,
    task_definitions,
    task_reports,
    tasks,
)
from dockyard.ecs.registry import ECS

__all__ = ["ECS"]
