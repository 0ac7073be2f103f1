"""One migration history for both databases: upgrade, compare with the models, downgrade."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from cloudtune.store.db import Database, alembic_config
from cloudtune.store.tables import Base


def test_upgrade_matches_the_models_and_downgrades(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], diff
    db.dispose()

    command.downgrade(alembic_config(database_url), "base")
    engine = create_engine(database_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    again = Database(database_url)
    again.migrate()  # and up again on the emptied database
    again.dispose()


def test_jobs_that_publish_are_marked_by_the_upgrade(database_url: str) -> None:
    """0011 backfills `jobs.publishes` from the publish deliveries planned before it."""
    config = alembic_config(database_url)
    command.upgrade(config, "0010")
    engine = create_engine(database_url)
    at = datetime(2026, 11, 24, tzinfo=UTC)
    job = (
        "INSERT INTO jobs (job_id, job_type, provider, status, priority, created_at, updated_at)"
        " VALUES (:job_id, 'cloud', 'replicate', 'completed', 0, :at, :at)"
    )
    delivery = (
        "INSERT INTO job_deliveries (job_id, kind, status, attempts, updated_at)"
        " VALUES (:job_id, :kind, 'done', 1, :at)"
    )
    with engine.begin() as connection:
        for job_id, kind in (("hub-job", "hub"), ("s3-job", "s3"), ("plain-job", "outputs")):
            connection.execute(text(job), {"job_id": job_id, "at": at})
            connection.execute(text(delivery), {"job_id": job_id, "kind": kind, "at": at})
    command.upgrade(config, "head")
    with engine.connect() as connection:
        marked = dict(connection.execute(text("SELECT job_id, publishes FROM jobs")).all())
    engine.dispose()
    assert marked == {"hub-job": True, "s3-job": True, "plain-job": False}
