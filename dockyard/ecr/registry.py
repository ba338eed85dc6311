"""The ECR service: its botocore model and the handlers registered on it."""

from dockyard.api.awsjson import Service

ECR = Service("ecr")
