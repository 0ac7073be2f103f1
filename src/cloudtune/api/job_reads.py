"""The two hottest reads, `GET /api/cloud/jobs` and `GET /api/cloud/jobs/{id}`, as JSON bytes in
the shape of their declared schemas (`JobListResponse`, `JobResponse`).

`read_jobs` is the one implementation: the edge middleware (cloudtune.api.edge) answers these
two paths with it before FastAPI's routing, and the routes in cloudtune.api.routes.jobs call it
too (they stay for the OpenAPI schema). The checks are the routes' own: the caller is resolved
by `get_caller` (credentials, auth epoch), the filter and its permission by the job service, and
answers come from the response cache keyed by caller, permissions and query.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import orjson
from starlette.requests import Request

from cloudtune.api.deps import get_caller, get_context
from cloudtune.api.schemas import job_to_dict
from cloudtune.domain.principal import Principal
from cloudtune.errors import InvalidInputError
from cloudtune.services import jobs as job_service
from cloudtune.services.cache import VersionedCache
from cloudtune.services.context import Context
from cloudtune.services.publishing.state import publish_fields_of_jobs
from cloudtune.store.jobs import JobFilter

LIST_PATH = "/api/cloud/jobs"
_DETAIL_PREFIX = LIST_PATH + "/"

ResponseCache = VersionedCache[Hashable, bytes]

# The list reads its query itself (FastAPI's per-parameter machinery cost more than the rest of
# a cached answer); the route declares these for the OpenAPI schema, and `_int_param` keeps
# values within the bounds declared here.
LIST_PARAMETERS: list[dict[str, Any]] = [
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
_BOOLEAN_WORDS = frozenset({"", "0", "1", "true", "false", "yes", "no", "on", "off"})


def hot_read(path: str) -> str | None:
    """'' for the job list's path, the job id for a job's path, None for any other path (the
    id is one non-empty path segment, as the route's `{job_id}` matches it)."""
    if path == LIST_PATH:
        return ""
    if path.startswith(_DETAIL_PREFIX):
        job_id = path[len(_DETAIL_PREFIX) :]
        if job_id and "/" not in job_id:
            return job_id
    return None


async def read_jobs(request: Request, job_id: str | None) -> bytes:
    """The job list (`job_id` None) or one job's detail, for the request's caller; raises the
    domain errors the routes document (400 bad filter, 401, 403, 404)."""
    ctx, caller = get_context(request), await get_caller(request)
    cache: ResponseCache = request.app.state.response_cache
    if job_id is not None:
        return await cache.get_or_render(
            ("job", caller.user_id, caller.permissions, job_id),
            lambda: ctx.in_thread(_job_body, ctx, caller, job_id),
        )
    query = request.query_params
    limit, offset = _int_param(query, "limit", 50), _int_param(query, "offset", 0)
    flt = job_service.parse_filter(
        caller,
        status=query.get("status"),
        provider=query.get("provider"),
        job_type=query.get("job_type"),
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
    return await cache.get_or_render(
        ("list", caller.user_id, caller.permissions, flt, limit, offset),
        lambda: ctx.in_thread(_list_body, ctx, caller, flt, limit, offset),
    )


def _list_body(ctx: Context, caller: Principal, flt: JobFilter, limit: int, offset: int) -> bytes:
    page = job_service.list_jobs(ctx, caller, flt, limit=limit, offset=offset)
    published = publish_fields_of_jobs(ctx, page.jobs)
    jobs = [job_to_dict(job, extra=published[job.job_id]) for job in page.jobs]
    return orjson.dumps({"jobs": jobs, "total": page.total, "limit": limit, "offset": offset})


def _job_body(ctx: Context, caller: Principal, job_id: str) -> bytes:
    job = job_service.get_job(ctx, caller, job_id)
    published = publish_fields_of_jobs(ctx, [job])[job.job_id]
    return orjson.dumps({"job": job_to_dict(job, with_snapshot=True, extra=published)})


def _int_param(query: Mapping[str, str], name: str, default: int) -> int:
    """An integer query parameter within the bounds `LIST_PARAMETERS` declares for it, so a
    value the database cannot hold (over 64 bits) is a 400, never a 500."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    schema = next(p["schema"] for p in LIST_PARAMETERS if p["name"] == name)
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
