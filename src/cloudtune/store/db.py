"""Engine, sessions and start-up migrations for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from cloudtune.store.drivers import require_driver

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every replica that migrates this database.
_MIGRATION_LOCK_ID = 0x636C6F75


class Database:
    """One engine, with a session factory for reads and one for writes.

    On SQLite, write transactions start with BEGIN IMMEDIATE so that concurrent writers queue on
    the busy timeout instead of failing with "database is locked" when a read lock is upgraded.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            kwargs["pool_size"] = 20
            kwargs["max_overflow"] = 40
        else:
            kwargs["pool_size"] = 20
            kwargs["max_overflow"] = 40
            kwargs["pool_pre_ping"] = True
        require_driver(url)  # a clear error rather than SQLAlchemy's ImportError
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine)
        self._read = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._write = sessionmaker(writer, expire_on_commit=False, autoflush=False)
        # Bumped after every committed write transaction of this process; read caches tag
        # what they hold with it.
        self.write_version = 0
        self._peek: sqlite3.Connection | None = None
        database = make_url(url).database if self.is_sqlite else None
        self._peek_path = database if database and database != ":memory:" else None
        self._peek_lock = threading.Lock()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        try:
            with self._write() as session, session.begin():
                yield session
        finally:
            # Also after a failed transaction: it may have committed before failing to close.
            self.write_version += 1

    def migrate(self) -> None:
        """Bring the schema to the newest revision (under an advisory lock on PostgreSQL)."""
        self._owner_only()
        with self.engine.connect() as connection:
            if not self.is_sqlite:
                connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_ID})
            try:
                config = alembic_config(self.url)
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            finally:
                if not self.is_sqlite:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_ID}
                    )
                    connection.commit()

    def peek_scalar(self, sql: str) -> Any:
        """One value from a tiny read, on SQLite only, through a connection of its own kept
        open in autocommit (each statement sees the latest commit of any process): a few
        microseconds, cheap enough to run on the event loop. None on other databases, or
        when the read fails."""
        if self._peek_path is None:
            return None
        with self._peek_lock:
            try:
                if self._peek is None:
                    self._peek = sqlite3.connect(
                        self._peek_path,
                        check_same_thread=False,
                        isolation_level=None,
                        timeout=0.05,
                    )
                row = self._peek.execute(sql).fetchone()
            except sqlite3.Error:
                return None
        return row[0] if row else None

    def dispose(self) -> None:
        with self._peek_lock:
            if self._peek is not None:
                self._peek.close()
                self._peek = None
        self.engine.dispose()

    def _owner_only(self) -> None:
        """A SQLite file holds password and key hashes and encrypted secrets: readable by the
        server's user alone. SQLite gives its -wal and -shm files the database file's mode."""
        database = make_url(self.url).database if self.is_sqlite else None
        if not database or database == ":memory:":
            return
        path = Path(database)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN itself (the driver's own
        # transaction handling cannot do BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin")
        connection.exec_driver_sql(f"BEGIN {mode}" if mode else "BEGIN")
