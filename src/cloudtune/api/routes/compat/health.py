"""Health aliases and GET /api/auth/check, in the reference server's shapes."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter
from pydantic import BaseModel

from cloudtune.api.deps import CallerDep, CtxDep
from cloudtune.api.errors import route_errors
from cloudtune.api.schemas import HealthResponse
from cloudtune.domain.principal import ALL_PERMISSIONS
from cloudtune.services import health as health_service
from cloudtune.services import users

router = APIRouter(tags=["compatibility"])


class LiveResponse(BaseModel):
    status: str


class AuthCheck(BaseModel):
    authenticated: bool
    user_id: str | None
    username: str
    is_admin: bool


@router.get("/api/cloud/health", response_model=HealthResponse, responses=route_errors())
@router.get("/health/ready", response_model=HealthResponse, responses=route_errors())
def ready(ctx: CtxDep) -> HealthResponse:
    """The same check as `/health`: the database answers one query."""
    return HealthResponse(**dataclasses.asdict(health_service.check(ctx)))


@router.get("/health/live", response_model=LiveResponse, responses=route_errors())
def live() -> LiveResponse:
    """The process answers; nothing else is asked (a liveness probe must not fail when only
    the database is slow)."""
    return LiveResponse(status="healthy")


@router.get("/api/auth/check", response_model=AuthCheck, responses=route_errors(401))
async def check(ctx: CtxDep, caller: CallerDep) -> AuthCheck:
    """Who the credentials are; without valid ones, 401 like every authenticated route."""
    user = await ctx.in_thread(users.current_user, ctx, caller)
    return AuthCheck(
        authenticated=True,
        user_id=user.id,
        username=user.username,
        is_admin=frozenset(user.permissions) >= ALL_PERMISSIONS,
    )
