"""Dependencies shared by the routes: the service context and the caller."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from cloudtune.domain.principal import Principal
from cloudtune.errors import AuthenticationError, PermissionDeniedError
from cloudtune.services import callers
from cloudtune.services.context import Context

SESSION_COOKIE = "cloudtune_session"
CSRF_COOKIE = "cloudtune_csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx  # set by the app's lifespan
    return ctx


def credential(request: Request) -> tuple[str | None, bool]:
    """The presented token and whether it came from the session cookie."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationError(
                "Authorization must be 'Bearer <token>'", code="invalid_authorization"
            )
        return value.strip(), False
    key = request.headers.get("x-api-key")
    if key is not None:
        return key.strip(), False
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else (None, False)


async def get_caller(request: Request) -> Principal:
    ctx = get_context(request)
    token, from_cookie = credential(request)
    # Kept only while the database's auth epoch stands (services.credentials): a revocation
    # made by another replica counts on the very next request.
    caller = callers.cached_principal(ctx, token=token, from_cookie=from_cookie)
    if caller is None:
        caller = await ctx.in_thread(
            callers.authenticate, ctx, token=token, from_cookie=from_cookie
        )
    if from_cookie and token and request.method not in _SAFE_METHODS:
        # Cookies ride along on cross-site requests; a state change also needs the CSRF token,
        # which only our own pages can read.
        if not callers.check_csrf(ctx, token, request.headers.get(CSRF_HEADER)):
            raise PermissionDeniedError(
                f"missing or wrong {CSRF_HEADER} header for a cookie session",
                code="csrf_failed",
            )
    return caller


async def require_metrics_reader(request: Request) -> None:
    """GET /metrics: a scraper holding CLOUDTUNE_METRICS_TOKEN as its bearer token, or a caller
    with cost.manage (the local admin in no-users mode)."""
    ctx = get_context(request)
    expected = ctx.settings.metrics_token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if (
        expected is not None
        and expected.get_secret_value()
        and scheme.lower() == "bearer"
        and hmac.compare_digest(value.strip().encode(), expected.get_secret_value().encode())
    ):
        return
    caller = await get_caller(request)
    caller.require("cost.manage")


async def _context_dependency(request: Request) -> Context:
    return get_context(request)


CtxDep = Annotated[Context, Depends(_context_dependency)]
CallerDep = Annotated[Principal, Depends(get_caller)]
MetricsReaderDep = Annotated[None, Depends(require_metrics_reader)]
