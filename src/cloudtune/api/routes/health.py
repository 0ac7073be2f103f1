"""Health: answers without credentials."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter

from cloudtune.api.deps import CtxDep
from cloudtune.api.errors import route_errors
from cloudtune.api.schemas import HealthResponse
from cloudtune.services import health as health_service

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse, responses=route_errors())
def health(ctx: CtxDep) -> HealthResponse:
    return HealthResponse(**dataclasses.asdict(health_service.check(ctx)))
