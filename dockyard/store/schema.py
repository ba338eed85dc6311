"""The tables. Alembic migrations in ``migrations/versions`` create and change them.

JSON documents are stored as text (orjson), timestamps as epoch seconds, so the same
schema runs on SQLite and PostgreSQL without dialect types.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

ARN = String(1600)
NAME = String(255)

clusters = Table(
    "clusters",
    metadata,
    Column("arn", ARN, primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("name", NAME, nullable=False),
    Column("status", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("document", Text, nullable=False),
    UniqueConstraint("account_id", "region", "name", name="uq_clusters_name"),
)

task_definitions = Table(
    "task_definitions",
    metadata,
    Column("arn", ARN, primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("family", NAME, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("status", String(32), nullable=False),
    Column("registered_at", Float, nullable=False),
    Column("registered_by", ARN, nullable=False),
    Column("deregistered_at", Float, nullable=True),
    Column("document", Text, nullable=False),
    UniqueConstraint("account_id", "region", "family", "revision", name="uq_taskdef_revision"),
)

tags = Table(
    "tags",
    metadata,
    Column("resource_arn", ARN, nullable=False),
    Column("key", String(128), nullable=False),
    Column("value", String(256), nullable=False),
    PrimaryKeyConstraint("resource_arn", "key", name="pk_tags"),
)

account_settings = Table(
    "account_settings",
    metadata,
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("principal_arn", ARN, nullable=False),
    Column("name", String(64), nullable=False),
    Column("value", String(64), nullable=False),
    PrimaryKeyConstraint("account_id", "region", "principal_arn", "name", name="pk_settings"),
)

attributes = Table(
    "attributes",
    metadata,
    Column("cluster_arn", ARN, nullable=False),
    Column("target_id", ARN, nullable=False),
    Column("target_type", String(32), nullable=False),
    Column("name", String(128), nullable=False),
    Column("value", String(128), nullable=True),
    PrimaryKeyConstraint("cluster_arn", "target_id", "name", name="pk_attributes"),
)

container_instances = Table(
    "container_instances",
    metadata,
    Column("arn", ARN, primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("cluster_arn", ARN, nullable=False),
    Column("ec2_instance_id", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("registered_at", Float, nullable=False),
    Column("document", Text, nullable=False),
    Index("ix_instances_cluster", "cluster_arn", "status"),
)

# Services and tasks arrive with later issues; their key columns exist now so a
# cluster can report what it holds and refuse deletion while it holds them.
services = Table(
    "services",
    metadata,
    Column("arn", ARN, primary_key=True),
    Column("cluster_arn", ARN, nullable=False),
    Column("name", NAME, nullable=False),
    Column("status", String(32), nullable=False),
    Column("document", Text, nullable=False),
    Index("ix_services_cluster", "cluster_arn", "status"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("arn", ARN, primary_key=True),
    Column("cluster_arn", ARN, nullable=False),
    Column("last_status", String(32), nullable=False),
    Column("desired_status", String(32), nullable=False),
    Column("document", Text, nullable=False),
    Index("ix_tasks_cluster", "cluster_arn", "desired_status"),
)
