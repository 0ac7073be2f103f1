"""/api/cloud/hardware, /api/cloud/metrics/cost-limit, /api/metrics and /metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from cloudtune.api.deps import CallerDep, CtxDep, MetricsReaderDep
from cloudtune.api.errors import route_errors
from cloudtune.api.schemas import HardwareList, hardware_out
from cloudtune.domain.costs import micros_to_usd
from cloudtune.services import costs, providers

router = APIRouter(tags=["costs"])

# Declared for the schema; the service answers 400 `invalid_filter` outside them.
MetricsDays = Annotated[int, Query(json_schema_extra={"minimum": 1, "maximum": 365})]


class CostLimitResponse(BaseModel):
    enabled: bool
    limit_usd: float
    period: str
    action: str
    spent_usd: float
    remaining_usd: float
    period_start: str
    period_end: str
    exceeded: bool


class CostLimitUpdated(CostLimitResponse):
    success: bool = True


class DayCostsOut(BaseModel):
    date: str
    jobs: int
    completed: int
    failed: int
    cancelled: int
    cost_usd: float
    # The reference server's names for the same day: `total_jobs` is `jobs`, `total_cost_usd`
    # is `cost_usd`, and the jobs split by where they ran.
    total_jobs: int
    local_jobs: int
    cloud_jobs: int
    total_cost_usd: float


class MetricsResponse(BaseModel):
    period_days: int
    jobs_by_status: dict[str, int]
    jobs_by_provider: dict[str, int]
    job_count: int
    success_rate: float | None
    total_cost_usd: float
    cost_by_day: list[DayCostsOut]
    avg_duration_seconds: float | None
    avg_queue_wait_seconds: float | None
    spend_this_period_usd: float
    cost_limit_period: str
    # The reference server's names: `total_cost` is `total_cost_usd` (the window's real spend),
    # `avg_job_duration_seconds` is `avg_duration_seconds`. No provider tells a credit balance,
    # so it and the jobs it would pay for are unknown: null, never a made-up number.
    total_cost: float
    avg_job_duration_seconds: float | None
    credit_balance: float | None = None
    estimated_jobs_remaining: int | None = None


@router.get("/api/cloud/hardware", response_model=HardwareList, responses=route_errors(401))
async def hardware(ctx: CtxDep, caller: CallerDep) -> HardwareList:
    profiles = providers.list_hardware(ctx, caller)
    return HardwareList(hardware=[hardware_out(p) for p in profiles])


@router.get(
    "/api/cloud/metrics/cost-limit",
    response_model=CostLimitResponse,
    responses=route_errors(401),
)
async def get_cost_limit(ctx: CtxDep, caller: CallerDep) -> CostLimitResponse:
    limit = await ctx.in_thread(costs.get_cost_limit, ctx, caller)
    return CostLimitResponse(**_limit_fields(limit))


@router.put(
    "/api/cloud/metrics/cost-limit",
    response_model=CostLimitUpdated,
    responses=route_errors(401, 422),
)
async def put_cost_limit(
    ctx: CtxDep, caller: CallerDep, body: Annotated[dict[str, Any], Body()]
) -> CostLimitUpdated:
    limit = await ctx.in_thread(costs.update_cost_limit, ctx, caller, body)
    return CostLimitUpdated(**_limit_fields(limit))


@router.get("/api/metrics", response_model=MetricsResponse, responses=route_errors(401, 422))
async def metrics(ctx: CtxDep, caller: CallerDep, days: MetricsDays = 30) -> MetricsResponse:
    found = await ctx.in_thread(costs.metrics, ctx, caller, days)
    return metrics_out(found)


def metrics_out(found: costs.Metrics) -> MetricsResponse:
    total = micros_to_usd(found.total_cost_micros)
    return MetricsResponse(
        period_days=found.period_days,
        jobs_by_status=found.jobs_by_status,
        jobs_by_provider=found.jobs_by_provider,
        job_count=found.job_count,
        success_rate=found.success_rate,
        total_cost_usd=total,
        cost_by_day=[
            DayCostsOut(
                date=day.date.isoformat(),
                jobs=day.jobs,
                completed=day.completed,
                failed=day.failed,
                cancelled=day.cancelled,
                cost_usd=micros_to_usd(day.cost_micros),
                total_jobs=day.jobs,
                local_jobs=day.local_jobs,
                cloud_jobs=day.cloud_jobs,
                total_cost_usd=micros_to_usd(day.cost_micros),
            )
            for day in found.cost_by_day
        ],
        avg_duration_seconds=found.avg_duration_seconds,
        avg_queue_wait_seconds=found.avg_queue_wait_seconds,
        spend_this_period_usd=micros_to_usd(found.spend_this_period_micros),
        cost_limit_period=found.cost_limit_period.value,
        total_cost=total,
        avg_job_duration_seconds=found.avg_duration_seconds,
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request, _reader: MetricsReaderDep) -> Response:
    # Counts and costs are not for anonymous eyes: cost.manage or CLOUDTUNE_METRICS_TOKEN.
    registry = request.app.state.metrics.registry
    body = await request.app.state.ctx.in_thread(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _limit_fields(limit: costs.CostLimit) -> dict[str, Any]:
    return {
        "enabled": limit.enabled,
        "limit_usd": micros_to_usd(limit.limit_micros),
        "period": limit.period.value,
        "action": limit.action,
        "spent_usd": micros_to_usd(limit.spent_micros),
        "remaining_usd": micros_to_usd(limit.remaining_micros),
        "period_start": limit.period_start.isoformat(),
        "period_end": limit.period_end.isoformat(),
        "exceeded": limit.exceeded,
    }
