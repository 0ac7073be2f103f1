"""One migration history for both databases: upgrade, compare with the models, downgrade."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

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
