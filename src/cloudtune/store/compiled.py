"""Statements compiled once per dialect and shape, run as driver SQL, with rows converted by hand.

For the hottest reads (the job list, its total, one job): building a wide SELECT, computing its
cache key and running SQLAlchemy's per-value result processors cost several times the query
itself on SQLite (bench/RESULTS.md). A `RowReader` does the two conversions those column types
do: UTC datetimes (ISO text without an offset on SQLite, naive timestamps on PostgreSQL) and
JSON documents (text on SQLite; the driver parses them on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import JSON, Column, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from cloudtune.store.tables import UTCDateTime


class Compiled(NamedTuple):
    sql: str
    positions: tuple[str, ...] | None  # parameter names in order, for positional drivers
    constants: dict[str, Any]  # values the statement holds itself (literals such as a 0)


_statements: dict[tuple[str, Hashable], Compiled] = {}
_readers: dict[tuple[str, Hashable], RowReader] = {}


def run(
    session: Session,
    shape: Hashable,
    build: Callable[[], Select[Any]],
    params: Mapping[str, Any],
) -> Sequence[Any]:
    """The rows, as the driver returns them, of the statement `build` makes (built and compiled
    once per dialect and `shape`), in the session's transaction."""
    connection = session.connection()
    dialect = connection.dialect
    statement = _statements.get((dialect.name, shape))
    if statement is None:
        done = build().compile(dialect=dialect)
        positions = tuple(done.positiontup or ()) if dialect.positional else None
        constants = {k: v for k, v in done.params.items() if v is not None}
        statement = Compiled(done.string, positions, constants)
        _statements[(dialect.name, shape)] = statement
    values = {**statement.constants, **params}
    args: Any = (
        tuple(values[name] for name in statement.positions)
        if statement.positions is not None
        else values
    )
    # The driver's own cursor, in the session's transaction: SQLAlchemy's result object would
    # cost as much as the query.
    cursor = connection.connection.cursor()
    try:
        cursor.execute(statement.sql, args)
        return cursor.fetchall()
    finally:
        cursor.close()


def reader(session: Session, shape: Hashable, columns: Sequence[Column[Any]]) -> RowReader:
    dialect = session.get_bind().dialect
    found = _readers.get((dialect.name, shape))
    if found is None:
        found = _readers[(dialect.name, shape)] = RowReader(columns, dialect)
    return found


class RowReader:
    """Driver rows of `columns` as mappings holding what the column types would give."""

    def __init__(self, columns: Sequence[Column[Any]], dialect: Dialect) -> None:
        self.names = tuple(c.name for c in columns)
        converters: list[Callable[[Any], Any] | None] = []
        for column in columns:
            if isinstance(column.type, UTCDateTime):
                converters.append(_utc)
            elif isinstance(column.type, JSON) and dialect.name == "sqlite":
                converters.append(orjson.loads)
            else:
                converters.append(None)
        self.converters = tuple(converters)

    def __call__(self, row: Sequence[Any]) -> dict[str, Any]:
        return {
            name: value if convert is None or value is None else convert(value)
            for name, convert, value in zip(self.names, self.converters, row, strict=True)
        }


def _utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        try:
            # SQLite holds naive UTC text; parsing it with its offset is 7x faster than
            # replacing the tzinfo afterwards.
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:
            value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
