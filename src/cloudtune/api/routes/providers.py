"""/api/cloud/providers and /api/webhooks/replicate."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, Field

from cloudtune.api.deps import CallerDep, CtxDep
from cloudtune.api.errors import envelope, route_errors, status_for
from cloudtune.api.schemas import HardwareOut, hardware_out, raw_json_body
from cloudtune.domain.costs import micros_to_usd
from cloudtune.errors import CloudtuneError, PayloadTooLargeError
from cloudtune.services import provider_webhooks, providers

router = APIRouter(tags=["providers"])
JsonObjectBody = Annotated[dict[str, Any], Body()]

# A delivery is the whole prediction: its input (our config and dataloader JSON, a few KiB),
# output URLs, and its logs, which grow with the run and ride in every delivery. At some 200
# bytes a logged step, 8 MiB holds the logs of about 40 000 steps, more than a fine-tune runs,
# while bounding what one unauthenticated request may make the server hold (it was 32 MiB, and
# 8 concurrent anonymous bodies cost the server half a GB). A larger delivery is refused (413);
# the job's status still arrives by polling.
MAX_WEBHOOK_BYTES = 8 * 1024 * 1024


class ProviderOut(BaseModel):
    name: str
    available: bool
    job_type: str | None = Field(default=None, description="With an available provider.")
    reason: str | None = Field(default=None, description="Why a provider is unavailable.")


class ProviderList(BaseModel):
    providers: list[ProviderOut]


class ProviderSettingsOut(BaseModel):
    provider: str
    config: dict[str, Any]
    token_configured: bool
    token_source: str | None


class ProviderSettingsUpdated(ProviderSettingsOut):
    success: bool = True


class TokenState(BaseModel):
    success: bool = True
    token_configured: bool


class AccountCheck(BaseModel):
    success: bool
    valid: bool
    detail: str


class BillingOut(BaseModel):
    balance_usd: float | None
    balance_available: bool
    profiles: list[HardwareOut]


class VersionOut(BaseModel):
    id: str
    created_at: str | None


class VersionList(BaseModel):
    versions: list[VersionOut]


class WebhookAnswer(BaseModel):
    status: str = Field(description="received, duplicate or ignored.")
    job_id: str | None = None
    updated: bool | None = Field(default=None, description="Whether the job changed.")
    reason: str | None = None


@router.get("/api/cloud/providers", response_model=ProviderList, responses=route_errors(401))
async def list_providers(ctx: CtxDep, caller: CallerDep) -> Response:
    found = providers.list_providers(ctx, caller)
    # An available provider has a job type, an unavailable one a reason; neither has both.
    return _json({"providers": [_without_none(dataclasses.asdict(p)) for p in found]})


@router.get(
    "/api/cloud/providers/{provider}",
    response_model=ProviderSettingsOut,
    responses=route_errors(401),
)
async def get_provider(ctx: CtxDep, caller: CallerDep, provider: str) -> ProviderSettingsOut:
    found = await ctx.in_thread(providers.get_provider_settings, ctx, caller, provider)
    return ProviderSettingsOut(**dataclasses.asdict(found))


@router.put(
    "/api/cloud/providers/{provider}",
    response_model=ProviderSettingsUpdated,
    responses=route_errors(401, 422),
)
async def put_provider(
    ctx: CtxDep, caller: CallerDep, provider: str, body: JsonObjectBody
) -> ProviderSettingsUpdated:
    found = await ctx.in_thread(providers.update_provider_settings, ctx, caller, provider, body)
    return ProviderSettingsUpdated(**dataclasses.asdict(found))


@router.get(
    "/api/cloud/providers/replicate/validate",
    response_model=AccountCheck,
    responses=route_errors(401, 502, 503),
)
async def validate_replicate(ctx: CtxDep, caller: CallerDep) -> AccountCheck:
    account = await providers.validate(ctx, caller, "replicate")
    return AccountCheck(success=account.ok, valid=account.ok, detail=account.detail)


@router.get(
    "/api/cloud/providers/replicate/billing",
    response_model=BillingOut,
    responses=route_errors(401),
)
async def replicate_billing(ctx: CtxDep, caller: CallerDep) -> BillingOut:
    found = await providers.billing(ctx, caller, "replicate")
    return BillingOut(
        balance_usd=micros_to_usd(found.balance_micros),
        balance_available=found.balance_available,
        profiles=[hardware_out(p) for p in found.profiles],
    )


@router.get(
    "/api/cloud/providers/replicate/versions",
    response_model=VersionList,
    responses=route_errors(401, 502, 503),
)
async def replicate_versions(
    ctx: CtxDep, caller: CallerDep, hardware_profile: str | None = None
) -> VersionList:
    found = await providers.versions(ctx, caller, "replicate", hardware_profile)
    return VersionList(versions=[VersionOut(id=v.id, created_at=v.created_at) for v in found])


@router.put(
    "/api/cloud/providers/replicate/token",
    response_model=TokenState,
    responses=route_errors(401, 422),
)
async def put_replicate_token(ctx: CtxDep, caller: CallerDep, body: JsonObjectBody) -> TokenState:
    token = body.get("token") or body.get("api_token")
    await ctx.in_thread(providers.save_token, ctx, caller, "replicate", token)
    return TokenState(token_configured=True)


@router.delete(
    "/api/cloud/providers/replicate/token",
    response_model=TokenState,
    responses=route_errors(401),
)
async def delete_replicate_token(ctx: CtxDep, caller: CallerDep) -> TokenState:
    configured = await ctx.in_thread(providers.delete_token, ctx, caller, "replicate")
    return TokenState(token_configured=configured)


@router.post(
    "/api/webhooks/replicate",
    response_model=WebhookAnswer,
    responses=route_errors(401, 502, 503),
    openapi_extra=raw_json_body("A Replicate prediction, signed with Standard Webhooks."),
)
async def replicate_webhook(request: Request, ctx: CtxDep) -> Response:
    try:
        admission = await provider_webhooks.admit(
            ctx,
            "replicate",
            headers=dict(request.headers),
            client_ip=request.client.host if request.client else "",
        )
    except CloudtuneError as exc:
        # Refused before its body was read: close the connection rather than read (and
        # discard) a body nobody wants.
        refusal = envelope(status_for(exc), exc.code, exc.detail, **exc.extra)
        refusal.headers["Connection"] = "close"
        return refusal
    if admission.answer is not None:
        return _json(_without_none(dataclasses.asdict(admission.answer)))
    body = await _read_body(request, MAX_WEBHOOK_BYTES)
    payload = provider_webhooks.verified_payload(admission, body)
    del body  # the payload holds what is kept; the raw bytes need not outlive the parse
    outcome = await provider_webhooks.apply(ctx, admission, payload)
    if outcome.job_id is not None:
        request.app.state.reconciler.checked_by_webhook(outcome.job_id)
    return _json(_without_none(dataclasses.asdict(outcome)))


def _json(data: object) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


async def _read_body(request: Request, limit: int) -> bytearray:
    """The body in one buffer that grows in place (no copy to `bytes` afterwards). BodyLimit
    refuses a body over the same limit first; this holds should that table change."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLargeError("webhook body too large", limit_bytes=limit)
    return body
