"""/api/cloud/data-consent/setting: whether local datasets may be uploaded (enforced at submit)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel

from cloudtune.api.deps import CallerDep, CtxDep
from cloudtune.api.errors import route_errors
from cloudtune.services import data_consent

router = APIRouter(prefix="/api/cloud/data-consent", tags=["providers"])


class ConsentOut(BaseModel):
    consent: Literal["ask", "allow", "deny"]


class ConsentUpdated(BaseModel):
    success: bool = True
    consent: Literal["ask", "allow", "deny"]


@router.get("/setting", response_model=ConsentOut, responses=route_errors(401))
async def get_setting(ctx: CtxDep, caller: CallerDep) -> ConsentOut:
    mode = await ctx.in_thread(data_consent.get_mode, ctx, caller)
    return ConsentOut(consent=mode.value)


@router.put("/setting", response_model=ConsentUpdated, responses=route_errors(401, 422))
async def put_setting(
    ctx: CtxDep,
    caller: CallerDep,
    body: Annotated[
        dict[str, Any],
        Body(examples=[{"consent": "ask"}], description='{"consent": "ask"|"allow"|"deny"}'),
    ],
) -> ConsentUpdated:
    mode = await ctx.in_thread(data_consent.set_mode, ctx, caller, body)
    return ConsentUpdated(consent=mode.value)
