"""/api/webhooks/trainer/{job_id}: progress events from a job's trainer, with its own token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request

from cloudtune.api.deps import CtxDep
from cloudtune.api.errors import route_errors
from cloudtune.api.limits import TRAINER_EVENT_MAX_BYTES
from cloudtune.api.schemas import TrainerEventResponse, raw_json_body
from cloudtune.errors import PayloadTooLargeError
from cloudtune.services import progress

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


@router.post(
    "/trainer/{job_id}",
    response_model=TrainerEventResponse,
    responses=route_errors(401, 404),
    openapi_extra=raw_json_body("A progress event: ours or SimpleTuner's webhook payload."),
)
async def trainer_event(
    request: Request,
    ctx: CtxDep,
    job_id: str,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> TrainerEventResponse:
    token = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    # The body limit (cloudtune.api.limits) has refused a longer body while it streamed in, so
    # reading it whole holds at most TRAINER_EVENT_MAX_BYTES; the check stays as a last line.
    body = await request.body()
    if len(body) > TRAINER_EVENT_MAX_BYTES:
        raise PayloadTooLargeError("event body too large", limit_bytes=TRAINER_EVENT_MAX_BYTES)
    event = await ctx.in_thread(progress.record_trainer_event, ctx, job_id, token, body)
    if event.job_waiting:
        ctx.wake_reconciler()  # on the event loop: the reconciler's wake-up is not thread-safe
    return TrainerEventResponse(job_id=event.job_id, applied=event.applied)
