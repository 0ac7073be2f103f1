"""jobs.publishes: whether a job has a publish target

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("publishes", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    # Jobs that already publish somewhere keep showing it.
    op.execute(
        "UPDATE jobs SET publishes = TRUE WHERE job_id IN "
        "(SELECT job_id FROM job_deliveries WHERE kind IN ('hub', 's3'))"
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("publishes")
