"""/api/cloud/jobs: submit, preview, list, get, logs, events, cancel, delete, sync."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Query, Request, Response
from sse_starlette.sse import EventSourceResponse

from cloudtune.api.deps import CallerDep, CtxDep
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
    job_to_dict,
)
from cloudtune.services import jobs as job_service
from cloudtune.services import logstream, submission

router = APIRouter(prefix="/api/cloud/jobs", tags=["jobs"])

ProviderQuery = Annotated[str, Query(description="local, replicate or ray")]


def _json(data: object) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def _submit_request(body: SubmitJobBody) -> submission.SubmitRequest:
    return submission.SubmitRequest(**body.model_dump())


@router.post("/submit", response_model=SubmitJobResponse)
async def submit_job(
    ctx: CtxDep, caller: CallerDep, body: SubmitJobBody, provider: ProviderQuery = "local"
) -> Response:
    result = await submission.submit_job(ctx, caller, provider, _submit_request(body))
    return _json(
        {
            "success": True,
            "job_id": result.job_id,
            "status": result.status.value,
            "idempotent_hit": result.idempotent_hit,
            "data_uploaded": result.data_uploaded,
            "cost_limit_warning": result.cost_limit_warning,
            "estimated_cost_usd": result.estimated_cost_usd,
            "error": None,
            "quota_warnings": [],
        }
    )


@router.post("/preview", response_model=PreviewResponse)
async def preview_job(
    ctx: CtxDep, caller: CallerDep, body: SubmitJobBody, provider: ProviderQuery = "local"
) -> Response:
    return _json(await submission.preview_job(ctx, caller, provider, _submit_request(body)))


@router.get("", response_model=JobListResponse)
async def list_jobs(
    request: Request,
    ctx: CtxDep,
    caller: CallerDep,
    limit: int = 50,
    offset: int = 0,
    status: str | None = None,
    provider: str | None = None,
    job_type: str | None = None,
    sync_active: bool = False,
) -> Response:
    flt = job_service.parse_filter(caller, status=status, provider=provider, job_type=job_type)
    if sync_active:
        await request.app.state.reconciler.sync(provider)
    page = await ctx.in_thread(job_service.list_jobs, ctx, caller, flt, limit=limit, offset=offset)
    return _json(
        {
            "jobs": [job_to_dict(job) for job in page.jobs],
            "total": page.total,
            "limit": page.limit,
            "offset": page.offset,
        }
    )


@router.post("/sync", response_model=SyncResponse)
async def sync_jobs(
    request: Request, caller: CallerDep, body: Annotated[SyncBody | None, Body()] = None
) -> Response:
    caller.require("job.view.all")
    result = await request.app.state.reconciler.sync(body.provider if body else None)
    return _json({"success": True, "updated": result.updated, "discovered": result.discovered})


@router.get("/{job_id}", response_model=JobResponse)
def get_job(ctx: CtxDep, caller: CallerDep, job_id: str) -> Response:
    job = job_service.get_job(ctx, caller, job_id)
    return _json({"job": job_to_dict(job, with_snapshot=True)})


@router.get("/{job_id}/logs", response_model=LogsResponse)
async def get_logs(
    ctx: CtxDep, caller: CallerDep, job_id: str, tail: int | None = None
) -> Response:
    logs = await job_service.get_logs(ctx, caller, job_id, tail)
    return _json({"job_id": job_id, "logs": logs})


@router.get(
    "/{job_id}/logs/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_logs(ctx: CtxDep, caller: CallerDep, job_id: str) -> EventSourceResponse:
    events = await logstream.follow_logs(ctx, caller, job_id)

    async def sse():  # type: ignore[no-untyped-def]
        async for item in events:
            if item.event is None:
                yield {"data": item.data}
            else:
                yield {"event": item.event, "data": item.data}

    return EventSourceResponse(sse(), headers={"X-Accel-Buffering": "no"}, ping=15)


@router.get("/{job_id}/events", response_model=EventsResponse)
def get_events(ctx: CtxDep, caller: CallerDep, job_id: str) -> Response:
    return _json({"job_id": job_id, "events": job_service.list_events(ctx, caller, job_id)})


@router.post("/{job_id}/cancel", response_model=CancelResponse)
async def cancel_job(ctx: CtxDep, caller: CallerDep, job_id: str) -> Response:
    job = await job_service.cancel_job(ctx, caller, job_id)
    return _json({"success": True, "job_id": job.job_id, "status": job.status.value})


@router.delete("/{job_id}", response_model=DeleteResponse)
def delete_job(ctx: CtxDep, caller: CallerDep, job_id: str) -> Response:
    job_service.delete_job(ctx, caller, job_id)
    return _json({"success": True, "job_id": job_id})
