"""Request body limits, enforced while the body streams in and before any route runs (so before
authentication): a body can cost the server at most its limit in memory, whoever sends it.

- A declared `Content-Length` over the limit is answered 413 at once; nothing is read.
- Otherwise bytes are counted as they arrive; the answer is 413 as soon as the count passes the
  limit, without reading the rest.
- A body that has not finished arriving `CLOUDTUNE_BODY_TIMEOUT_SECONDS` after the request
  started is answered 408, so a slow client cannot hold a request open.

Every refusal carries `Connection: close`: the server then drops the connection instead of
reading (and discarding) the rest of a body nobody wants.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloudtune.api.errors import envelope
from cloudtune.api.routes.providers import MAX_WEBHOOK_BYTES as REPLICATE_WEBHOOK_MAX_BYTES
from cloudtune.settings import Settings

log = logging.getLogger(__name__)

TRAINER_EVENT_MAX_BYTES = 256 * 1024

# Routes whose bodies follow another limit than CLOUDTUNE_MAX_BODY_BYTES, by path prefix; the
# first match wins; -1: the default limit. None: the route streams its body itself and
# enforces its own size and time limits (neither the limit nor the body timeout applies).
BODY_LIMIT_OVERRIDES: tuple[tuple[str, int | None], ...] = (
    ("/api/webhooks/trainer/", TRAINER_EVENT_MAX_BYTES),
    # Replicate sends the whole prediction, its logs included, with every event (8 MiB: why
    # that suffices is at MAX_WEBHOOK_BYTES). The route reads no body before the signature
    # headers pass.
    ("/api/webhooks/replicate", REPLICATE_WEBHOOK_MAX_BYTES),
    # The built-in S3 endpoint: uploads stream to disk with their own size limit
    # (CLOUDTUNE_STORAGE_MAX_*) and idle timeout (CLOUDTUNE_STORAGE_IDLE_TIMEOUT_SECONDS).
    # Its credential routes read JSON bodies: they keep the default.
    ("/api/cloud/storage/credentials", -1),
    ("/api/cloud/storage/", None),
)


def body_limit_for(path: str, default: int) -> int | None:
    for prefix, limit in BODY_LIMIT_OVERRIDES:
        # A prefix not ending in "/" is a whole path segment: the path itself or under it.
        if path.startswith(prefix) and (
            prefix.endswith("/") or len(path) == len(prefix) or path[len(prefix)] == "/"
        ):
            return default if limit == -1 else limit
    return default


class BodyLimit:
    """413 `payload_too_large` for a body over its route's limit, 408 `request_timeout` for one
    that arrives too slowly; both in the error envelope, neither reads the rest of the body.
    The edge middleware (cloudtune.api.edge) calls it for every http request, with the body
    headers it has read."""

    def __init__(self, settings: Settings) -> None:
        self.default_limit = settings.max_body_bytes
        self.timeout = settings.body_timeout_seconds

    async def __call__(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        declared: int | None,
        chunked: bool,
    ) -> None:
        """`declared`: the Content-Length (None when absent or not a number); `chunked`:
        whether a Transfer-Encoding came."""
        limit = body_limit_for(scope["path"], self.default_limit)
        if limit is None or (declared in (None, 0) and not chunked):
            await app(scope, receive, send)  # no body, or a route that limits its own
            return
        if declared is not None and declared > limit:
            await _too_large(limit)(scope, _nothing, send)
            return
        await _LimitedRequest(scope, receive, send, limit, self.timeout).run(app)


class _LimitedRequest:
    """One request's body accounting; answers for the app when the body goes wrong, and from
    then on tells the app the client is gone and drops whatever the app still sends."""

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, limit: int, timeout: float
    ) -> None:
        self.scope, self._receive, self._send = scope, receive, send
        self.limit = limit
        self.deadline = asyncio.get_running_loop().time() + timeout
        self.received = 0
        self.body_done = False
        self.answered = False
        self.response_started = False

    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except Exception:
            # Told the client is gone, the app may raise (ClientDisconnect); we answered already.
            if not self.answered:
                raise
            log.debug("after refusing the body of %s", self.scope["path"], exc_info=True)

    async def receive(self) -> Message:
        if self.answered:
            return {"type": "http.disconnect"}
        if self.body_done:  # e.g. a streaming response waiting for the client to leave
            return await self._receive()
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self._receive()
        except TimeoutError:
            await self._answer(
                _refusal(408, "request_timeout", "the request body did not arrive in time")
            )
            return {"type": "http.disconnect"}
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                await self._answer(_too_large(self.limit))
                return {"type": "http.disconnect"}
            self.body_done = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        if self.answered:
            return
        if message["type"] == "http.response.start":
            self.response_started = True
        await self._send(message)

    async def _answer(self, response: Response) -> None:
        self.answered = True
        if self.response_started:
            # The route answered before reading its body (no route does today): all we can do
            # is stop feeding it.
            return
        await response(self.scope, _nothing, self._send)


def _refusal(status: int, code: str, detail: str, **extra: object) -> Response:
    response = envelope(status, code, detail, **extra)
    response.headers["Connection"] = "close"
    return response


def _too_large(limit: int) -> Response:
    return _refusal(
        413, "payload_too_large", f"the request body is over {limit} bytes", limit_bytes=limit
    )


async def _nothing() -> Message:
    return {"type": "http.disconnect"}
