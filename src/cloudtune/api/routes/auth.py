"""/api/auth: setup, login, logout, me, users; API keys (also under /api/cloud/auth)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, Field

from cloudtune.api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    CallerDep,
    CtxDep,
    credential,
    get_context,
)
from cloudtune.api.errors import error_responses
from cloudtune.services import auth
from cloudtune.services.context import Context

router = APIRouter(
    tags=["auth"],
    responses=error_responses(400, 401, 403, 404, 408, 409, 413, 422, 429),
)


class FirstAdminBody(BaseModel):
    email: str = Field(max_length=255)
    username: str = Field(max_length=50)
    password: str = Field(max_length=1024)


class NewUserBody(FirstAdminBody):
    role: str = "researcher"


class LoginBody(BaseModel):
    username: str = Field(max_length=255, description="Username or e-mail.")
    password: str = Field(max_length=1024)


class ApiKeyBody(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    expires_days: int | None = None
    scoped_permissions: list[str] | None = Field(
        default=None,
        description="Omit for a key with all of your permissions; else at least one of them.",
    )


class UserOut(BaseModel):
    id: str | None
    username: str
    email: str | None
    role: str
    created_at: str | None


class LoginResponse(BaseModel):
    success: bool = True
    token: str
    csrf_token: str
    expires_at: str
    user: UserOut


class ApiKeyInfo(BaseModel):
    id: str
    name: str
    key_prefix: str
    user_id: str | None
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None
    scoped_permissions: list[str] | None


class ApiKeyCreated(BaseModel):
    success: bool = True
    key: str = Field(description="The full key. Shown only in this answer.")
    key_info: ApiKeyInfo


class ApiKeyList(BaseModel):
    keys: list[ApiKeyInfo]


def _start_session(
    request: Request, response: Response, result: auth.LoginResult
) -> dict[str, Any]:
    secure = request.url.scheme == "https"
    max_age = int((result.expires_at - auth.utcnow()).total_seconds())
    # The session cookie is HttpOnly; the CSRF cookie is meant to be read by our own pages.
    for name, value, http_only in (
        (SESSION_COOKIE, result.token, True),
        (CSRF_COOKIE, result.csrf_token, False),
    ):
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=http_only,
            samesite="lax",
            secure=secure,
            path="/",
        )
    return {
        "success": True,
        "token": result.token,
        "csrf_token": result.csrf_token,
        "expires_at": result.expires_at.isoformat(),
        "user": auth.user_to_dict(result.user),
    }


@router.get("/api/auth/setup/status")
async def setup_status(request: Request, ctx: CtxDep) -> dict[str, Any]:
    exists = await ctx.in_thread(auth.users_exist, ctx)
    return {"needs_setup": not exists, "has_admin": exists}


@router.post("/api/auth/setup/first-admin", response_model=LoginResponse)
async def first_admin(
    request: Request,
    response: Response,
    ctx: CtxDep,
    body: FirstAdminBody,
    setup_token: Annotated[
        str | None,
        Header(
            alias=auth.SETUP_TOKEN_HEADER,
            description="Needed from a non-loopback address: the token in the server log.",
        ),
    ] = None,
) -> dict[str, Any]:
    auth.check_first_admin_caller(ctx, peer=_client(request), presented_token=setup_token)
    await ctx.in_thread(
        lambda: auth.create_user(
            ctx,
            username=body.username,
            email=body.email,
            password=body.password,
            role="admin",
            first_admin=True,
        )
    )
    return await _log_in(request, response, ctx, body.username, body.password)


@router.post("/api/auth/login", response_model=LoginResponse)
async def login(
    request: Request, response: Response, ctx: CtxDep, body: LoginBody
) -> dict[str, Any]:
    return await _log_in(request, response, ctx, body.username, body.password)


async def _log_in(
    request: Request, response: Response, ctx: Context, username: str, password: str
) -> dict[str, Any]:
    client = _client(request)
    result = await ctx.in_thread(
        lambda: auth.login(ctx, login_name=username, password=password, client=client)
    )
    return _start_session(request, response, result)


@router.post("/api/auth/logout")
async def logout(request: Request, response: Response) -> dict[str, bool]:
    ctx = get_context(request)
    token, _ = credential(request)
    await ctx.in_thread(auth.logout, ctx, token)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return {"success": True}


@router.get("/api/auth/me")
async def me(ctx: CtxDep, caller: CallerDep) -> dict[str, Any]:
    return await ctx.in_thread(auth.current_user, ctx, caller)


@router.get("/api/users", response_model=list[UserOut])
async def list_users(ctx: CtxDep, caller: CallerDep) -> list[dict[str, Any]]:
    return await ctx.in_thread(auth.list_users, ctx, caller)


@router.post("/api/users", response_model=UserOut, status_code=201)
async def add_user(ctx: CtxDep, caller: CallerDep, body: NewUserBody) -> dict[str, Any]:
    return await ctx.in_thread(
        lambda: auth.add_user(
            ctx,
            caller,
            username=body.username,
            email=body.email,
            password=body.password,
            role=body.role,
        )
    )


def _client(request: Request) -> str:
    # The peer address as the ASGI server reports it; X-Forwarded-For counts only where the
    # trusted-proxy middleware rewrote it (a header anyone can set must not pick the budget).
    return request.client.host if request.client else "unknown"


for prefix in ("/api/cloud/auth", "/api/auth"):
    include = prefix == "/api/cloud/auth"

    @router.post(f"{prefix}/api-keys", response_model=ApiKeyCreated, include_in_schema=include)
    async def create_api_key(ctx: CtxDep, caller: CallerDep, body: ApiKeyBody) -> dict[str, Any]:
        key, row = await ctx.in_thread(
            lambda: auth.create_api_key(
                ctx,
                caller,
                name=body.name,
                expires_days=body.expires_days,
                scoped_permissions=body.scoped_permissions,
            )
        )
        return {"success": True, "key": key, "key_info": auth.api_key_to_dict(row)}

    @router.get(f"{prefix}/api-keys", response_model=ApiKeyList, include_in_schema=include)
    async def list_api_keys(ctx: CtxDep, caller: CallerDep, all: bool = False) -> dict[str, Any]:
        rows = await ctx.in_thread(lambda: auth.list_api_keys(ctx, caller, everyone=all))
        return {"keys": [auth.api_key_to_dict(r) for r in rows]}

    @router.delete(f"{prefix}/api-keys/{{key_id}}", include_in_schema=include)
    async def revoke_api_key(ctx: CtxDep, caller: CallerDep, key_id: str) -> dict[str, Any]:
        await ctx.in_thread(auth.revoke_api_key, ctx, caller, key_id)
        return {"success": True, "id": key_id}
