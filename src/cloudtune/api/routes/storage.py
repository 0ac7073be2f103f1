"""/api/cloud/storage: the built-in S3-compatible endpoint (path-style), and its access keys.

The object routes speak S3's protocol, not this API's: they are left out of the OpenAPI
document (docs/storage.md describes them) and answer S3's XML error document to signed
callers. Bodies stream: the edge neither caps nor times them (cloudtune.api.limits); the
object store bounds their size (CLOUDTUNE_STORAGE_MAX_*) and an idle body is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from cloudtune.api.deps import CallerDep, CtxDep, get_caller, get_context
from cloudtune.api.errors import envelope, route_errors, status_for
from cloudtune.api.schemas import iso_or_none
from cloudtune.domain.principal import Principal
from cloudtune.errors import CloudtuneError
from cloudtune.services.storage import credentials, s3
from cloudtune.services.storage import xml as s3xml
from cloudtune.services.storage.credentials import MAX_EXPIRES_DAYS, StorageCredential
from cloudtune.services.storage.errors import S3_STATUS

router = APIRouter(tags=["storage"])
CREDENTIALS = "/api/cloud/storage/credentials"
READ_CHUNK = 1024 * 1024


class CredentialBody(BaseModel):
    # Unknown fields are kept so the service refuses them by name (400), not dropped.
    model_config = ConfigDict(extra="allow")

    bucket: str = Field(min_length=3, max_length=63, description="The one bucket it reaches.")
    expires_days: int | None = Field(
        default=None, ge=1, le=MAX_EXPIRES_DAYS, description="Days it lives (default 30)."
    )
    prefix: str | None = Field(
        default=None,
        max_length=1024,
        description="Keys it reaches; a non-admin's is under `<username>/` (the default).",
    )
    access: str | None = Field(
        default=None,
        description="`read` or `read-write`; default read-write with storage.write.",
    )


class CredentialInfo(BaseModel):
    access_key_id: str
    bucket: str
    prefix: str
    access: str
    user_id: str | None
    job_id: str | None
    created_at: str
    expires_at: str | None
    revoked_at: str | None


class CredentialCreated(CredentialInfo):
    success: bool = True
    secret_access_key: str = Field(description="Shown only in this answer.")
    endpoint_url: str


class CredentialList(BaseModel):
    credentials: list[CredentialInfo]


class CredentialRevoked(BaseModel):
    success: bool = True
    access_key_id: str


def _info(c: StorageCredential) -> dict[str, object]:
    return {
        "access_key_id": c.access_key_id,
        "bucket": c.bucket,
        "prefix": c.prefix,
        "access": "read-write" if c.can_write else "read",
        "user_id": c.user_id,
        "job_id": c.job_id,
        "created_at": c.created_at.isoformat(),
        "expires_at": iso_or_none(c.expires_at),
        "revoked_at": iso_or_none(c.revoked_at),
    }


@router.post(
    "/api/cloud/storage/credentials",
    response_model=CredentialCreated,
    responses=route_errors(401, 422),
)
async def create_credential(
    ctx: CtxDep, caller: CallerDep, body: CredentialBody
) -> CredentialCreated:
    made = await ctx.in_thread(
        lambda: credentials.create_credential(
            ctx,
            caller,
            bucket=body.bucket,
            expires_days=body.expires_days,
            prefix=body.prefix,
            access=body.access,
            unknown_fields=list(body.model_extra or ()),
        )
    )
    return CredentialCreated(
        **_info(made.credential),  # type: ignore[arg-type]
        secret_access_key=made.secret_access_key,
        endpoint_url=f"{ctx.settings.base_url}{s3.PREFIX}",
    )


@router.get(
    "/api/cloud/storage/credentials", response_model=CredentialList, responses=route_errors(401)
)
async def list_credentials(ctx: CtxDep, caller: CallerDep) -> CredentialList:
    found = await ctx.in_thread(credentials.list_credentials, ctx, caller)
    return CredentialList(credentials=[CredentialInfo(**_info(c)) for c in found])  # type: ignore[arg-type]


@router.delete(
    "/api/cloud/storage/credentials/{access_key_id}",
    response_model=CredentialRevoked,
    responses=route_errors(401, 404),
)
async def revoke_credential(
    ctx: CtxDep, caller: CallerDep, access_key_id: str
) -> CredentialRevoked:
    await ctx.in_thread(credentials.revoke_credential, ctx, caller, access_key_id)
    return CredentialRevoked(access_key_id=access_key_id)


_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"]


@router.api_route(s3.PREFIX, methods=_METHODS, include_in_schema=False)
@router.api_route(s3.PREFIX + "/{rest:path}", methods=_METHODS, include_in_schema=False)
async def s3_endpoint(request: Request) -> Response:
    path = request.scope["path"]
    if path == CREDENTIALS or path.startswith(CREDENTIALS + "/"):
        # `credentials` is this API's, not a bucket: another method there is a plain 405.
        allowed = "GET, POST" if path == CREDENTIALS else "DELETE"
        refused = envelope(405, "method_not_allowed", "Method Not Allowed")
        refused.headers["Allow"] = allowed
        return refused
    ctx = get_context(request)
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    # Requests from S3 clients (signed, also with a signature we refuse) get S3's XML errors.
    signed = request.headers.get("authorization", "").startswith(("AWS4-HMAC-SHA256", "AWS ")) or (
        "X-Amz-Algorithm=" in raw_query or "AWSAccessKeyId=" in raw_query
    )

    async def caller() -> Principal:
        return await get_caller(request)

    raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
    req = s3.S3Request(
        method=request.method,
        path=request.scope["path"],
        raw_path=raw_path.decode("latin-1"),
        raw_query=raw_query,
        query=parse_qsl(raw_query, keep_blank_values=True),
        headers=dict(request.headers.items()),
        body=_body(request, ctx.settings.storage_idle_timeout_seconds),
        caller=caller,
    )
    try:
        answer = await s3.handle(ctx, req)
    except CloudtuneError as exc:
        return _refusal(exc, request, signed)
    return _render(answer, request.method == "HEAD")


async def _body(request: Request, idle: float) -> AsyncIterator[bytes]:
    stream = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise CloudtuneError(
                "Your socket connection to the server was not read from or written to within "
                "the timeout period.",
                code="RequestTimeout",
            ) from exc
        if chunk:
            yield chunk


def _refusal(exc: CloudtuneError, request: Request, signed: bool) -> Response:
    status = S3_STATUS.get(exc.code) or status_for(exc)
    if status == 500:
        status = 400
    if not signed:
        response = envelope(status, exc.code, exc.detail, **exc.extra)
    else:
        body = s3xml.error(exc.code, exc.detail, request.url.path, s3.request_id())
        response = Response(body, status_code=status, media_type="application/xml")
    if request.method in ("PUT", "POST"):
        # A refused body may not have been read (or, with `Expect: 100-continue`, not yet
        # sent): the connection goes, or its rest would be read as the next request.
        response.headers["Connection"] = "close"
    if request.method == "HEAD":
        response.body = b""
        response.headers["Content-Length"] = "0"
    return response


def _render(answer: s3.S3Response, head: bool) -> Response:
    if answer.json is not None:
        return Response(
            orjson.dumps(answer.json),
            status_code=answer.status,
            headers=answer.headers,
            media_type="application/json",
        )
    if isinstance(answer.body, s3.FileBody) and not head:
        return StreamingResponse(
            _file_chunks(answer.body), status_code=answer.status, headers=answer.headers
        )
    body = answer.body if isinstance(answer.body, bytes) else b""
    headers = dict(answer.headers)
    if not head:
        headers.pop("Content-Length", None)
    return Response(body, status_code=answer.status, headers=headers, media_type=answer.media_type)


async def _file_chunks(body: s3.FileBody) -> AsyncIterator[bytes]:
    handle = await anyio.to_thread.run_sync(lambda: open(body.path, "rb"))  # noqa: SIM115
    try:
        await anyio.to_thread.run_sync(handle.seek, body.start)
        remaining = body.length
        while remaining > 0:
            chunk = await anyio.to_thread.run_sync(handle.read, min(READ_CHUNK, remaining))
            if not chunk:
                break  # the file shrank (replaced) since its size was read
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()
