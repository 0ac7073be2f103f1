"""/api/auth: setup, login, logout, me, users; API keys (also under /api/cloud/auth)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

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
from cloudtune.api.errors import route_errors
from cloudtune.domain.accounts import ApiKey, Session, User
from cloudtune.domain.jobs import utcnow
from cloudtune.services import api_keys, callers, sessions, users
from cloudtune.services.context import Context

router = APIRouter(tags=["auth"])


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


class MeResponse(BaseModel):
    id: str | None
    username: str
    email: str | None
    role: str
    created_at: str | None
    permissions: list[str]
    auth_method: str = Field(description="local, session, cookie or api_key.")


class SetupStatus(BaseModel):
    needs_setup: bool
    has_admin: bool


class LogoutResponse(BaseModel):
    success: bool = True


class RevokeResponse(BaseModel):
    success: bool = True
    id: str


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        email=user.email,
        role=user.role,
        created_at=user.created_at.isoformat(),
    )


def _key_info(key: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=key.id,
        name=key.name,
        key_prefix=key.key_prefix,
        user_id=key.user_id,
        created_at=key.created_at.isoformat(),
        expires_at=_iso(key.expires_at),
        last_used_at=_iso(key.last_used_at),
        revoked_at=_iso(key.revoked_at),
        scoped_permissions=list(key.scoped_permissions)
        if key.scoped_permissions is not None
        else None,
    )


def _start_session(request: Request, response: Response, login: Session) -> LoginResponse:
    secure = request.url.scheme == "https"
    max_age = int((login.expires_at - utcnow()).total_seconds())
    # The session cookie is HttpOnly; the CSRF cookie is meant to be read by our own pages.
    for name, value, http_only in (
        (SESSION_COOKIE, login.token, True),
        (CSRF_COOKIE, login.csrf_token, False),
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
    return LoginResponse(
        token=login.token,
        csrf_token=login.csrf_token,
        expires_at=login.expires_at.isoformat(),
        user=_user_out(login.user),
    )


@router.get("/api/auth/setup/status", response_model=SetupStatus, responses=route_errors())
async def setup_status(ctx: CtxDep) -> SetupStatus:
    exists = await ctx.in_thread(callers.users_exist, ctx)
    return SetupStatus(needs_setup=not exists, has_admin=exists)


@router.post(
    "/api/auth/setup/first-admin",
    response_model=LoginResponse,
    responses=route_errors(401, 409, 422, 429),
)
async def first_admin(
    request: Request,
    response: Response,
    ctx: CtxDep,
    body: FirstAdminBody,
    setup_token: Annotated[
        str | None,
        Header(
            alias=users.SETUP_TOKEN_HEADER,
            description="Needed from a non-loopback address: the token in the server log.",
        ),
    ] = None,
) -> LoginResponse:
    users.check_first_admin_caller(ctx, peer=_client(request), presented_token=setup_token)
    await ctx.in_thread(
        lambda: users.create_user(
            ctx,
            username=body.username,
            email=body.email,
            password=body.password,
            role="admin",
            first_admin=True,
        )
    )
    return await _log_in(request, response, ctx, body.username, body.password)


@router.post(
    "/api/auth/login", response_model=LoginResponse, responses=route_errors(401, 422, 429)
)
async def login(
    request: Request, response: Response, ctx: CtxDep, body: LoginBody
) -> LoginResponse:
    return await _log_in(request, response, ctx, body.username, body.password)


async def _log_in(
    request: Request, response: Response, ctx: Context, username: str, password: str
) -> LoginResponse:
    client = _client(request)
    session = await ctx.in_thread(
        lambda: sessions.login(ctx, login_name=username, password=password, client=client)
    )
    return _start_session(request, response, session)


@router.post("/api/auth/logout", response_model=LogoutResponse, responses=route_errors(401))
async def logout(request: Request, response: Response) -> LogoutResponse:
    ctx = get_context(request)
    token, _ = credential(request)
    await ctx.in_thread(sessions.logout, ctx, token)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return LogoutResponse()


@router.get("/api/auth/me", response_model=MeResponse, responses=route_errors(401))
async def me(ctx: CtxDep, caller: CallerDep) -> MeResponse:
    user = await ctx.in_thread(users.current_user, ctx, caller)
    return MeResponse(
        id=user.id,
        username=user.username,
        email=user.email,
        role=user.role,
        created_at=_iso(user.created_at),
        permissions=list(user.permissions),
        auth_method=user.auth_method,
    )


@router.get("/api/users", response_model=list[UserOut], responses=route_errors(401))
async def list_users(ctx: CtxDep, caller: CallerDep) -> list[UserOut]:
    return [_user_out(u) for u in await ctx.in_thread(users.list_users, ctx, caller)]


@router.post(
    "/api/users", response_model=UserOut, status_code=201, responses=route_errors(401, 409, 422)
)
async def add_user(ctx: CtxDep, caller: CallerDep, body: NewUserBody) -> UserOut:
    user = await ctx.in_thread(
        lambda: users.add_user(
            ctx,
            caller,
            username=body.username,
            email=body.email,
            password=body.password,
            role=body.role,
        )
    )
    return _user_out(user)


def _client(request: Request) -> str:
    # The peer address as the ASGI server reports it; X-Forwarded-For counts only where the
    # trusted-proxy middleware rewrote it (a header anyone can set must not pick the budget).
    return request.client.host if request.client else "unknown"


for prefix in ("/api/cloud/auth", "/api/auth"):
    include = prefix == "/api/cloud/auth"

    @router.post(
        f"{prefix}/api-keys",
        response_model=ApiKeyCreated,
        include_in_schema=include,
        responses=route_errors(401, 422),
    )
    async def create_api_key(ctx: CtxDep, caller: CallerDep, body: ApiKeyBody) -> ApiKeyCreated:
        made = await ctx.in_thread(
            lambda: api_keys.create_api_key(
                ctx,
                caller,
                name=body.name,
                expires_days=body.expires_days,
                scoped_permissions=body.scoped_permissions,
            )
        )
        return ApiKeyCreated(key=made.key, key_info=_key_info(made.info))

    @router.get(
        f"{prefix}/api-keys",
        response_model=ApiKeyList,
        include_in_schema=include,
        responses=route_errors(401, 422),
    )
    async def list_api_keys(ctx: CtxDep, caller: CallerDep, all: bool = False) -> ApiKeyList:
        keys = await ctx.in_thread(lambda: api_keys.list_api_keys(ctx, caller, everyone=all))
        return ApiKeyList(keys=[_key_info(k) for k in keys])

    @router.delete(
        f"{prefix}/api-keys/{{key_id}}",
        response_model=RevokeResponse,
        include_in_schema=include,
        responses=route_errors(401, 404),
    )
    async def revoke_api_key(ctx: CtxDep, caller: CallerDep, key_id: str) -> RevokeResponse:
        await ctx.in_thread(api_keys.revoke_api_key, ctx, caller, key_id)
        return RevokeResponse(id=key_id)
