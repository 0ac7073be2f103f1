"""The reference server's API-key paths under /api/auth, served by the same services as
/api/cloud/auth/api-keys: the list is a bare array there, the rest the same answers."""

from __future__ import annotations

from fastapi import APIRouter

from cloudtune.api.deps import CallerDep, CtxDep
from cloudtune.api.errors import route_errors
from cloudtune.api.routes import api_keys as native
from cloudtune.api.routes.api_keys import ApiKeyBody, ApiKeyCreated, ApiKeyInfo, RevokeResponse

router = APIRouter(tags=["compatibility"])


@router.post("/api/auth/api-keys", response_model=ApiKeyCreated, responses=route_errors(401, 422))
async def create_api_key(ctx: CtxDep, caller: CallerDep, body: ApiKeyBody) -> ApiKeyCreated:
    """As `POST /api/cloud/auth/api-keys`."""
    return await native.create(ctx, caller, body)


@router.get(
    "/api/auth/api-keys", response_model=list[ApiKeyInfo], responses=route_errors(401, 422)
)
async def list_api_keys(ctx: CtxDep, caller: CallerDep, all: bool = False) -> list[ApiKeyInfo]:
    """Your keys (revoked and expired ones too, with `is_active: false`) as a bare array, as
    the reference server answers; `GET /api/cloud/auth/api-keys` wraps the same in `keys`."""
    return await native.listed(ctx, caller, all)


@router.delete(
    "/api/auth/api-keys/{key_id}", response_model=RevokeResponse, responses=route_errors(401, 404)
)
async def revoke_api_key(ctx: CtxDep, caller: CallerDep, key_id: str) -> RevokeResponse:
    """As `DELETE /api/cloud/auth/api-keys/{key_id}`."""
    return await native.revoke(ctx, caller, key_id)
