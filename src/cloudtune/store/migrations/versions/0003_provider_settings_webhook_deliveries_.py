"""provider settings, webhook deliveries, job logs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 01:22:31.028593
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cloudtune.store.tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_settings",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=True),
        sa.Column("token_ciphertext", sa.Text(), nullable=True),
        sa.Column("updated_at", cloudtune.store.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_settings")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("webhook_id", sa.String(length=255), nullable=False),
        sa.Column("received_at", cloudtune.store.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "webhook_id", name=op.f("pk_webhook_deliveries")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "job_logs",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", cloudtune.store.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.job_id"], name=op.f("fk_job_logs_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_logs")),
    )


def downgrade() -> None:
    op.drop_table("job_logs")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_received_at"))

    op.drop_table("webhook_deliveries")
    op.drop_table("provider_settings")
