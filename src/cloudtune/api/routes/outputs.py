"""/api/cloud/jobs/{id}/outputs: a job's output files, one file (with Range), and a retry of
bringing a remote job's outputs home."""

from __future__ import annotations

import re
from datetime import datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from cloudtune.api.deps import CallerDep, CtxDep
from cloudtune.api.errors import envelope, route_errors
from cloudtune.api.schemas import ErrorResponse
from cloudtune.services import jobs as job_service
from cloudtune.services.outputs import files, homecoming

router = APIRouter(prefix="/api/cloud/jobs", tags=["outputs"])


class OutputFileOut(BaseModel):
    path: str = Field(description="Relative to the job's output folder, with `/`.")
    size: int
    sha256: str | None = Field(description="Known for files this server brought home.")
    modified_at: datetime
    url: str = Field(description="This server's download link (supports Range).")


class DeliveryOut(BaseModel):
    status: str = Field(description="pending, running, done or failed.")
    attempts: int
    error: str | None
    updated_at: datetime


class OutputsResponse(BaseModel):
    success: bool = True
    job_id: str
    job_status: str
    folder: str | None = Field(description="The job's output folder on the server, if any.")
    files: list[OutputFileOut]
    truncated: bool = Field(description="More files than listed.")
    delivery: DeliveryOut | None = Field(
        description="Bringing a remote job's outputs home; null for a job without any."
    )
    delivery_error: str | None


def _answer(listing: files.OutputListing) -> OutputsResponse:
    delivery = listing.delivery
    return OutputsResponse(
        job_id=listing.job_id,
        job_status=listing.job_status,
        folder=listing.folder,
        files=[
            OutputFileOut(
                path=f.path, size=f.size, sha256=f.sha256, modified_at=f.modified_at, url=f.url
            )
            for f in listing.files
        ],
        truncated=listing.truncated,
        delivery=DeliveryOut(
            status=delivery.status.value,
            attempts=delivery.attempts,
            error=delivery.error,
            updated_at=delivery.updated_at,
        )
        if delivery
        else None,
        delivery_error=delivery.error if delivery else None,
    )


@router.get("/{job_id}/outputs", response_model=OutputsResponse, responses=route_errors(401, 404))
def list_outputs(ctx: CtxDep, caller: CallerDep, job_id: str) -> OutputsResponse:
    return _answer(files.list_outputs(ctx, caller, job_id))


@router.post(
    "/{job_id}/outputs/retry",
    response_model=OutputsResponse,
    responses=route_errors(401, 404, 409),
)
def retry_outputs(ctx: CtxDep, caller: CallerDep, job_id: str) -> OutputsResponse:
    homecoming.retry(ctx, caller, job_service.get_job(ctx, caller, job_id))
    return _answer(files.list_outputs(ctx, caller, job_id))


@router.get(
    "/{job_id}/outputs/{path:path}",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file."},
        206: {"content": {"application/octet-stream": {}}, "description": "A Range of it."},
        **route_errors(401, 404),
        416: {"model": ErrorResponse, "description": "The Range lies past the end of the file"},
    },
)
def download_output(
    ctx: CtxDep, caller: CallerDep, request: Request, job_id: str, path: str
) -> Response:
    found = files.output_file(ctx, caller, job_id, path)
    size = found.stat().st_size
    wanted = request.headers.get("range")
    if wanted is not None and _unsatisfiable(wanted, size):
        refused = envelope(416, "range_not_satisfiable", f"the file has {size} bytes")
        refused.headers["Content-Range"] = f"bytes */{size}"
        return refused
    # Starlette answers Range itself (206, several ranges, If-Range), with ETag and
    # Last-Modified from the file.
    # A job's files are whatever its trainer (or a provider) wrote: an HTML file with a script
    # served inline on this origin would run with a signed-in user's cookies. A browser
    # downloads it instead, never sniffs another type, and runs no script in it if shown.
    return FileResponse(
        found,
        filename=found.name,
        content_disposition_type="attachment",
        headers=UNTRUSTED_FILE_HEADERS,
    )


UNTRUSTED_FILE_HEADERS = {
    "Content-Security-Policy": "sandbox",
    "X-Content-Type-Options": "nosniff",
}


_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def _unsatisfiable(header: str, size: int) -> bool:
    """Every range of a well-formed `bytes=` header lies past the end (RFC 9110 §14.1.1);
    a malformed header is left to the file response, which ignores or refuses it."""
    unit, _, ranges = header.partition("=")
    if unit.strip().lower() != "bytes":
        return False
    starts: list[bool] = []
    for part in ranges.split(","):
        match = _RANGE.match(part)
        if match is None or match.group(0).strip() == "-":
            return False
        first, last = match.groups()
        if first == "":
            starts.append(last == "" or int(last) == 0 or size == 0)
        else:
            starts.append(int(first) >= size)
    return bool(starts) and all(starts)
