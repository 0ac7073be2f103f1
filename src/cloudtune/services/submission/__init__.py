"""Submitting a job: a retry with a known idempotency key answers its job at once; otherwise
the request is merged, its paths resolved, its data scanned and packaged
(`submission.prepare`), the job and its key written in one transaction, and the job handed to
the provider outside any transaction."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from sqlalchemy.exc import IntegrityError

from cloudtune.domain.costs import usd_to_micros
from cloudtune.domain.jobs import ORPHAN_AFTER, Job, JobStatus, JobType, utcnow
from cloudtune.domain.principal import Principal
from cloudtune.domain.training import mask_secrets
from cloudtune.errors import CloudtuneError, ProviderError, UnconfirmedSubmitError
from cloudtune.providers.base import (
    JobBundle,
    StagesThroughStorage,
    Uploads,
    datasets_to_send,
)
from cloudtune.services import costs, data_consent
from cloudtune.services.context import Context
from cloudtune.services.packaging import remote_dataloader
from cloudtune.services.storage import JobStorageCredentials, mint_job_credentials, staging
from cloudtune.services.submission.idempotency import SubmitResult, find_replay, insert_job
from cloudtune.services.submission.prepare import Prepared, Preview, prepare, preview
from cloudtune.services.submission.request import SubmitRequest
from cloudtune.store import jobs as job_store

__all__ = ["Preview", "SubmitRequest", "SubmitResult", "preview_job", "submit_job"]

log = logging.getLogger(__name__)


async def submit_job(
    ctx: Context, caller: Principal, provider_name: str | None, request: SubmitRequest
) -> SubmitResult:
    """Submit to the named provider, or to the default one (`default_provider`) when the
    request names none."""
    caller.require("job.submit")
    provider_name = provider_name or ctx.settings.default_provider
    key = request.idempotency_key
    if key:
        # Before any check of paths or data: a retry answers the job it made even when its
        # datasets have moved since, and costs no scan or packaging.
        replay = await ctx.in_thread(find_replay, ctx, caller, key)
        if replay is not None:
            return replay
    prepared = await ctx.in_thread(prepare, ctx, caller, provider_name, request)
    job = _new_job(caller, prepared, request)
    if isinstance(prepared.provider, StagesThroughStorage):
        folder = await ctx.in_thread(staging.output_folder, ctx, job.job_id, job.user_id)
        job = dataclasses.replace(job, output_url=str(folder))
    warning = await ctx.in_thread(costs.check_submit, ctx, job.estimated_cost_micros)
    try:
        await ctx.in_thread(insert_job, ctx, caller, job, key, prepared.secrets, prepared.publish)
    except IntegrityError:
        assert key is not None  # only the idempotency key can collide
        replay = await ctx.in_thread(find_replay, ctx, caller, key)
        if replay is None:
            raise
        return replay

    try:
        storage = await ctx.in_thread(mint_job_credentials, ctx, job.job_id, job.user_id)
        dataset_url = await _upload(ctx, prepared, job, storage)
        bundle = JobBundle(
            spec=prepared.spec,
            webhook_url=ctx.trainer_webhook_url(job.job_id),
            webhook_token=ctx.tokens.job_token(job.job_id),
            dataset_url=dataset_url,
            remote_dataloader=remote_dataloader(
                prepared.spec.dataloader,
                prepared.scan,
                datasets_to_send(prepared.provider, prepared.spec),
            )
            if prepared.scan
            else None,
            hardware_profile=prepared.offer.name if prepared.offer else None,
            secrets=list(prepared.secrets),
            publish=prepared.publish.settings if prepared.publish else None,
            storage=storage,
        )
        with ctx.metrics.provider_calls.labels(provider_name, "submit").time():
            handle = await prepared.provider.submit(job, bundle)
    except UnconfirmedSubmitError as exc:
        # It may be running (and billing) at the provider: the job stays active with no
        # reference, where a sync or the reconciler's lost-job check adopts it if it exists,
        # or fails it once it is old enough to have been found.
        ctx.metrics.provider_errors.labels(provider_name, "submit").inc()
        log.warning("job %s: %s; left for the lost-job check", job.job_id, exc.detail)
        raise UnconfirmedSubmitError(
            f"{exc.detail}. Job {job.job_id} is kept active until a sync "
            "(POST /api/cloud/jobs/sync) finds it at the provider, or fails after "
            f"{int(ORPHAN_AFTER.total_seconds() // 60)} minutes if it was never created",
            provider=provider_name,
            job_id=job.job_id,
        ) from None
    except Exception as exc:
        ctx.metrics.submits.labels(provider_name, "failed").inc()
        ctx.metrics.provider_errors.labels(provider_name, "submit").inc()
        error = exc if isinstance(exc, CloudtuneError) else None
        detail = error.detail if error else f"{type(exc).__name__}: {exc}"
        log.exception("job %s: provider %s refused the submit", job.job_id, provider_name)
        await ctx.in_thread(_fail, ctx, job.job_id, f"submit to {provider_name} failed: {detail}")
        if error:
            raise
        raise ProviderError(f"{provider_name}: {detail}", provider=provider_name) from exc
    status = await ctx.in_thread(_mark_submitted, ctx, job.job_id, handle.ref, handle.data)
    if status.is_terminal:
        # Cancelled while the provider was taking it: take it back from the provider too.
        await prepared.provider.cancel(handle)
    ctx.metrics.submits.labels(provider_name, "accepted").inc()
    ctx.wake_reconciler()
    return SubmitResult(
        job_id=job.job_id,
        provider=job.provider,
        status=status,
        idempotent_hit=False,
        data_uploaded=prepared.package is not None,
        cost_limit_warning=warning,
        estimated_cost_micros=job.estimated_cost_micros,
    )


async def preview_job(
    ctx: Context, caller: Principal, provider_name: str | None, request: SubmitRequest
) -> Preview:
    """What a submit would do, without doing it."""
    caller.require("job.submit")
    provider_name = provider_name or ctx.settings.default_provider
    prepared = await ctx.in_thread(
        prepare, ctx, caller, provider_name, request, package_data=False
    )
    mode = await ctx.in_thread(data_consent.load_mode, ctx)
    return preview(provider_name, prepared, mode.value)


async def _upload(
    ctx: Context, prepared: Prepared, job: Job, storage: JobStorageCredentials
) -> str | None:
    """Where the packaged datasets went: to the provider's own file store, or staged under
    the job's prefix of the built-in endpoint for a trainer that reads them from there."""
    provider = prepared.provider
    if prepared.package is None:
        return None
    if isinstance(provider, StagesThroughStorage):
        return await ctx.in_thread(staging.stage_datasets, ctx, storage, prepared.package.path)
    if not isinstance(provider, Uploads):
        return None
    await ctx.in_thread(_switch, ctx, job.job_id, JobStatus.UPLOADING, "uploading datasets")
    return await provider.upload(job, prepared.package.path)


def _new_job(caller: Principal, prepared: Prepared, request: SubmitRequest) -> Job:
    spec = prepared.spec
    run_name = request.tracker_run_name or spec.get("tracker_run_name")
    metadata: dict[str, Any] = {"model_family": spec.model_family}
    if run_name:
        metadata["tracker_run_name"] = run_name
    local = prepared.provider.job_type == JobType.LOCAL.value
    offer = prepared.offer
    if offer:
        metadata["hardware_profile"] = offer.name
    if prepared.steps_per_second is not None:
        metadata["estimate_steps_per_second"] = round(prepared.steps_per_second, 4)
    return Job(
        job_id=prepared.job_id,
        job_type=JobType(prepared.provider.job_type),
        provider=prepared.provider.name,
        status=JobStatus.PENDING,
        created_at=utcnow(),
        config_name=prepared.config_name,
        tracker_run_name=run_name,
        user_id=caller.user_id,
        priority=request.priority,
        hardware_type=offer.display_name if offer else prepared.provider.hardware_type(),
        hardware_profile=offer.name if offer else request.hardware_profile or "local",
        price_per_hour_micros=offer.price_per_hour_micros if offer else 0 if local else None,
        estimated_cost_micros=prepared.estimate_micros,
        max_cost_micros=usd_to_micros(request.max_cost_usd)
        if request.max_cost_usd is not None
        else None,
        output_url=spec.get("output_dir") if local else None,
        metadata=metadata,
        config_snapshot={
            "config": mask_secrets(spec.config),
            "dataloader_config": mask_secrets(spec.dataloader),
        },
    )


def _switch(ctx: Context, job_id: str, status: JobStatus, message: str) -> None:
    with ctx.db.write() as session:
        job_store.switch_job_status(session, job_id, status, message=message)


def _fail(ctx: Context, job_id: str, reason: str) -> None:
    with ctx.db.write() as session:
        job_store.switch_job_status(session, job_id, JobStatus.FAILED, error_message=reason)


def _mark_submitted(ctx: Context, job_id: str, ref: str, data: dict[str, Any]) -> JobStatus:
    with ctx.db.write() as session:
        job = job_store.get_job(session, job_id)
        fields: dict[str, Any] = {"provider_ref": ref, "provider_data": data}
        if job is not None and job.job_type == JobType.CLOUD:
            fields["metadata"] = {**job.metadata, "prediction_id": ref, **data}
        job_store.update_job_fields(session, job_id, **fields)
        change = job_store.switch_job_status(
            session, job_id, JobStatus.QUEUED, message="accepted by provider"
        )
    return change.job.status if change else JobStatus.QUEUED
