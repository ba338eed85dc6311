"""registry

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_table(
        "image_references",
        sa.Column("repository_arn", sa.String(length=1600), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("child_digest", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("repository_arn", "digest", "child_digest", name="pk_image_refs"),
    )
    with op.batch_alter_table("image_references", schema=None) as batch_op:
        batch_op.create_index("ix_image_refs_child", ["child_digest"], unique=False)

    op.create_table(
        "image_tags",
        sa.Column("repository_arn", sa.String(length=1600), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("tagged_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("repository_arn", "tag", name="pk_image_tags"),
    )
    with op.batch_alter_table("image_tags", schema=None) as batch_op:
        batch_op.create_index("ix_image_tags_digest", ["repository_arn", "digest"], unique=False)

    op.create_table(
        "images",
        sa.Column("repository_arn", sa.String(length=1600), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("media_type", sa.String(length=255), nullable=False),
        sa.Column("artifact_type", sa.String(length=255), nullable=True),
        sa.Column("subject_digest", sa.String(length=100), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("pushed_at", sa.Float(), nullable=False),
        sa.Column("last_pulled_at", sa.Float(), nullable=True),
        sa.Column("manifest", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("repository_arn", "digest", name="pk_images"),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(
            "ix_images_subject", ["repository_arn", "subject_digest"], unique=False
        )

    op.create_table(
        "repositories",
        sa.Column("arn", sa.String(length=1600), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("arn"),
        sa.UniqueConstraint("account_id", "region", "name", name="uq_repositories_name"),
    )
    op.create_table(
        "repository_blobs",
        sa.Column("repository_arn", sa.String(length=1600), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("linked_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("repository_arn", "digest", name="pk_repository_blobs"),
    )
    with op.batch_alter_table("repository_blobs", schema=None) as batch_op:
        batch_op.create_index("ix_repository_blobs_digest", ["digest"], unique=False)

    op.create_table(
        "uploads",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("repository_arn", sa.String(length=1600), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("uploads")
    with op.batch_alter_table("repository_blobs", schema=None) as batch_op:
        batch_op.drop_index("ix_repository_blobs_digest")

    op.drop_table("repository_blobs")
    op.drop_table("repositories")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index("ix_images_subject")

    op.drop_table("images")
    with op.batch_alter_table("image_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_image_tags_digest")

    op.drop_table("image_tags")
    with op.batch_alter_table("image_references", schema=None) as batch_op:
        batch_op.drop_index("ix_image_refs_child")

    op.drop_table("image_references")
    op.drop_table("blobs")
