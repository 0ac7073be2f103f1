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


class HardwareProfileOut(BaseModel):
    id: str
    model: str | None = Field(description="The trainer model this profile runs, if any.")
    label: str = Field(description='"H100", "2x L40S".')
    hardware_type: str
    cost_per_hour: float = Field(description="USD, from this server's price settings.")
    cost_per_second: float


class ProviderOut(BaseModel):
    id: str = Field(description="The provider's name, as paths and `?provider=` take it.")
    name: str
    available: bool
    job_type: str | None = Field(default=None, description="With an available provider.")
    reason: str | None = Field(default=None, description="Why a provider is unavailable.")
    description: str | None = None
    configured: bool = Field(description="It can take jobs now (Replicate: a token is set).")
    coming_soon: bool = False
    hardware_profile: str | None = Field(default=None, description="The default profile.")
    hardware: str | None = Field(
        default=None, description='The default profile as users read it: "H100 (80GB)".'
    )
    cost_per_hour: float | None = Field(
        default=None, description="USD per hour of the default profile."
    )
    model: str | None = Field(default=None, description="The default profile's trainer model.")
    version: str | None = Field(
        default=None, description="The pinned trainer version; null: the latest."
    )
    hardware_profiles: list[HardwareProfileOut] = Field(default_factory=list)


class ProviderList(BaseModel):
    providers: list[ProviderOut]


class ProviderSettingsOut(BaseModel):
    provider: str
    config: dict[str, Any]
    token_configured: bool
    token_source: str | None


class ProviderSettingsUpdated(ProviderSettingsOut):
    success: bool = True


_FILE_PATH = Field(
    default=None,
    description="Always null: the token is stored encrypted in the database, not in a file.",
)


class TokenState(BaseModel):
    success: bool = True
    token_configured: bool
    file_path: str | None = _FILE_PATH
    error: str | None = Field(
        default=None,
        description="Null, or why the saved token may not work: Replicate refused it, or could "
        "not be reached to check it.",
    )


class AccountUser(BaseModel):
    username: str | None
    name: str | None
    github_url: str | None
    token_source: str | None = Field(description="saved or environment.")


class AccountCheck(BaseModel):
    success: bool = Field(description="The same as valid.")
    valid: bool
    detail: str
    user_info: AccountUser | None = Field(description="With a valid token: whose it is.")
    error: str | None = Field(description="Why the token is not valid; null when it is.")


class BillingHardware(BaseModel):
    name: str
    cost_per_second: float


class BillingOut(BaseModel):
    balance_usd: float | None
    balance_available: bool
    balance: float | None = Field(description="Always null: Replicate has no balance API.")
    balance_note: str
    profiles: list[HardwareOut]
    hardware: dict[str, BillingHardware] = Field(
        description='Each profile by Replicate\'s hardware id ("gpu-h100"), priced from this '
        "server's settings."
    )
    default_hardware: str | None


class VersionOut(BaseModel):
    id: str
    created_at: str | None
    model_id: str | None
    full_version: str | None = Field(description="`owner/model:version`, as a submit pins it.")


class VersionList(BaseModel):
    versions: list[VersionOut]
    current_version: str | None = Field(description="The pinned version; null: the latest.")
    error: str | None = Field(
        default=None, description="Always null: a failure is an HTTP error here."
    )


class WebhookAnswer(BaseModel):
    status: str = Field(description="received, duplicate or ignored.")
    job_id: str | None = None
    updated: bool | None = Field(default=None, description="Whether the job changed.")
    reason: str | None = None


@router.get("/api/cloud/providers", response_model=ProviderList, responses=route_errors(401))
async def list_providers(ctx: CtxDep, caller: CallerDep) -> Response:
    found = await ctx.in_thread(providers.list_providers, ctx, caller)
    return _json({"providers": [_provider_out(p) for p in found]})


def _provider_out(info: providers.ProviderInfo) -> dict[str, Any]:
    default = info.default_profile
    out = ProviderOut(
        id=info.name,
        name=info.name,
        available=info.available,
        job_type=info.job_type,
        reason=info.reason,
        description=info.description,
        configured=info.configured,
        hardware_profile=default.name if default else None,
        hardware=default.display_name if default else None,
        cost_per_hour=micros_to_usd(default.price_per_hour_micros) if default else None,
        model=info.model,
        version=info.version,
        hardware_profiles=[
            HardwareProfileOut(
                id=offer.profile.name,
                model=offer.model,
                label=offer.profile.label,
                hardware_type=offer.profile.label,
                cost_per_hour=micros_to_usd(offer.profile.price_per_hour_micros),
                cost_per_second=_per_second(offer.profile.price_per_hour_micros),
            )
            for offer in info.profiles
        ],
    ).model_dump()
    # An available provider has a job type, an unavailable one a reason; neither has both.
    return {k: v for k, v in out.items() if v is not None or k not in ("job_type", "reason")}


def _per_second(per_hour_micros: int) -> float:
    return round(per_hour_micros / 3600 / 1_000_000, 9)


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
    "/api/cloud/providers/{provider}/validate",
    response_model=AccountCheck,
    responses=route_errors(401, 502, 503),
)
async def validate_provider(ctx: CtxDep, caller: CallerDep, provider: str) -> AccountCheck:
    """200 with `valid: false` when the provider refuses (no token, a refused token, a Ray
    cluster that does not answer); 502/503 only when Replicate cannot be asked."""
    found = await providers.validate(ctx, caller, provider)
    user = None
    if found.valid:
        user = AccountUser(
            username=found.username,
            name=found.name,
            github_url=found.github_url,
            token_source=found.token_source,
        )
    return AccountCheck(
        success=found.valid,
        valid=found.valid,
        detail=found.detail,
        user_info=user,
        error=None if found.valid else found.detail,
    )


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
        balance=None,
        balance_note="Replicate's API has no balance; see https://replicate.com/account/billing",
        profiles=[hardware_out(p) for p in found.profiles],
        hardware={
            sku: BillingHardware(
                name=p.display_name, cost_per_second=_per_second(p.price_per_hour_micros)
            )
            for sku, p in found.by_sku.items()
        },
        default_hardware=found.default_sku,
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
    return VersionList(
        versions=[
            VersionOut(
                id=v.id,
                created_at=v.created_at,
                model_id=found.model,
                full_version=f"{found.model}:{v.id}" if found.model else None,
            )
            for v in found.versions
        ],
        current_version=found.current_version,
    )


@router.put(
    "/api/cloud/providers/{provider}/token",
    response_model=TokenState,
    responses=route_errors(401, 422),
)
async def put_provider_token(
    ctx: CtxDep, caller: CallerDep, provider: str, body: JsonObjectBody
) -> TokenState:
    """`{"token": "..."}` (or `api_token`); saved, then checked once with a provider that
    can check it (Replicate's `r8_` tokens)."""
    found = await providers.save_token(ctx, caller, provider, body)
    return TokenState(token_configured=found.token_configured, error=found.warning)


@router.delete(
    "/api/cloud/providers/{provider}/token",
    response_model=TokenState,
    responses=route_errors(401),
)
async def delete_provider_token(ctx: CtxDep, caller: CallerDep, provider: str) -> TokenState:
    found = await ctx.in_thread(providers.delete_token, ctx, caller, provider)
    return TokenState(token_configured=found.token_configured)


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
