"""/api/cloud/providers and /api/webhooks/replicate."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response

from cloudtune.api.deps import CallerDep, CtxDep
from cloudtune.api.errors import envelope, error_responses, status_for
from cloudtune.api.schemas import raw_json_body
from cloudtune.errors import CloudtuneError, InvalidInputError, PayloadTooLargeError
from cloudtune.services import provider_webhooks, providers

router = APIRouter(
    tags=["providers"],
    responses=error_responses(400, 401, 403, 404, 408, 413, 422, 502, 503),
)
JsonObject = Annotated[dict[str, Any], Body()]

# A delivery is the whole prediction: its input (our config and dataloader JSON, a few KiB),
# output URLs, and its logs, which grow with the run and ride in every delivery. At some 200
# bytes a logged step, 8 MiB holds the logs of about 40 000 steps, more than a fine-tune runs,
# while bounding what one unauthenticated request may make the server hold (it was 32 MiB, and
# 8 concurrent anonymous bodies cost the server half a GB). A larger delivery is refused (413);
# the job's status still arrives by polling.
MAX_WEBHOOK_BYTES = 8 * 1024 * 1024


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
    response_model=dict[str, Any],
    openapi_extra=raw_json_body("A Replicate prediction, signed with Standard Webhooks."),
)
async def replicate_webhook(request: Request, ctx: CtxDep) -> dict[str, Any] | Response:
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
        return admission.answer
    body = await _read_body(request, MAX_WEBHOOK_BYTES)
    payload = provider_webhooks.verified_payload(admission, body)
    del body  # the payload holds what is kept; the raw bytes need not outlive the parse
    result = await provider_webhooks.apply(ctx, admission, payload)
    if result.get("job_id"):
        request.app.state.reconciler.checked_by_webhook(result["job_id"])
    return result


async def _read_body(request: Request, limit: int) -> bytearray:
    """The body in one buffer that grows in place (no copy to `bytes` afterwards). BodyLimit
    refuses a body over the same limit first; this holds should that table change."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLargeError("webhook body too large", limit_bytes=limit)
    return body
