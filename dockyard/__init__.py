"""Dockyard: a self-hosted container platform that speaks the AWS ECS and ECR APIs."""

__version__ = "0.1.0"
