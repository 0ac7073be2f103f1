"""The one middleware at the HTTP edge: every request passes here first, before routing and
authentication.

In this order: the Host/Origin guard (cloudtune.api.guards.HostGuard), the client address from
trusted proxies (ProxyHeaders), then for http requests either the fast path of the two hottest
reads or the body limit (cloudtune.api.limits.BodyLimit) in front of the application.

The fast path answers a bodyless `GET` of the job list or a job's detail with
`cloudtune.api.job_reads.read_jobs`, the same function the routes call, so the caller, its
permissions and the answer are exactly the routes'; it skips only FastAPI's routing,
dependency solving and per-request objects, which cost three times the route's own work on a
cached answer (bench/RESULTS.md). Domain
errors get the envelope the application's handlers give; anything else propagates to the
application's 500 handler, as from a route.

One header scan serves every check: a request pays for one middleware, not three.

A path with one trailing slash is served as the path without it (`/api/configs/` is
`/api/configs`): scripts written for the reference server call both spellings, and the router's
own answer, a 307 with an empty body, loses a POST's body with clients that do not follow it.
The built-in S3 endpoint (`/api/cloud/storage/`) is left out of this: its object keys may end
in a slash, and its clients sign the path exactly as they sent it.
"""

from __future__ import annotations

from starlette._utils import get_route_path  # the router's own, as FastAPI uses it
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from cloudtune.api.errors import envelope, status_for
from cloudtune.api.guards import HostGuard, ProxyHeaders
from cloudtune.api.job_reads import hot_read, read_jobs
from cloudtune.api.limits import BodyLimit
from cloudtune.errors import CloudtuneError
from cloudtune.settings import Settings

_JSON_HEADERS = (b"content-type", b"application/json")


class Edge:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = HostGuard(settings)
        self.proxies = ProxyHeaders(settings)
        self.body_limit = BodyLimit(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        host = origin = fetch_site = None
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"sec-fetch-site":
                fetch_site = value.decode("latin-1").strip().lower()
            elif name == b"content-length":
                declared = int(value) if value.isdigit() else None
            elif name == b"transfer-encoding":
                chunked = True
        refusal = self.hosts.refusal(host, origin, fetch_site)
        if refusal is not None:
            await HostGuard.refuse(scope, receive, send, *refusal)
            return
        self.proxies.apply(scope)
        _drop_trailing_slash(scope)
        if kind == "websocket":
            await self.app(scope, receive, send)
            return
        if (
            scope["method"] == "GET"
            and declared in (None, 0)
            and not chunked
            and (job_id := hot_read(get_route_path(scope))) is not None
        ):
            await _serve_job_read(scope, receive, send, job_id or None)
            return
        await self.body_limit(self.app, scope, receive, send, declared=declared, chunked=chunked)


STORAGE_PREFIX = "/api/cloud/storage/"
STORAGE_CREDENTIALS = STORAGE_PREFIX + "credentials/"  # this API's own path, not a bucket


def _drop_trailing_slash(scope: Scope) -> None:
    path: str = scope["path"]
    if path.startswith(STORAGE_PREFIX) and not path.startswith(STORAGE_CREDENTIALS):
        return
    if len(path) > 1 and path.endswith("/") and not path.endswith("//"):
        scope["path"] = path[:-1]
        raw: bytes | None = scope.get("raw_path")
        if raw is not None and raw.endswith(b"/"):
            scope["raw_path"] = raw[:-1]


async def _serve_job_read(scope: Scope, receive: Receive, send: Send, job_id: str | None) -> None:
    try:
        body = await read_jobs(Request(scope, receive), job_id)
    except CloudtuneError as exc:
        await envelope(status_for(exc), exc.code, exc.detail, **exc.extra)(scope, receive, send)
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode()), _JSON_HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": body})
