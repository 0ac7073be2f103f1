"""/api/cloud/providers and /api/webhooks/replicate."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from cloudtune.api.deps import CallerDep, CtxDep
from cloudtune.api.errors import error_responses
from cloudtune.api.schemas import raw_json_body
from cloudtune.errors import InvalidInputError, PayloadTooLargeError
from cloudtune.services import provider_webhooks, providers

router = APIRouter(
    tags=["providers"],
    responses=error_responses(400, 401, 403, 404, 408, 413, 422, 502, 503),
)
JsonObject = Annotated[dict[str, Any], Body()]

MAX_WEBHOOK_BYTES = 32 * 1024 * 1024  # training logs ride in every delivery


@router.get("/api/cloud/providers")
async def list_providers(ctx: CtxDep, caller: CallerDep) -> dict[str, Any]:
    return {"providers": providers.list_providers(ctx, caller)}


@router.get("/api/cloud/providers/{provider}")
async def get_provider(ctx: CtxDep, caller: CallerDep, provider: str) -> dict[str, Any]:
    return await ctx.in_thread(providers.get_provider_settings, ctx, caller, provider)


@router.put("/api/cloud/providers/{provider}")
async def put_provider(
    ctx: CtxDep, caller: CallerDep, provider: str, body: JsonObject
) -> dict[str, Any]:
    return await ctx.in_thread(providers.update_provider_settings, ctx, caller, provider, body)


@router.get("/api/cloud/providers/replicate/validate")
async def validate_replicate(ctx: CtxDep, caller: CallerDep) -> dict[str, Any]:
    return await providers.validate(ctx, caller, "replicate")


@router.get("/api/cloud/providers/replicate/billing")
async def replicate_billing(ctx: CtxDep, caller: CallerDep) -> dict[str, Any]:
    return await providers.billing(ctx, caller, "replicate")


@router.get("/api/cloud/providers/replicate/versions")
async def replicate_versions(
    ctx: CtxDep, caller: CallerDep, hardware_profile: str | None = None
) -> dict[str, Any]:
    return await providers.versions(ctx, caller, "replicate", hardware_profile)


@router.put("/api/cloud/providers/replicate/token")
async def put_replicate_token(ctx: CtxDep, caller: CallerDep, body: JsonObject) -> dict[str, Any]:
    token = body.get("token") or body.get("api_token")
    if not isinstance(token, str):
        raise InvalidInputError('send {"token": "r8_..."}', code="invalid_token")
    return await ctx.in_thread(providers.save_token, ctx, caller, "replicate", token)


@router.delete("/api/cloud/providers/replicate/token")
async def delete_replicate_token(ctx: CtxDep, caller: CallerDep) -> dict[str, Any]:
    return await ctx.in_thread(providers.delete_token, ctx, caller, "replicate")


@router.post(
    "/api/webhooks/replicate",
    openapi_extra=raw_json_body("A Replicate prediction, signed with Standard Webhooks."),
)
async def replicate_webhook(request: Request, ctx: CtxDep) -> dict[str, Any]:
    length = int(request.headers.get("content-length") or 0)
    if length > MAX_WEBHOOK_BYTES:
        raise PayloadTooLargeError("webhook body too large", limit_bytes=MAX_WEBHOOK_BYTES)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BYTES:
            raise PayloadTooLargeError("webhook body too large", limit_bytes=MAX_WEBHOOK_BYTES)
    result = await provider_webhooks.receive(
        ctx,
        "replicate",
        body=bytes(body),
        headers=dict(request.headers),
        client_ip=request.client.host if request.client else "",
    )
    if result.get("job_id"):
        request.app.state.reconciler.checked_by_webhook(result["job_id"])
    return result
