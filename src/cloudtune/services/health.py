"""Whether this server can answer: its database reached with one query."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from cloudtune import __version__
from cloudtune.services.context import Context


@dataclass(frozen=True, slots=True)
class Health:
    status: str
    version: str
    database: str  # the dialect: sqlite or postgresql
    providers: list[str]


def check(ctx: Context) -> Health:
    with ctx.db.read() as session:
        session.execute(text("SELECT 1"))
    return Health(
        status="healthy",
        version=__version__,
        database=ctx.db.engine.dialect.name,
        providers=ctx.providers.names(),
    )
