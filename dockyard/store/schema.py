"""The tables. Alembic migrations in ``migrations/versions`` create and change them.

JSON documents are stored as text (orjson), timestamps as epoch seconds, so the same
schema runs on SQLite and PostgreSQL without dialect types.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
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
    # Rises with every write of what placement reads of the cluster's instances.
    Column("placement_version", BigInteger, nullable=False, server_default="0"),
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
    # Columns, not document keys: polls and placements update them concurrently.
    Column("agent_seen_at", Float, nullable=True),
    Column("assignments_version", BigInteger, nullable=False, server_default="0"),
    Index("ix_instances_cluster", "cluster_arn", "status"),
)

# A service's configuration is its document (wire names); ``state`` is what its
# reconciler remembers between runs (throttle, steady state); ``version`` rises with
# every write so the loop can tell that a plan was made on an old read.
services = Table(
    "services",
    metadata,
    Column("arn", ARN, primary_key=True),
    Column("cluster_arn", ARN, nullable=False),
    Column("name", NAME, nullable=False),
    Column("status", String(32), nullable=False),
    Column("document", Text, nullable=False),
    Column("account_id", String(12), nullable=False, server_default=""),
    Column("region", String(32), nullable=False, server_default=""),
    Column("created_at", Float, nullable=False, server_default="0"),
    Column("updated_at", Float, nullable=False, server_default="0"),
    Column("state", Text, nullable=False, server_default="{}"),
    Column("version", BigInteger, nullable=False, server_default="0"),
    Index("ix_services_cluster", "cluster_arn", "status"),
)

service_deployments = Table(
    "service_deployments",
    metadata,
    Column("service_arn", ARN, nullable=False),
    Column("id", String(64), nullable=False),  # ecs-svc/NNNNNNNNNNNNNNNNNNN
    Column("status", String(32), nullable=False),  # PRIMARY | ACTIVE | INACTIVE
    Column("task_definition_arn", ARN, nullable=False),
    Column("desired_count", Integer, nullable=False),
    Column("rollout_state", String(32), nullable=False),
    Column("rollout_reason", Text, nullable=False),
    Column("failed_tasks", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("document", Text, nullable=False),  # the service revision and wire extras
    PrimaryKeyConstraint("service_arn", "id", name="pk_service_deployments"),
)

service_events = Table(
    "service_events",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("service_arn", ARN, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_service_events_service", "service_arn", "created_at"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("arn", ARN, primary_key=True),
    Column("cluster_arn", ARN, nullable=False),
    Column("task_definition_arn", ARN, nullable=False),
    Column("container_instance_arn", ARN, nullable=True),
    Column("family", NAME, nullable=False),
    Column("group_name", NAME, nullable=False),  # ECS's "group"; a reserved word in SQL
    Column("started_by", String(128), nullable=True),
    Column("launch_type", String(32), nullable=False),
    Column("last_status", String(32), nullable=False),
    Column("desired_status", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("picked_up_at", Float, nullable=True),
    Column("reserved", Text, nullable=False),  # the resources it holds on its instance
    Column("document", Text, nullable=False),
    Index("ix_tasks_cluster", "cluster_arn", "desired_status"),
    Index("ix_tasks_instance", "container_instance_arn", "desired_status"),
    Index("ix_tasks_group", "cluster_arn", "group_name"),
)

# The registry (ECR repositories and OCI content). Blob bytes live in the storage
# driver; these tables say which repository holds what.

repositories = Table(
    "repositories",
    metadata,
    Column("arn", ARN, primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("name", NAME, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("document", Text, nullable=False),  # mutability, scanning, encryption, policies
    UniqueConstraint("account_id", "region", "name", name="uq_repositories_name"),
)

images = Table(
    "images",
    metadata,
    Column("repository_arn", ARN, nullable=False),
    Column("digest", String(100), nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("artifact_type", String(255), nullable=True),
    Column("subject_digest", String(100), nullable=True),  # for the referrers API
    Column("size", BigInteger, nullable=False),  # manifest + config + layers, as ECR reports
    Column("pushed_at", Float, nullable=False),
    Column("last_pulled_at", Float, nullable=True),
    Column("manifest", LargeBinary, nullable=False),  # the exact bytes pushed
    PrimaryKeyConstraint("repository_arn", "digest", name="pk_images"),
    Index("ix_images_subject", "repository_arn", "subject_digest"),
)

image_tags = Table(
    "image_tags",
    metadata,
    Column("repository_arn", ARN, nullable=False),
    Column("tag", String(128), nullable=False),
    Column("digest", String(100), nullable=False),
    Column("tagged_at", Float, nullable=False),
    PrimaryKeyConstraint("repository_arn", "tag", name="pk_image_tags"),
    Index("ix_image_tags_digest", "repository_arn", "digest"),
)

# What a manifest refers to: layers and config (kind "blob"), or child manifests of an
# index (kind "manifest"). Garbage collection and deletes follow these edges.
image_references = Table(
    "image_references",
    metadata,
    Column("repository_arn", ARN, nullable=False),
    Column("digest", String(100), nullable=False),
    Column("child_digest", String(100), nullable=False),
    Column("kind", String(16), nullable=False),
    PrimaryKeyConstraint("repository_arn", "digest", "child_digest", name="pk_image_refs"),
    Index("ix_image_refs_child", "child_digest"),
)

# Blobs known to the registry, and which repositories may serve them.
blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(100), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("media_type", String(255), nullable=True),
    Column("created_at", Float, nullable=False),
)

repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column("repository_arn", ARN, nullable=False),
    Column("digest", String(100), nullable=False),
    Column("linked_at", Float, nullable=False),
    PrimaryKeyConstraint("repository_arn", "digest", name="pk_repository_blobs"),
    Index("ix_repository_blobs_digest", "digest"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("repository_arn", ARN, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("size", BigInteger, nullable=False),
)
