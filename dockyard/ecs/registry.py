"""The ECS service: its botocore model and the handlers registered on it."""

from dockyard.api.awsjson import Service

ECS = Service("ecs")
