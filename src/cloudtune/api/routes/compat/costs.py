"""Costs in the reference server's shapes: its metrics path, the cost-limit verdict, the
hardware options and the cost estimate, answered by the services our own cost routes use.
Unlike the reference server, every one of them asks for the same credentials as /api/metrics
or /api/cloud/hardware: spend and prices are not for anonymous callers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel

from cloudtune.api.deps import CallerDep, CtxDep
from cloudtune.api.errors import route_errors
from cloudtune.api.routes.costs import MetricsDays, MetricsResponse, metrics_out
from cloudtune.domain.costs import MICROS_PER_USD, SECONDS_PER_HOUR, micros_to_usd
from cloudtune.domain.principal import Principal
from cloudtune.services import cost_estimates, costs
from cloudtune.services.context import Context

router = APIRouter(tags=["compatibility"])

HARDWARE_MESSAGE = (
    "Choose a profile per job with hardware_profile (and ?provider=) when submitting; prices "
    "per hour come from this server's settings."
)


class CostLimitStatusResponse(BaseModel):
    enabled: bool
    limit_amount: float | None
    period: str
    action: str
    current_spend: float
    percent_used: float
    is_exceeded: bool
    is_warning: bool
    message: str | None


class HardwareOption(BaseModel):
    id: str
    name: str
    provider: str
    cost_per_second: float
    cost_per_hour: float
    available: bool


class HardwareOptionsResponse(BaseModel):
    hardware: list[HardwareOption]
    default_hardware: str | None
    message: str


class CostEstimateResponse(BaseModel):
    has_estimate: bool
    estimated_cost_usd: float | None
    avg_duration_seconds: float | None
    hardware_cost_per_hour: float | None
    data_size_mb: float | None
    message: str
    provider: str
    hardware_profile: str | None
    steps: int | None
    steps_per_second: float | None


ProviderParam = Annotated[str | None, Query(description="Ignored beyond a check: one limit.")]
EstimateProvider = Annotated[str | None, Query(description="The default provider if omitted.")]
ConfigName = Annotated[str | None, Query(description="A saved config to estimate.")]
HardwareProfileParam = Annotated[str | None, Query(description="The provider's default if none.")]


@router.get("/api/cloud/metrics", response_model=MetricsResponse, responses=route_errors(401, 422))
async def cloud_metrics(ctx: CtxDep, caller: CallerDep, days: MetricsDays = 30) -> MetricsResponse:
    """The same answer as /api/metrics."""
    return metrics_out(await ctx.in_thread(costs.metrics, ctx, caller, days))


@router.get(
    "/api/cloud/cost-limit/status",
    response_model=CostLimitStatusResponse,
    responses=route_errors(401),
)
@router.get(
    "/api/metrics/cost-limit/status",
    response_model=CostLimitStatusResponse,
    responses=route_errors(401),
)
async def cost_limit_status(
    ctx: CtxDep, caller: CallerDep, provider: ProviderParam = None
) -> CostLimitStatusResponse:
    """The limit of /api/cloud/metrics/cost-limit, judged. The limit is one for every provider;
    `?provider=` is checked to name one and changes nothing."""
    status = await ctx.in_thread(costs.cost_limit_status, ctx, caller, provider)
    return CostLimitStatusResponse(
        enabled=status.enabled,
        limit_amount=micros_to_usd(status.limit_micros),
        period=status.period.value,
        action=status.action,
        current_spend=micros_to_usd(status.spent_micros),
        percent_used=status.percent_used,
        is_exceeded=status.is_exceeded,
        is_warning=status.is_warning,
        message=status.message,
    )


@router.get(
    "/api/cloud/hardware-options",
    response_model=HardwareOptionsResponse,
    responses=route_errors(401),
)
async def hardware_options(ctx: CtxDep, caller: CallerDep) -> HardwareOptionsResponse:
    found = await ctx.in_thread(cost_estimates.hardware_options, ctx, caller)
    return HardwareOptionsResponse(
        hardware=[
            HardwareOption(
                id=profile.name,
                name=profile.display_name,
                provider=profile.provider,
                cost_per_second=profile.price_per_hour_micros / SECONDS_PER_HOUR / MICROS_PER_USD,
                cost_per_hour=round(micros_to_usd(profile.price_per_hour_micros), 2),
                available=True,
            )
            for profile in found.profiles
        ],
        default_hardware=found.default_profile,
        message=HARDWARE_MESSAGE,
    )


@router.get(
    "/api/cloud/cost-estimate",
    response_model=CostEstimateResponse,
    responses=route_errors(401, 404),
)
async def get_cost_estimate(
    ctx: CtxDep,
    caller: CallerDep,
    provider: EstimateProvider = None,
    config_name: ConfigName = None,
    hardware_profile: HardwareProfileParam = None,
) -> CostEstimateResponse:
    return await _estimate(ctx, caller, provider, config_name, hardware_profile, None)


@router.post(
    "/api/cloud/cost-estimate",
    response_model=CostEstimateResponse,
    responses=route_errors(401, 404, 422),
)
async def post_cost_estimate(
    ctx: CtxDep,
    caller: CallerDep,
    body: Annotated[Any, Body()] = None,
    provider: EstimateProvider = None,
    config_name: ConfigName = None,
    hardware_profile: HardwareProfileParam = None,
) -> CostEstimateResponse:
    """The body is the dataloader array (as the reference server takes it), or an object with
    config, dataloader_config, config_name_to_load and hardware_profile; it may be omitted."""
    return await _estimate(ctx, caller, provider, config_name, hardware_profile, body)


async def _estimate(
    ctx: Context,
    caller: Principal,
    provider: str | None,
    config_name: str | None,
    hardware_profile: str | None,
    body: object,
) -> CostEstimateResponse:
    query = cost_estimates.EstimateRequest(
        config_name=config_name, hardware_profile=hardware_profile
    )
    found = await ctx.in_thread(cost_estimates.estimate_cost, ctx, caller, provider, query, body)
    return CostEstimateResponse(
        has_estimate=found.has_estimate,
        estimated_cost_usd=micros_to_usd(found.estimated_cost_micros),
        avg_duration_seconds=None
        if found.duration_seconds is None
        else float(round(found.duration_seconds)),
        hardware_cost_per_hour=micros_to_usd(found.price_per_hour_micros),
        data_size_mb=None
        if found.data_bytes is None
        else round(found.data_bytes / cost_estimates.BYTES_PER_MB, 2),
        message=found.message,
        provider=found.provider,
        hardware_profile=found.hardware_profile,
        steps=found.steps,
        steps_per_second=found.steps_per_second,
    )
