"""The one place domain errors become HTTP: status codes and the error envelope
`{"success": false, "code": ..., "detail": ...}`."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloudtune import errors
from cloudtune.api.schemas import ErrorResponse

log = logging.getLogger(__name__)

STATUS_BY_ERROR: list[tuple[type[errors.CloudtuneError], int]] = [
    (errors.InvalidInputError, 400),
    (errors.AuthenticationError, 401),
    (errors.CostLimitExceededError, 402),
    (errors.PermissionDeniedError, 403),
    (errors.NotFoundError, 404),
    (errors.ConflictError, 409),
    (errors.PayloadTooLargeError, 413),
    (errors.RateLimitedError, 429),
    (errors.ProviderUnavailableError, 503),
    (errors.ProviderError, 502),
]


_MEANINGS: dict[int, str] = {
    400: "Bad input, or a Host this server does not answer to",
    401: "No credentials, or wrong ones",
    402: "A cost limit with action `block` refuses the job",
    403: "A permission is missing, or the request came from another web origin",
    404: "No such resource (or one the caller may not see)",
    408: "The request body did not arrive in time",
    409: "The resource's state does not allow it",
    413: "The request body, or the data it names, is too large",
    422: "A parameter or the body does not match the schema (`validation_error`)",
    429: "Too many attempts; see Retry-After",
    502: "The provider failed or answered nonsense",
    503: "The provider cannot be used right now",
}


# Every route can answer these, before routing: the Host check (400) and the Origin check
# (403) in cloudtune.api.guards, a body over its limit (413) or too slow (408) in
# cloudtune.api.limits; any request may carry a body.
GUARD_STATUSES = (400, 403, 408, 413)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for exactly these error answers, all in the envelope."""
    return {
        status: {"model": ErrorResponse, "description": _MEANINGS[status]}
        for status in sorted(set(statuses))
    }


def route_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: the error statuses it answers itself (401 where it resolves a
    caller, 422 where FastAPI validates a parameter or body, and its service's refusals), plus
    the guards' statuses that every route shares."""
    return error_responses(*GUARD_STATUSES, *statuses)


def status_for(exc: errors.CloudtuneError) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return status
    return 500


def envelope(status: int, code: str, detail: object, **extra: object) -> Response:
    # `error` repeats the message as one string, where scripts written for the reference
    # server read it (`jq .error`); `detail` keeps 422's list of problems.
    body: dict[str, object] = {
        "success": False,
        "code": code,
        "detail": detail,
        "error": _message(detail),
    }
    body.update({k: v for k, v in extra.items() if k not in body})
    # Messages may quote what a request carried: kept printable (a lone surrogate of a JSON
    # escape cannot be encoded, and would turn a 400 into a 500) and bounded.
    body = {k: _printable(v) for k, v in body.items()}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if "retry_after_seconds" in extra:
        headers["Retry-After"] = str(extra["retry_after_seconds"])
    return Response(
        orjson.dumps(body, default=str),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


MAX_ERROR_TEXT = 2000


def _printable(value: object) -> object:
    if isinstance(value, str):
        text = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "…"
    if isinstance(value, list | tuple):
        return [_printable(item) for item in value]
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    return value


def _message(detail: object) -> str:
    if isinstance(detail, list):
        problems = [
            f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg')}"
            for item in detail
            if isinstance(item, dict)
        ]
        return "; ".join(problems) or "the request does not match the schema"
    return str(detail)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.CloudtuneError)
    async def _domain(_request: Request, exc: errors.CloudtuneError) -> Response:
        return envelope(status_for(exc), exc.code, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return envelope(422, "validation_error", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = envelope(exc.status_code, code, exc.detail)
        response.headers.update(exc.headers or {})  # e.g. the Allow header of a 405
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return envelope(500, "internal_error", "internal error; see the server log")
