"""job leases and cancel requests

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 21:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cloudtune.store.tables

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_leases",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("expires_at", cloudtune.store.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.job_id"],
            name=op.f("fk_job_leases_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_leases")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cancel_requested_at", cloudtune.store.tables.UTCDateTime(), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_jobs_cancel_requested_at"), ["cancel_requested_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_cancel_requested_at"))
        batch_op.drop_column("cancel_requested_at")
    op.drop_table("job_leases")
