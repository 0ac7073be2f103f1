"""Health: answers without credentials."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from cloudtune import __version__
from cloudtune.api.deps import CtxDep
from cloudtune.api.errors import error_responses
from cloudtune.api.schemas import HealthResponse

router = APIRouter(tags=["health"], responses=error_responses(400, 403))


@router.get("/health", response_model=HealthResponse)
def health(ctx: CtxDep) -> HealthResponse:
    with ctx.db.read() as session:
        session.execute(text("SELECT 1"))
    return HealthResponse(
        status="healthy",
        version=__version__,
        database=ctx.db.engine.dialect.name,
        providers=ctx.providers.names(),
    )
