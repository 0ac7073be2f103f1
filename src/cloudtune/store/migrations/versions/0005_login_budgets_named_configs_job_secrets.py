"""login budgets, named config owners and secrets, job secrets

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cloudtune.store.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_budgets",
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_budgets")),
    )
    op.create_table(
        "named_configs",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("owner_user_id", sa.String(length=64), nullable=True),
        sa.Column("secrets_ciphertext", sa.Text(), nullable=True),
        sa.Column("created_at", cloudtune.store.tables.UTCDateTime(), nullable=False),
        sa.Column("updated_at", cloudtune.store.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_named_configs")),
    )
    op.create_index(
        op.f("ix_named_configs_owner_user_id"), "named_configs", ["owner_user_id"], unique=False
    )
    op.create_table(
        "job_secrets",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.job_id"],
            name=op.f("fk_job_secrets_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_secrets")),
    )


def downgrade() -> None:
    op.drop_table("job_secrets")
    op.drop_index(op.f("ix_named_configs_owner_user_id"), table_name="named_configs")
    op.drop_table("named_configs")
    op.drop_table("login_budgets")
