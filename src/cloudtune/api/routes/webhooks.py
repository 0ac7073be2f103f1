"""/api/webhooks/trainer/{job_id}: progress events from a job's trainer, with its own token."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request, Response

from cloudtune.api.deps import CtxDep
from cloudtune.api.errors import error_responses
from cloudtune.api.limits import TRAINER_EVENT_MAX_BYTES
from cloudtune.api.schemas import TrainerEventResponse, raw_json_body
from cloudtune.errors import InvalidInputError, PayloadTooLargeError
from cloudtune.services import progress

router = APIRouter(
    prefix="/api/webhooks",
    tags=["webhooks"],
    responses=error_responses(400, 401, 403, 404, 408, 409, 413, 422),
)


@router.post(
    "/trainer/{job_id}",
    response_model=TrainerEventResponse,
    openapi_extra=raw_json_body("A progress event: ours or SimpleTuner's webhook payload."),
)
async def trainer_event(
    request: Request,
    ctx: CtxDep,
    job_id: str,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Response:
    token = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    # The body limit (cloudtune.api.limits) has refused a longer body while it streamed in, so
    # reading it whole holds at most TRAINER_EVENT_MAX_BYTES; the check stays as a last line.
    body = await request.body()
    if len(body) > TRAINER_EVENT_MAX_BYTES:
        raise PayloadTooLargeError("event body too large", limit_bytes=TRAINER_EVENT_MAX_BYTES)
    try:
        payload: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        payload = _NotJson()
    if isinstance(payload, _NotJson):
        if not ctx.tokens.check_job_token(job_id, token):
            payload = None  # let the service answer 401 before saying anything about the body
        else:
            raise InvalidInputError("the event is not valid JSON", code="invalid_payload")
    result = await ctx.in_thread(progress.record_trainer_event, ctx, job_id, token, payload)
    return Response(orjson.dumps(result), media_type="application/json")


class _NotJson:
    pass
