"""Dependencies shared by the routes: the service context and the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cloudtune.domain.principal import LOCAL_ADMIN, Principal
from cloudtune.services.context import Context


def get_context(request: Request) -> Context:
    return request.app.state.ctx  # type: ignore[no-any-return]


async def get_caller(request: Request) -> Principal:
    # async: FastAPI would run a plain function in the thread pool, a costly hop per request.
    # With no users and a loopback bind every request is the local admin; user accounts and
    # API keys replace this resolver.
    return LOCAL_ADMIN


async def _context_dependency(request: Request) -> Context:
    # async: FastAPI would run a plain function in the thread pool, a costly hop per request.
    return get_context(request)


CtxDep = Annotated[Context, Depends(_context_dependency)]
CallerDep = Annotated[Principal, Depends(get_caller)]
