"""A job's progress in one line (inline-progress) and the checks the reference server's submit
dialog calls first (available-configs, pre-submit-check), in its shapes."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from cloudtune.api.deps import CallerDep, CtxDep
from cloudtune.api.errors import route_errors
from cloudtune.services import config_repo
from cloudtune.services import configs as config_service
from cloudtune.services import inline_progress as progress_service

router = APIRouter(tags=["compatibility"])


class InlineProgressOut(BaseModel):
    job_id: str
    stage: str | None = Field(description="Read from the latest log lines; null unless running.")
    last_log: str | None = Field(description="The last log line, at most 80 characters.")
    progress: float | None = Field(description="Percent done.")


class AvailableConfig(BaseModel):
    name: str
    is_active: bool = Field(description="Always false: no config is the active one here.")


class AvailableConfigs(BaseModel):
    configs: list[AvailableConfig]
    active_config: str | None = Field(description="Always null.")


@router.get(
    "/api/cloud/jobs/{job_id}/inline-progress",
    response_model=InlineProgressOut,
    responses=route_errors(401, 404),
)
async def inline_progress(ctx: CtxDep, caller: CallerDep, job_id: str) -> InlineProgressOut:
    found = await progress_service.inline_progress(ctx, caller, job_id)
    return InlineProgressOut(**dataclasses.asdict(found))


@router.get(
    "/api/cloud/available-configs", response_model=AvailableConfigs, responses=route_errors(401)
)
def available_configs(ctx: CtxDep, caller: CallerDep) -> AvailableConfigs:
    """The configs the caller may submit, by name (`GET /api/configs` has more of each)."""
    found = config_service.list_configs(ctx, caller)
    return AvailableConfigs(
        configs=[AvailableConfig(name=c.name, is_active=False) for c in found],
        active_config=None,
    )


class PreSubmitCheckOut(BaseModel):
    git_available: bool
    repo_present: bool = Field(description="Whether the configs folder is a git work tree.")
    is_dirty: bool | None = Field(description="Null when git could not say.")
    dirty_count: int | None
    dirty_paths: list[str] = Field(description="The first 50.")
    current_commit: str | None
    current_abbrev: str | None
    current_branch: str | None
    tracker_run_name: str | None = Field(description="The named config's, when one is named.")
    config_name: str | None


@router.get(
    "/api/cloud/pre-submit-check",
    response_model=PreSubmitCheckOut,
    responses=route_errors(401, 404, 422),
)
def pre_submit_check(
    ctx: CtxDep,
    caller: CallerDep,
    config_name: Annotated[str | None, Query(max_length=128)] = None,
) -> PreSubmitCheckOut:
    """The git state of the configs folder (this server reports it and commits nothing)."""
    found = config_repo.pre_submit_check(ctx, caller, config_name)
    return PreSubmitCheckOut(
        **dataclasses.asdict(found.repo),
        tracker_run_name=found.tracker_run_name,
        config_name=found.config_name,
    )
