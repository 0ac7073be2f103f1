"""/api/auth: setup, login, logout, me; /api/users. API keys are in api_keys.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from cloudtune.api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    CallerDep,
    CtxDep,
    credential,
    get_context,
)
from cloudtune.api.errors import route_errors
from cloudtune.api.routes import api_keys
from cloudtune.api.schemas import iso_or_none
from cloudtune.domain.accounts import DISPLAY_NAME_MAX, LOCAL_AUTH_PROVIDER, Session, User
from cloudtune.domain.jobs import utcnow
from cloudtune.services import sessions, user_admin, users
from cloudtune.services.context import Context

router = APIRouter(tags=["auth"])
# The API-key routes live in their own module, registered with these.
router.include_router(api_keys.router)

_DISPLAY_NAME = "Shown instead of the username where given; answers fall back to the username."


class FirstAdminBody(BaseModel):
    # Unknown fields are kept so the service refuses them by name (400), not dropped.
    model_config = ConfigDict(extra="allow")

    email: str = Field(max_length=255)
    username: str = Field(max_length=50)
    password: str = Field(max_length=1024)
    display_name: str | None = Field(
        default=None, min_length=1, max_length=DISPLAY_NAME_MAX, description=_DISPLAY_NAME
    )


class NewUserBody(FirstAdminBody):
    role: str = "researcher"


class ChangeUserBody(BaseModel):
    # Unknown fields are kept so the service refuses them by name (400), not dropped.
    model_config = ConfigDict(extra="allow")

    role: str | None = Field(default=None, max_length=32)
    display_name: str | None = Field(
        default=None, max_length=DISPLAY_NAME_MAX, description='"": cleared.'
    )
    is_active: bool | None = Field(
        default=None, description="false: disabled (as DELETE); true: may sign in again."
    )


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    username: str = Field(max_length=255, description="Username or e-mail.")
    password: str = Field(max_length=1024)
    remember_me: bool = Field(default=False, description="A 30-day session instead of 7 days.")


class AccountFields(BaseModel):
    """What the reference server's user answers carry that we have too."""

    display_name: str = Field(description=_DISPLAY_NAME)
    is_admin: bool = Field(description="The role grants every permission.")
    is_active: bool
    auth_provider: str = Field(
        description="Always `local`: every account has a password kept by this server."
    )
    last_login_at: str | None = Field(description="The last successful login; null if none.")


class UserOut(AccountFields):
    id: str | None = Field(description="An opaque string.")
    username: str
    email: str | None
    role: str
    created_at: str | None
    permissions: list[str] = Field(description="What the role grants.")


class LoginResponse(BaseModel):
    success: bool = True
    token: str
    csrf_token: str
    expires_at: str
    user: UserOut


class FirstAdminResponse(LoginResponse):
    message: str = "Admin account created successfully"


class MeResponse(AccountFields):
    id: str | None = Field(description="An opaque string; null for the no-users local admin.")
    username: str
    email: str | None
    role: str
    created_at: str | None
    permissions: list[str] = Field(
        description="The caller's permissions: an API key's scope narrows its user's."
    )
    auth_method: str = Field(description="local, session, cookie or api_key.")
    storage_prefix: str = Field(
        description="Where the caller's objects go in any bucket of the built-in S3 endpoint "
        '(`<username>/`; "" for an admin\'s full permissions), e.g. datasets/<prefix><name>/.'
    )


class SetupStatus(BaseModel):
    needs_setup: bool = Field(description="No user exists yet: the first admin can be made.")
    has_admin: bool
    user_count: int
    registration_enabled: bool = Field(
        description="Always false: there is no self-registration here; an admin adds users "
        "(POST /api/users)."
    )


class LogoutResponse(BaseModel):
    success: bool = True


def _user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        email=user.email,
        role=user.role,
        created_at=user.created_at.isoformat(),
        permissions=list(user.permissions),
        display_name=user.display_name or user.username,
        is_admin=user.is_admin,
        is_active=user.is_active,
        auth_provider=LOCAL_AUTH_PROVIDER,
        last_login_at=iso_or_none(user.last_login_at),
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
    status = await ctx.in_thread(users.setup_status, ctx)
    return SetupStatus(
        needs_setup=status.needs_setup,
        has_admin=status.has_admin,
        user_count=status.user_count,
        registration_enabled=status.registration_enabled,
    )


@router.post(
    "/api/auth/setup/first-admin",
    response_model=FirstAdminResponse,
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
) -> FirstAdminResponse:
    users.check_first_admin_caller(ctx, peer=_client(request), presented_token=setup_token)
    await ctx.in_thread(
        lambda: users.create_user(
            ctx,
            username=body.username,
            email=body.email,
            password=body.password,
            role="admin",
            display_name=body.display_name,
            first_admin=True,
            unknown_fields=list(body.model_extra or ()),
        )
    )
    logged_in = await _log_in(request, response, ctx, body.username, body.password, False)
    return FirstAdminResponse(**logged_in.model_dump())


@router.post(
    "/api/auth/login", response_model=LoginResponse, responses=route_errors(401, 422, 429)
)
async def login(
    request: Request, response: Response, ctx: CtxDep, body: LoginBody
) -> LoginResponse:
    return await _log_in(
        request,
        response,
        ctx,
        body.username,
        body.password,
        body.remember_me,
        unknown_fields=list(body.model_extra or ()),
    )


async def _log_in(
    request: Request,
    response: Response,
    ctx: Context,
    username: str,
    password: str,
    remember_me: bool,
    unknown_fields: list[str] | None = None,
) -> LoginResponse:
    client = _client(request)
    session = await ctx.in_thread(
        lambda: sessions.login(
            ctx,
            login_name=username,
            password=password,
            client=client,
            remember_me=remember_me,
            unknown_fields=unknown_fields or (),
        )
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
        created_at=iso_or_none(user.created_at),
        permissions=list(user.permissions),
        auth_method=user.auth_method,
        storage_prefix=caller.storage_prefix,
        display_name=user.display_name or user.username,
        is_admin=user.is_admin,
        is_active=user.is_active,
        auth_provider=LOCAL_AUTH_PROVIDER,
        last_login_at=iso_or_none(user.last_login_at),
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
            display_name=body.display_name,
            unknown_fields=list(body.model_extra or ()),
        )
    )
    return _user_out(user)


@router.patch(
    "/api/users/{user_id}", response_model=UserOut, responses=route_errors(401, 404, 409, 422)
)
async def change_user(
    ctx: CtxDep, caller: CallerDep, user_id: str, body: ChangeUserBody
) -> UserOut:
    """Change a user's role or display name, or disable (`is_active: false`) or re-enable
    the account. The last active admin stays an active admin."""
    change = user_admin.UserChange(
        role=body.role,
        display_name=body.display_name,
        is_active=body.is_active,
        unknown_fields=tuple(body.model_extra or ()),
    )
    user = await user_admin.update_user(ctx, caller, user_id, change)
    return _user_out(user)


@router.delete(
    "/api/users/{user_id}", response_model=UserOut, responses=route_errors(401, 404, 409)
)
async def disable_user(ctx: CtxDep, caller: CallerDep, user_id: str) -> UserOut:
    """Disable the account: it cannot sign in, its sessions end, its API and storage keys are
    revoked, its active jobs are cancelled; its finished jobs, configs and files stay. Not your
    own, nor the last active admin."""
    user = await user_admin.disable_user(ctx, caller, user_id)
    return _user_out(user)


def _client(request: Request) -> str:
    # The peer address as the ASGI server reports it; X-Forwarded-For counts only where the
    # trusted-proxy middleware rewrote it (a header anyone can set must not pick the budget).
    return request.client.host if request.client else "unknown"
