"""Dependencies shared by the routes: the service context and the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cloudtune.domain.principal import Principal
from cloudtune.errors import AuthenticationError, PermissionDeniedError
from cloudtune.services import auth
from cloudtune.services.context import Context

SESSION_COOKIE = "cloudtune_session"
CSRF_COOKIE = "cloudtune_csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_context(request: Request) -> Context:
    return request.app.state.ctx  # type: ignore[no-any-return]


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
    """async: FastAPI would run a plain function in the thread pool, a costly hop per request."""
    ctx, state = get_context(request), request.app.state.auth
    token, from_cookie = credential(request)
    caller = auth.cached_principal(ctx, state, token=token, from_cookie=from_cookie)
    if caller is None:
        caller = await ctx.in_thread(
            auth.authenticate, ctx, state, token=token, from_cookie=from_cookie
        )
    if from_cookie and token and request.method not in _SAFE_METHODS:
        # Cookies ride along on cross-site requests; a state change also needs the CSRF token,
        # which only our own pages can read.
        if not auth.check_csrf(ctx, token, request.headers.get(CSRF_HEADER)):
            raise PermissionDeniedError(
                f"missing or wrong {CSRF_HEADER} header for a cookie session",
                code="csrf_failed",
            )
    return caller


async def _context_dependency(request: Request) -> Context:
    return get_context(request)


CtxDep = Annotated[Context, Depends(_context_dependency)]
CallerDep = Annotated[Principal, Depends(get_caller)]
