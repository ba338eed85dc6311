"""room on container instances' pages

Revision ID: 0006
Revises: 0005

Every placement rewrites its instances' documents. On PostgreSQL a row rewritten on
a full page moves to another one and every index of the table gets an entry for it;
with room left on the page (fillfactor 70) the new version stays beside the old one
and the indexes are left alone (a HOT update). Pages written from now on keep the
room; SQLite has no such setting.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE container_instances SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE container_instances RESET (fillfactor)")
