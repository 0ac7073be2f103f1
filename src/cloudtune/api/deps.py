"""Dependencies shared by the routes: the service context and the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cloudtune.domain.principal import LOCAL_ADMIN, Principal
from cloudtune.services.context import Context


def get_context(request: Request) -> Context:
    return request.app.state.ctx  # type: ignore[no-any-return]


def get_caller(request: Request) -> Principal:
    # With no users and a loopback bind every request is the local admin; user accounts and
    # API keys replace this resolver.
    return LOCAL_ADMIN


CtxDep = Annotated[Context, Depends(get_context)]
CallerDep = Annotated[Principal, Depends(get_caller)]
