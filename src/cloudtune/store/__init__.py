"""Persistence: SQLAlchemy tables, queries per aggregate, Alembic migrations."""
