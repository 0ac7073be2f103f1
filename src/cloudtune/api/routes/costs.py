"""/api/cloud/hardware, /api/cloud/metrics/cost-limit, /api/metrics and /metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cloudtune.api.deps import CallerDep, CtxDep, MetricsReaderDep
from cloudtune.api.errors import error_responses
from cloudtune.providers.base import HasHardwareProfiles
from cloudtune.services import costs

router = APIRouter(tags=["costs"], responses=error_responses(400, 401, 403, 408, 413, 422))

# Declared for the schema; the service answers 400 `invalid_filter` outside them.
MetricsDays = Annotated[int, Query(json_schema_extra={"minimum": 1, "maximum": 365})]


@router.get("/api/cloud/hardware")
async def hardware(ctx: CtxDep, caller: CallerDep) -> dict[str, Any]:
    profiles = [
        profile.to_dict()
        for provider in ctx.providers.all()
        if isinstance(provider, HasHardwareProfiles)
        for profile in provider.profiles()
    ]
    return {"hardware": profiles}


@router.get("/api/cloud/metrics/cost-limit")
async def get_cost_limit(ctx: CtxDep, caller: CallerDep) -> dict[str, Any]:
    return await ctx.in_thread(costs.get_cost_limit, ctx, caller)


@router.put("/api/cloud/metrics/cost-limit")
async def put_cost_limit(
    ctx: CtxDep, caller: CallerDep, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    return await ctx.in_thread(costs.update_cost_limit, ctx, caller, body)


@router.get("/api/metrics")
async def metrics(ctx: CtxDep, caller: CallerDep, days: MetricsDays = 30) -> dict[str, Any]:
    return await ctx.in_thread(costs.metrics, ctx, caller, days)


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request, _reader: MetricsReaderDep) -> Response:
    # Counts and costs are not for anonymous eyes: cost.manage or CLOUDTUNE_METRICS_TOKEN.
    registry = request.app.state.metrics.registry
    body = await request.app.state.ctx.in_thread(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
