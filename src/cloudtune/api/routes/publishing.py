"""/api/cloud/publishing (the saved publishing defaults) and a job's publish state and retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel

from cloudtune.api.deps import CallerDep, CtxDep
from cloudtune.api.errors import route_errors
from cloudtune.services import publishing

router = APIRouter(tags=["publishing"])


class HubDefaultsOut(BaseModel):
    repo_id: str
    private: bool
    token_saved: bool


class S3DefaultsOut(BaseModel):
    bucket: str
    prefix: str
    region: str | None
    endpoint_url: str | None
    keys_saved: bool


class PublishingDefaultsOut(BaseModel):
    success: bool = True
    hub: HubDefaultsOut | None
    s3: S3DefaultsOut | None
    hf_token_in_environment: bool


class TargetOut(BaseModel):
    status: str
    target: str | None
    error: str | None
    attempts: int
    updated_at: str
    # The target's settings (repo_id, private; bucket, prefix, region, endpoint_url).
    model_config = {"extra": "allow"}


class JobPublishOut(BaseModel):
    success: bool = True
    job_id: str
    publish: dict[str, TargetOut] | None
    publish_error: str | None


@router.get(
    "/api/cloud/publishing", response_model=PublishingDefaultsOut, responses=route_errors(401)
)
async def get_publishing(ctx: CtxDep, caller: CallerDep) -> PublishingDefaultsOut:
    found = await ctx.in_thread(publishing.get_defaults, ctx, caller)
    return _defaults_out(found)


@router.put(
    "/api/cloud/publishing",
    response_model=PublishingDefaultsOut,
    responses=route_errors(401, 422),
)
async def put_publishing(
    ctx: CtxDep, caller: CallerDep, body: Annotated[dict[str, Any], Body()]
) -> PublishingDefaultsOut:
    found = await ctx.in_thread(publishing.update_defaults, ctx, caller, body)
    return _defaults_out(found)


@router.get(
    "/api/cloud/jobs/{job_id}/publish",
    response_model=JobPublishOut,
    responses=route_errors(401, 404),
)
async def get_job_publish(ctx: CtxDep, caller: CallerDep, job_id: str) -> JobPublishOut:
    state = await ctx.in_thread(publishing.get_publish, ctx, caller, job_id)
    return JobPublishOut(job_id=state.job_id, **publishing.publish_fields(state))


@router.post(
    "/api/cloud/jobs/{job_id}/publish/retry",
    response_model=JobPublishOut,
    responses=route_errors(401, 404, 409),
)
async def retry_job_publish(
    request: Request, ctx: CtxDep, caller: CallerDep, job_id: str
) -> JobPublishOut:
    state = await ctx.in_thread(publishing.retry_publish, ctx, caller, job_id)
    runner = getattr(request.app.state, "publish_runner", None)
    if runner is not None:
        runner.wake()  # now, not at its next round
    return JobPublishOut(job_id=state.job_id, **publishing.publish_fields(state))


def _defaults_out(found: publishing.PublishDefaults) -> PublishingDefaultsOut:
    hub, s3 = found.hub, found.s3
    return PublishingDefaultsOut(
        hub=HubDefaultsOut(repo_id=hub.repo_id, private=hub.private, token_saved=hub.token_saved)
        if hub
        else None,
        s3=S3DefaultsOut(
            bucket=s3.bucket,
            prefix=s3.prefix,
            region=s3.region,
            endpoint_url=s3.endpoint_url,
            keys_saved=s3.keys_saved,
        )
        if s3
        else None,
        hf_token_in_environment=found.hf_token_in_environment,
    )
