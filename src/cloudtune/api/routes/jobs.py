"""/api/cloud/jobs: submit, preview, list, get, logs, events, cancel, delete, sync."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Query, Request, Response
from sse_starlette.sse import EventSourceResponse

from cloudtune.api.deps import CallerDep, CtxDep, get_caller, get_context
from cloudtune.api.errors import error_responses
from cloudtune.api.response_cache import ResponseCache
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
from cloudtune.errors import InvalidInputError
from cloudtune.services import jobs as job_service
from cloudtune.services import logstream, submission

router = APIRouter(
    prefix="/api/cloud/jobs",
    tags=["jobs"],
    responses=error_responses(400, 401, 402, 403, 404, 408, 409, 413, 422, 502, 503),
)

ProviderQuery = Annotated[str, Query(description="local, replicate or ray")]


def _json(data: object) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


async def _cached(
    request: Request, key: Hashable, render: Callable[[], Awaitable[bytes]]
) -> Response:
    cache: ResponseCache = request.app.state.response_cache
    return Response(await cache.get_or_render(key, render), media_type="application/json")


_BOOLEAN_WORDS = frozenset({"", "0", "1", "true", "false", "yes", "no", "on", "off"})


def _int_param(query: Mapping[str, str], name: str, default: int) -> int:
    """An integer query parameter within the bounds `_LIST_PARAMETERS` declares for it, so a
    value the database cannot hold (over 64 bits) is a 400, never a 500."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    schema = next(p["schema"] for p in _LIST_PARAMETERS if p["name"] == name)
    low, high = schema.get("minimum", -(2**63)), schema.get("maximum", 2**63 - 1)
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInputError(
            f"{name} must be an integer, got {raw!r}", code="invalid_filter"
        ) from None
    if not low <= value <= high:
        raise InvalidInputError(
            f"{name} must be between {low} and {high}, got {raw}", code="invalid_filter"
        )
    return value


def _submit_request(body: SubmitJobBody) -> submission.SubmitRequest:
    known = body.model_dump(exclude=set(body.model_extra or ()))
    return submission.SubmitRequest(**known, unknown_fields=tuple(sorted(body.model_extra or ())))


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


# The hottest route reads its query itself and resolves context and caller without
# dependencies: FastAPI's per-parameter machinery cost more than half of this route's time
# (bench/RESULTS.md). The parameters are still declared for the OpenAPI schema.
_LIST_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
        "description": "Jobs per page.",
    },
    {
        "name": "offset",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "default": 0},
        "description": "Jobs to skip.",
    },
    {
        "name": "status",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Comma list of statuses.",
    },
    {"name": "provider", "in": "query", "schema": {"type": "string"}},
    {"name": "job_type", "in": "query", "schema": {"type": "string", "enum": ["local", "cloud"]}},
    {
        "name": "sync_active",
        "in": "query",
        "schema": {"type": "boolean", "default": False},
        "description": "Ask providers about active jobs first.",
    },
]


@router.get("", response_model=JobListResponse, openapi_extra={"parameters": _LIST_PARAMETERS})
async def list_jobs(request: Request) -> Response:
    ctx, caller = get_context(request), await get_caller(request)
    query = request.query_params
    limit, offset = _int_param(query, "limit", 50), _int_param(query, "offset", 0)
    provider = query.get("provider")
    flt = job_service.parse_filter(
        caller, status=query.get("status"), provider=provider, job_type=query.get("job_type")
    )
    sync = query.get("sync_active", "").lower()
    if sync not in _BOOLEAN_WORDS:
        raise InvalidInputError(
            f"sync_active must be true or false, got {sync!r}", code="invalid_filter"
        )
    if sync in ("1", "true", "yes", "on"):
        # Asks the reconciler about the caller's visible active jobs (paced per job, shared by
        # every reader, errors logged): a reader never drives provider calls.
        await request.app.state.reconciler.refresh_visible(flt)

    async def render() -> bytes:
        page = await ctx.in_thread(
            job_service.list_jobs, ctx, caller, flt, limit=limit, offset=offset
        )
        jobs = [job_to_dict(job) for job in page.jobs]
        return orjson.dumps({"jobs": jobs, "total": page.total, "limit": limit, "offset": offset})

    key = ("list", caller.user_id, caller.permissions, flt, limit, offset)
    return await _cached(request, key, render)


@router.post("/sync", response_model=SyncResponse)
async def sync_jobs(
    request: Request, caller: CallerDep, body: Annotated[SyncBody | None, Body()] = None
) -> Response:
    caller.require("job.view.all")
    result = await request.app.state.reconciler.sync(body.provider if body else None)
    return _json({"success": True, "updated": result.updated, "discovered": result.discovered})


@router.get("/{job_id}", response_model=JobResponse)
async def get_job(request: Request, job_id: str) -> Response:
    ctx, caller = get_context(request), await get_caller(request)

    async def render() -> bytes:
        job = await ctx.in_thread(job_service.get_job, ctx, caller, job_id)
        return orjson.dumps({"job": job_to_dict(job, with_snapshot=True)})

    return await _cached(request, ("job", caller.user_id, caller.permissions, job_id), render)


@router.get("/{job_id}/logs", response_model=LogsResponse)
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
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_logs(
    request: Request, ctx: CtxDep, caller: CallerDep, job_id: str
) -> EventSourceResponse:
    events = await logstream.follow_logs(ctx, caller, job_id, request.app.state.reconciler)

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
