"""storage credentials and job deliveries

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cloudtune.store.tables

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "storage_credentials",
        sa.Column("access_key_id", sa.String(length=64), nullable=False),
        sa.Column("secret_ciphertext", sa.Text(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("prefix", sa.String(length=1024), nullable=False),
        sa.Column("can_write", sa.Boolean(), nullable=False),
        sa.Column("created_at", cloudtune.store.tables.UTCDateTime(), nullable=False),
        sa.Column("expires_at", cloudtune.store.tables.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", cloudtune.store.tables.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.job_id"],
            name=op.f("fk_storage_credentials_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("access_key_id", name=op.f("pk_storage_credentials")),
    )
    with op.batch_alter_table("storage_credentials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_storage_credentials_job_id"), ["job_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_storage_credentials_user_id"), ["user_id"], unique=False
        )
    op.create_table(
        "job_deliveries",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=True),
        sa.Column("updated_at", cloudtune.store.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.job_id"],
            name=op.f("fk_job_deliveries_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "kind", name=op.f("pk_job_deliveries")),
    )


def downgrade() -> None:
    op.drop_table("job_deliveries")
    with op.batch_alter_table("storage_credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_storage_credentials_user_id"))
        batch_op.drop_index(batch_op.f("ix_storage_credentials_job_id"))
    op.drop_table("storage_credentials")
