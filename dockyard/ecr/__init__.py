"""ECR API handlers. Importing this package registers every handler on ``ECR``."""

from dockyard.ecr import (  # noqa: F401  (imported for their registrations)
    auth,
    images,
    layers,
    lifecycle_api,
    repositories,
)
from dockyard.ecr.registry import ECR

__all__ = ["ECR"]
