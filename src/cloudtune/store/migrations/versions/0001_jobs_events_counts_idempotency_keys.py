"""jobs, events, counts, idempotency keys

Revision ID: 0001
Revises:
Create Date: 2026-11-23 00:39:24.844179
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cloudtune.store.tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_counts",
        sa.Column("user_key", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("job_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "user_key", "provider", "job_type", "status", name=op.f("pk_job_counts")
        ),
    )
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("job_type", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("config_name", sa.String(length=255), nullable=True),
        sa.Column("tracker_run_name", sa.String(length=255), nullable=True),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("created_at", cloudtune.store.tables.UTCDateTime(), nullable=False),
        sa.Column("updated_at", cloudtune.store.tables.UTCDateTime(), nullable=False),
        sa.Column("queued_at", cloudtune.store.tables.UTCDateTime(), nullable=True),
        sa.Column("started_at", cloudtune.store.tables.UTCDateTime(), nullable=True),
        sa.Column("completed_at", cloudtune.store.tables.UTCDateTime(), nullable=True),
        sa.Column("hardware_type", sa.String(length=128), nullable=True),
        sa.Column("hardware_profile", sa.String(length=64), nullable=True),
        sa.Column("price_per_hour_micros", sa.BigInteger(), nullable=True),
        sa.Column("estimated_cost_micros", sa.BigInteger(), nullable=True),
        sa.Column("cost_micros", sa.BigInteger(), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("output_url", sa.Text(), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=True),
        sa.Column("queue_position", sa.Integer(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("config_snapshot", sa.JSON(), nullable=True),
        sa.Column("provider_ref", sa.String(length=255), nullable=True),
        sa.Column("provider_data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_created_at_job_id", ["created_at", "job_id"], unique=False)
        batch_op.create_index(
            "ix_jobs_provider_created_at", ["provider", "created_at"], unique=False
        )
        batch_op.create_index("ix_jobs_provider_ref", ["provider", "provider_ref"], unique=False)
        batch_op.create_index("ix_jobs_status_created_at", ["status", "created_at"], unique=False)
        batch_op.create_index(
            "ix_jobs_user_id_created_at", ["user_id", "created_at"], unique=False
        )

    op.create_table(
        "idempotency_keys",
        sa.Column("user_key", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", cloudtune.store.tables.UTCDateTime(), nullable=False),
        sa.Column("expires_at", cloudtune.store.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.job_id"],
            name=op.f("fk_idempotency_keys_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_key", "key", name=op.f("pk_idempotency_keys")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_keys_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_idempotency_keys_job_id"), ["job_id"], unique=False)

    op.create_table(
        "job_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("at", cloudtune.store.tables.UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.job_id"], name=op.f("fk_job_events_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_events")),
    )
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_events_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_events_job_id"))

    op.drop_table("job_events")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_job_id"))
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_expires_at"))

    op.drop_table("idempotency_keys")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_user_id_created_at")
        batch_op.drop_index("ix_jobs_status_created_at")
        batch_op.drop_index("ix_jobs_provider_ref")
        batch_op.drop_index("ix_jobs_provider_created_at")
        batch_op.drop_index("ix_jobs_created_at_job_id")

    op.drop_table("jobs")
    op.drop_table("job_counts")
