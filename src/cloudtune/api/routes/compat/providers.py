"""`GET|PUT /api/cloud/providers/{provider}/config`: a provider's settings with the spending
limit's `cost_limit_*` fields and `hardware_profile`, in the reference server's shape. Ours are
`/api/cloud/providers/{provider}` and `/api/cloud/metrics/cost-limit`; these read and write the
same settings and the same limit."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from cloudtune.api.deps import CallerDep, CtxDep
from cloudtune.api.errors import route_errors
from cloudtune.domain.costs import micros_to_usd
from cloudtune.services import provider_config

router = APIRouter(tags=["compatibility"])

_CONFIG = Field(
    description="The provider's settings (as `GET /api/cloud/providers/{provider}` shows them), "
    "`hardware_profile` (the default profile, our `default_hardware_profile`) and "
    "`cost_limit_enabled`, `cost_limit_amount` (USD), `cost_limit_period`, `cost_limit_action`: "
    "the one spending limit of `/api/cloud/metrics/cost-limit` (null to a caller who may not "
    "read it)."
)


class ProviderConfigOut(BaseModel):
    provider: str
    config: dict[str, Any] = _CONFIG
    token_configured: bool
    token_source: str | None


class ProviderConfigUpdated(ProviderConfigOut):
    success: bool = True


@router.get(
    "/api/cloud/providers/{provider}/config",
    response_model=ProviderConfigOut,
    responses=route_errors(401),
)
async def get_config(ctx: CtxDep, caller: CallerDep, provider: str) -> ProviderConfigOut:
    found = await ctx.in_thread(provider_config.get_config, ctx, caller, provider)
    return ProviderConfigOut(**_fields(found))


@router.put(
    "/api/cloud/providers/{provider}/config",
    response_model=ProviderConfigUpdated,
    responses=route_errors(401, 422),
)
async def put_config(
    ctx: CtxDep, caller: CallerDep, provider: str, body: Annotated[dict[str, Any], Body()]
) -> ProviderConfigUpdated:
    """Our settings, `hardware_profile` and the `cost_limit_*` fields (those need
    cost.manage); an unknown field is refused (400), and a refused field saves nothing."""
    found = await ctx.in_thread(provider_config.update_config, ctx, caller, provider, body)
    return ProviderConfigUpdated(**_fields(found))


def _fields(found: provider_config.ProviderConfig) -> dict[str, Any]:
    settings, limit = found.settings, found.cost_limit
    config = dict(settings.config)
    if "default_hardware_profile" in config:
        config["hardware_profile"] = config["default_hardware_profile"]
    config.update(
        cost_limit_enabled=limit.enabled if limit else None,
        cost_limit_amount=micros_to_usd(limit.limit_micros) if limit else None,
        cost_limit_period=limit.period.value if limit else None,
        cost_limit_action=limit.action if limit else None,
    )
    return {
        "provider": settings.provider,
        "config": config,
        "token_configured": settings.token_configured,
        "token_source": settings.token_source,
    }
