"""services

Revision ID: 0004
Revises: 0003

Services get their account, region, times, reconciler state and a version; their
deployments and events get tables; tasks get an index to find a service's tasks.
No release wrote service rows before this one.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("account_id", sa.String(length=12), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("region", sa.String(length=32), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("created_at", sa.Float(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("updated_at", sa.Float(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("state", sa.Text(), server_default="{}", nullable=False))
        batch_op.add_column(
            sa.Column("version", sa.BigInteger(), server_default="0", nullable=False)
        )

    op.create_table(
        "service_deployments",
        sa.Column("service_arn", sa.String(length=1600), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("task_definition_arn", sa.String(length=1600), nullable=False),
        sa.Column("desired_count", sa.Integer(), nullable=False),
        sa.Column("rollout_state", sa.String(length=32), nullable=False),
        sa.Column("rollout_reason", sa.Text(), nullable=False),
        sa.Column("failed_tasks", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("service_arn", "id", name="pk_service_deployments"),
    )
    op.create_table(
        "service_events",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("service_arn", sa.String(length=1600), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_service_events_service", "service_events", ["service_arn", "created_at"], unique=False
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_group", ["cluster_arn", "group_name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_group")
    op.drop_index("ix_service_events_service", table_name="service_events")
    op.drop_table("service_events")
    op.drop_table("service_deployments")
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_column("version")
        batch_op.drop_column("state")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("created_at")
        batch_op.drop_column("region")
        batch_op.drop_column("account_id")
