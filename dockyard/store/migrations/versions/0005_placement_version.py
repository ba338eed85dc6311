"""placement version

Revision ID: 0005
Revises: 0004

Clusters get a placement version: it rises in the same transaction as every write of
what placement reads of the cluster's instances (their documents, status, attributes,
the tasks they hold), so RunTask can tell with one row whether anything but its own
placements changed since its last read of the cluster.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("placement_version", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.drop_column("placement_version")
