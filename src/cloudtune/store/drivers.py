"""A clear error, at start, when the database URL names a driver this installation lacks.

PostgreSQL's driver is the `postgres` extra (`pip install 'cloudtune[postgres]'`); without it
SQLAlchemy would fail deep inside the first connection with a bare ModuleNotFoundError.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

POSTGRES_DRIVER = "psycopg"
INSTALL_HINT = "pip install 'cloudtune[postgres]'"


class MissingDriverError(RuntimeError):
    """The configured database cannot be reached from this installation."""


def require_driver(url: str) -> None:
    """Raise MissingDriverError (naming backend and driver, never the URL, which may carry a
    password) if the URL's database driver cannot be imported."""
    parsed = make_url(url)
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    try:
        parsed.get_dialect().import_dbapi()
    except ImportError:
        pass
    else:
        return
    if backend != "postgresql":
        raise MissingDriverError(
            f"the database URL names {backend} through the {driver} driver, which is not installed"
        )
    if driver != POSTGRES_DRIVER:
        raise MissingDriverError(
            f"the database URL names PostgreSQL through the {driver} driver, which is not "
            f"installed; write postgresql+{POSTGRES_DRIVER}://… and install the postgres "
            f"extra ({INSTALL_HINT})"
        )
    raise MissingDriverError(
        "the database URL names PostgreSQL, but its driver (psycopg) is not installed: "
        f"install the postgres extra ({INSTALL_HINT})"
    )
