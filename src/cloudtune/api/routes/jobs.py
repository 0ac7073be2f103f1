"""/api/cloud/jobs: submit, preview, list, get, logs, events, cancel, delete, sync."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Query, Request, Response
from sse_starlette.sse import EventSourceResponse

from cloudtune.api.deps import CallerDep, CtxDep
from cloudtune.api.errors import route_errors
from cloudtune.api.job_reads import LIST_PARAMETERS, read_jobs
from cloudtune.api.schemas import (
    CancelResponse,
    DeleteResponse,
    EventsResponse,
    JobListResponse,
    JobResponse,
    LogsResponse,
    PreviewResponse,
    SubmitJobBody,
    SubmitJobResponse,
    SyncBody,
    SyncResponse,
    event_to_dict,
    preview_to_dict,
)
from cloudtune.domain.costs import micros_to_usd
from cloudtune.services import jobs as job_service
from cloudtune.services import logstream, submission

router = APIRouter(prefix="/api/cloud/jobs", tags=["jobs"])

ProviderQuery = Annotated[
    str | None,
    Query(description="local or replicate; default CLOUDTUNE_DEFAULT_PROVIDER (replicate)."),
]


def _json(data: object) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def _submit_request(body: SubmitJobBody) -> submission.SubmitRequest:
    known = body.model_dump(exclude=set(body.model_extra or ()))
    return submission.SubmitRequest(**known, unknown_fields=tuple(sorted(body.model_extra or ())))


@router.post(
    "/submit",
    response_model=SubmitJobResponse,
    responses=route_errors(401, 402, 404, 422, 502, 503),
)
async def submit_job(
    ctx: CtxDep, caller: CallerDep, body: SubmitJobBody, provider: ProviderQuery = None
) -> Response:
    result = await submission.submit_job(ctx, caller, provider, _submit_request(body))
    answer = SubmitJobResponse(
        job_id=result.job_id,
        provider=result.provider,
        status=result.status.value,
        idempotent_hit=result.idempotent_hit,
        data_uploaded=result.data_uploaded,
        cost_limit_warning=result.cost_limit_warning,
        estimated_cost_usd=micros_to_usd(result.estimated_cost_micros),
    )
    return _json(answer.model_dump())


@router.post("/preview", response_model=PreviewResponse, responses=route_errors(401, 404, 422))
async def preview_job(
    ctx: CtxDep, caller: CallerDep, body: SubmitJobBody, provider: ProviderQuery = None
) -> Response:
    preview = await submission.preview_job(ctx, caller, provider, _submit_request(body))
    return _json(preview_to_dict(preview))


@router.get(
    "",
    response_model=JobListResponse,
    responses=route_errors(401),
    openapi_extra={"parameters": LIST_PARAMETERS},
)
async def list_jobs(request: Request) -> Response:
    # Served by the edge's fast path (cloudtune.api.edge) with this same function.
    return Response(await read_jobs(request, None), media_type="application/json")


@router.post("/sync", response_model=SyncResponse, responses=route_errors(401, 422, 502, 503))
async def sync_jobs(
    request: Request, caller: CallerDep, body: Annotated[SyncBody | None, Body()] = None
) -> Response:
    reconciler = request.app.state.reconciler
    result = await job_service.sync_jobs(caller, reconciler, body.provider if body else None)
    answer = SyncResponse(
        updated=result.updated,
        discovered=result.discovered,
        synced=[result.updated, result.discovered],
        message=f"Updated {result.updated} and discovered {result.discovered} jobs",
    )
    return _json(answer.model_dump())


@router.get("/{job_id}", response_model=JobResponse, responses=route_errors(401, 404))
async def get_job(request: Request, job_id: str) -> Response:
    # Served by the edge's fast path (cloudtune.api.edge) with this same function.
    return Response(await read_jobs(request, job_id), media_type="application/json")


@router.get("/{job_id}/logs", response_model=LogsResponse, responses=route_errors(401, 404, 422))
async def get_logs(
    ctx: CtxDep,
    caller: CallerDep,
    job_id: str,
    tail: Annotated[
        int | None, Query(ge=0, le=1_000_000, description="Last N lines (none: all).")
    ] = None,
) -> Response:
    logs = await job_service.get_logs(ctx, caller, job_id, tail)
    return _json({"job_id": job_id, "logs": logs})


@router.get(
    "/{job_id}/logs/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **route_errors(401, 404)},
)
async def stream_logs(
    request: Request, ctx: CtxDep, caller: CallerDep, job_id: str
) -> EventSourceResponse:
    events = await logstream.follow_logs(ctx, caller, job_id, request.app.state.reconciler)

    async def sse() -> AsyncIterator[dict[str, str]]:
        async for item in events:
            if item.event is None:
                yield {"data": item.data}
            else:
                yield {"event": item.event, "data": item.data}

    return EventSourceResponse(sse(), headers={"X-Accel-Buffering": "no"}, ping=15)


@router.get("/{job_id}/events", response_model=EventsResponse, responses=route_errors(401, 404))
def get_events(ctx: CtxDep, caller: CallerDep, job_id: str) -> Response:
    events = job_service.list_events(ctx, caller, job_id)
    return _json({"job_id": job_id, "events": [event_to_dict(e) for e in events]})


@router.post(
    "/{job_id}/cancel",
    response_model=CancelResponse,
    responses=route_errors(401, 404, 409, 502, 503),
)
async def cancel_job(ctx: CtxDep, caller: CallerDep, job_id: str) -> Response:
    job = await job_service.cancel_job(ctx, caller, job_id)
    return _json({"success": True, "job_id": job.job_id, "status": job.status.value})


@router.delete("/{job_id}", response_model=DeleteResponse, responses=route_errors(401, 404, 409))
def delete_job(ctx: CtxDep, caller: CallerDep, job_id: str) -> Response:
    job_service.delete_job(ctx, caller, job_id)
    return _json({"success": True, "job_id": job_id})
