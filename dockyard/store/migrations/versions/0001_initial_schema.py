"""initial schema

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_settings",
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("principal_arn", sa.String(length=1600), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint(
            "account_id", "region", "principal_arn", "name", name="pk_settings"
        ),
    )
    op.create_table(
        "attributes",
        sa.Column("cluster_arn", sa.String(length=1600), nullable=False),
        sa.Column("target_id", sa.String(length=1600), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("cluster_arn", "target_id", "name", name="pk_attributes"),
    )
    op.create_table(
        "clusters",
        sa.Column("arn", sa.String(length=1600), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("arn"),
        sa.UniqueConstraint("account_id", "region", "name", name="uq_clusters_name"),
    )
    op.create_table(
        "container_instances",
        sa.Column("arn", sa.String(length=1600), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("cluster_arn", sa.String(length=1600), nullable=False),
        sa.Column("ec2_instance_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("registered_at", sa.Float(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("arn"),
    )
    with op.batch_alter_table("container_instances", schema=None) as batch_op:
        batch_op.create_index("ix_instances_cluster", ["cluster_arn", "status"], unique=False)

    op.create_table(
        "services",
        sa.Column("arn", sa.String(length=1600), nullable=False),
        sa.Column("cluster_arn", sa.String(length=1600), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("arn"),
    )
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.create_index("ix_services_cluster", ["cluster_arn", "status"], unique=False)

    op.create_table(
        "tags",
        sa.Column("resource_arn", sa.String(length=1600), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("resource_arn", "key", name="pk_tags"),
    )
    op.create_table(
        "task_definitions",
        sa.Column("arn", sa.String(length=1600), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("family", sa.String(length=255), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("registered_at", sa.Float(), nullable=False),
        sa.Column("registered_by", sa.String(length=1600), nullable=False),
        sa.Column("deregistered_at", sa.Float(), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("arn"),
        sa.UniqueConstraint(
            "account_id", "region", "family", "revision", name="uq_taskdef_revision"
        ),
    )
    op.create_table(
        "tasks",
        sa.Column("arn", sa.String(length=1600), nullable=False),
        sa.Column("cluster_arn", sa.String(length=1600), nullable=False),
        sa.Column("last_status", sa.String(length=32), nullable=False),
        sa.Column("desired_status", sa.String(length=32), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("arn"),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_cluster", ["cluster_arn", "desired_status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_cluster")

    op.drop_table("tasks")
    op.drop_table("task_definitions")
    op.drop_table("tags")
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_index("ix_services_cluster")

    op.drop_table("services")
    with op.batch_alter_table("container_instances", schema=None) as batch_op:
        batch_op.drop_index("ix_instances_cluster")

    op.drop_table("container_instances")
    op.drop_table("clusters")
    op.drop_table("attributes")
    op.drop_table("account_settings")
