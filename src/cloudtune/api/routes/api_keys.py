"""/api/cloud/auth/api-keys: scoped API keys (the reference server's paths are in
compat/auth.py, served by the same services)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from cloudtune.api.deps import CallerDep, CtxDep
from cloudtune.api.errors import route_errors
from cloudtune.api.schemas import iso_or_none
from cloudtune.domain.accounts import ApiKey
from cloudtune.services import api_keys
from cloudtune.services.api_keys import MAX_EXPIRES_DAYS

router = APIRouter(tags=["auth"])


class ApiKeyBody(BaseModel):
    # Unknown fields are kept so the service refuses them by name (400), not dropped.
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=128)
    expires_days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_EXPIRES_DAYS,
        description=f"Days until the key expires (1-{MAX_EXPIRES_DAYS}); omit for no expiry.",
    )
    scoped_permissions: list[str] | None = Field(
        default=None,
        description="Omit for a key with all of your permissions; else at least one of them.",
    )


class ApiKeyInfo(BaseModel):
    id: str = Field(description="An opaque string.")
    name: str
    key_prefix: str
    user_id: str | None
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None
    is_active: bool = Field(
        description="The key would be accepted now: not revoked, not expired, and not a key "
        "of the no-users local admin once users exist."
    )
    scoped_permissions: list[str] | None


class ApiKeyCreated(BaseModel):
    success: bool = True
    key: str = Field(description="The full key. Shown only in this answer.")
    key_info: ApiKeyInfo


class ApiKeyList(BaseModel):
    keys: list[ApiKeyInfo]


class RevokeResponse(BaseModel):
    success: bool = True
    id: str


def key_info(key: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=key.id,
        name=key.name,
        key_prefix=key.key_prefix,
        user_id=key.user_id,
        created_at=key.created_at.isoformat(),
        expires_at=iso_or_none(key.expires_at),
        last_used_at=iso_or_none(key.last_used_at),
        revoked_at=iso_or_none(key.revoked_at),
        is_active=key.is_active,
        scoped_permissions=list(key.scoped_permissions)
        if key.scoped_permissions is not None
        else None,
    )


async def create(ctx: CtxDep, caller: CallerDep, body: ApiKeyBody) -> ApiKeyCreated:
    made = await ctx.in_thread(
        lambda: api_keys.create_api_key(
            ctx,
            caller,
            name=body.name,
            expires_days=body.expires_days,
            scoped_permissions=body.scoped_permissions,
            unknown_fields=list(body.model_extra or ()),
        )
    )
    return ApiKeyCreated(key=made.key, key_info=key_info(made.info))


async def listed(ctx: CtxDep, caller: CallerDep, everyone: bool) -> list[ApiKeyInfo]:
    keys = await ctx.in_thread(lambda: api_keys.list_api_keys(ctx, caller, everyone=everyone))
    return [key_info(k) for k in keys]


async def revoke(ctx: CtxDep, caller: CallerDep, key_id: str) -> RevokeResponse:
    await ctx.in_thread(api_keys.revoke_api_key, ctx, caller, key_id)
    return RevokeResponse(id=key_id)


@router.post(
    "/api/cloud/auth/api-keys", response_model=ApiKeyCreated, responses=route_errors(401, 422)
)
async def create_api_key(ctx: CtxDep, caller: CallerDep, body: ApiKeyBody) -> ApiKeyCreated:
    return await create(ctx, caller, body)


@router.get(
    "/api/cloud/auth/api-keys", response_model=ApiKeyList, responses=route_errors(401, 422)
)
async def list_api_keys(ctx: CtxDep, caller: CallerDep, all: bool = False) -> ApiKeyList:
    return ApiKeyList(keys=await listed(ctx, caller, all))


@router.delete(
    "/api/cloud/auth/api-keys/{key_id}",
    response_model=RevokeResponse,
    responses=route_errors(401, 404),
)
async def revoke_api_key(ctx: CtxDep, caller: CallerDep, key_id: str) -> RevokeResponse:
    return await revoke(ctx, caller, key_id)
