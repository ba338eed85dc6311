"""tasks

Revision ID: 0003
Revises: 0002

Tasks get the columns ListTasks filters on and the resources they hold; container
instances get the agent channel's last contact and assignments version. No release
wrote task rows before this one, so the new NOT NULL columns need no defaults.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("container_instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_seen_at", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("assignments_version", sa.BigInteger(), server_default="0", nullable=False)
        )

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("task_definition_arn", sa.String(length=1600), nullable=False)
        )
        batch_op.add_column(
            sa.Column("container_instance_arn", sa.String(length=1600), nullable=True)
        )
        batch_op.add_column(sa.Column("family", sa.String(length=255), nullable=False))
        batch_op.add_column(sa.Column("group_name", sa.String(length=255), nullable=False))
        batch_op.add_column(sa.Column("started_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("launch_type", sa.String(length=32), nullable=False))
        batch_op.add_column(sa.Column("created_at", sa.Float(), nullable=False))
        batch_op.add_column(sa.Column("picked_up_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("reserved", sa.Text(), nullable=False))
        batch_op.create_index(
            "ix_tasks_instance", ["container_instance_arn", "desired_status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_instance")
        batch_op.drop_column("reserved")
        batch_op.drop_column("picked_up_at")
        batch_op.drop_column("created_at")
        batch_op.drop_column("launch_type")
        batch_op.drop_column("started_by")
        batch_op.drop_column("group_name")
        batch_op.drop_column("family")
        batch_op.drop_column("container_instance_arn")
        batch_op.drop_column("task_definition_arn")

    with op.batch_alter_table("container_instances", schema=None) as batch_op:
        batch_op.drop_column("assignments_version")
        batch_op.drop_column("agent_seen_at")
