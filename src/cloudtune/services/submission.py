"""Submitting a job: resolve and check its config, write the job (and its idempotency key) in
one transaction, then hand it to the provider outside any transaction."""

from __future__ import annotations

import copy
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from cloudtune.domain.costs import usd_to_micros
from cloudtune.domain.hardware import HardwareProfile
from cloudtune.domain.jobs import Job, JobStatus, JobType, utcnow
from cloudtune.domain.principal import Principal
from cloudtune.domain.training import (
    MASK,
    SecretPath,
    TrainingSpec,
    build_spec,
    check_document,
    mask_secrets,
    normalise_config,
    split_secrets,
)
from cloudtune.errors import (
    CloudtuneError,
    InvalidInputError,
    PayloadTooLargeError,
    ProviderError,
)
from cloudtune.providers.base import (
    HasHardwareProfiles,
    JobBundle,
    Provider,
    Uploads,
)
from cloudtune.services import configs as config_service
from cloudtune.services import costs
from cloudtune.services.context import Context
from cloudtune.services.datasets import (
    refuse_links_out,
    require_images,
    resolve_dataset_paths,
)
from cloudtune.services.file_access import FileAccessPolicy
from cloudtune.services.packaging import (
    DatasetScan,
    Package,
    printable,
    remote_dataloader,
    scan_datasets,
)
from cloudtune.services.packaging import package as package_datasets
from cloudtune.store import jobs as job_store
from cloudtune.store.tables import JobSecretModel

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    config: dict[str, Any] | None = None
    dataloader_config: list[Any] | None = None
    config_name_to_load: str | None = None
    config_name: str | None = None
    tracker_run_name: str | None = None
    idempotency_key: str | None = None
    hardware_profile: str | None = None
    webhook_url: str | None = None
    publish: dict[str, Any] | None = None
    priority: int = 0
    max_cost_usd: float | None = None
    # Fields the request carried that this server does not know: refused by name.
    unknown_fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SubmitResult:
    job_id: str
    status: JobStatus
    idempotent_hit: bool
    data_uploaded: bool = False
    cost_limit_warning: str | None = None
    estimated_cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class _Prepared:
    job_id: str
    provider: Provider
    spec: TrainingSpec
    config_name: str | None
    offer: HardwareProfile | None = None
    scan: DatasetScan | None = None
    package: Package | None = None
    estimate_micros: int | None = None
    steps_per_second: float | None = None
    # The spec's secrets, kept apart: encrypted in the database, given to the trainer by its
    # environment or the provider's input, never in a file.
    secrets: tuple[tuple[SecretPath, Any], ...] = ()


async def submit_job(
    ctx: Context, caller: Principal, provider_name: str, request: SubmitRequest
) -> SubmitResult:
    caller.require("job.submit")
    prepared = await ctx.in_thread(_prepare, ctx, caller, provider_name, request)
    key = request.idempotency_key
    if key:
        replay = await ctx.in_thread(_find_replay, ctx, caller, key)
        if replay is not None:
            return replay
    job = _new_job(ctx, caller, prepared, request)
    warning = await ctx.in_thread(costs.check_submit, ctx, job.estimated_cost_micros)
    try:
        await ctx.in_thread(_insert, ctx, caller, job, key, prepared.secrets)
    except IntegrityError:
        assert key is not None  # only the idempotency key can collide
        replay = await ctx.in_thread(_find_replay, ctx, caller, key)
        if replay is None:
            raise
        return replay

    try:
        dataset_url = await _upload(ctx, prepared, job)
        bundle = JobBundle(
            spec=prepared.spec,
            webhook_url=ctx.trainer_webhook_url(job.job_id),
            webhook_token=ctx.tokens.job_token(job.job_id),
            dataset_url=dataset_url,
            remote_dataloader=remote_dataloader(
                prepared.spec.dataloader, prepared.scan, prepared.spec.local_datasets()
            )
            if prepared.scan
            else None,
            hardware_profile=prepared.offer.name if prepared.offer else None,
            secrets=list(prepared.secrets),
        )
        with ctx.metrics.provider_calls.labels(provider_name, "submit").time():
            handle = await prepared.provider.submit(job, bundle)
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
        status=status,
        idempotent_hit=False,
        data_uploaded=prepared.package is not None,
        cost_limit_warning=warning,
        estimated_cost_usd=_usd(job.estimated_cost_micros),
    )


async def _upload(ctx: Context, prepared: _Prepared, job: Job) -> str | None:
    if prepared.package is None or not isinstance(prepared.provider, Uploads):
        return None
    await ctx.in_thread(_switch, ctx, job.job_id, JobStatus.UPLOADING, "uploading datasets")
    return await prepared.provider.upload(job, prepared.package.path)


async def preview_job(
    ctx: Context, caller: Principal, provider_name: str, request: SubmitRequest
) -> dict[str, Any]:
    """What a submit would do, without doing it. Bounded: counts and bytes for everything,
    names for the first files and for the first excluded files of each rule."""
    caller.require("job.submit")
    prepared = await ctx.in_thread(
        _prepare, ctx, caller, provider_name, request, package_data=False
    )
    uploads = isinstance(prepared.provider, Uploads)
    scan = prepared.scan or DatasetScan()
    limit = (
        prepared.provider.upload_limit_bytes if isinstance(prepared.provider, Uploads) else None
    )
    blocked = bool(uploads and limit is not None and scan.total_bytes > limit)
    return {
        "success": True,
        "provider": provider_name,
        "config_name": prepared.config_name,
        "model_family": prepared.spec.model_family,
        "max_train_steps": prepared.spec.max_train_steps,
        "data_leaves_machine": uploads,
        "datasets": [
            {
                "id": d.id,
                "path": d.path,
                "archive_folder": d.archive_folder,
                "files": d.files,
                "images": d.images,
                "bytes": d.bytes,
            }
            for d in scan.datasets
        ],
        "files": len(scan.files),
        "bytes": scan.total_bytes,
        "excluded_files": scan.excluded_names(),
        "excluded": {
            rule: {"count": group.count, "examples": group.examples}
            for rule, group in scan.excluded.items()
        },
        "first_files": [{"path": f.arcname, "bytes": f.size} for f in scan.first_files()],
        "upload_limit_bytes": limit,
        "hardware_profile": prepared.offer.name if prepared.offer else None,
        "hardware_type": prepared.offer.label
        if prepared.offer
        else prepared.provider.hardware_type(),
        "price_per_hour_usd": _usd(prepared.offer.price_per_hour_micros)
        if prepared.offer
        else 0.0,
        "estimated_cost_usd": _usd(prepared.estimate_micros),
        "warnings": [f"{scan.total_bytes} bytes is over the {limit} byte upload limit"]
        if blocked
        else [],
        "blocked": blocked,
    }


def _prepare(
    ctx: Context,
    caller: Principal,
    provider_name: str,
    request: SubmitRequest,
    *,
    package_data: bool = True,
) -> _Prepared:
    _refuse_unsupported(request)
    provider = ctx.providers.get(provider_name)
    config: dict[str, Any] = {}
    dataloader: Any = request.dataloader_config
    config_name = request.config_name
    if request.config_name_to_load:
        named = config_service.load_for_submit(ctx, caller, request.config_name_to_load)
        config = normalise_config(named.config)
        if dataloader is None:
            dataloader = named.dataloader_config
        config_name = config_name or named.name
    if request.config is not None:
        # Both with `--` keys, so `output_dir` overrides the named config's `--output_dir`.
        config.update(normalise_config(request.config))
    if not config:
        raise _invalid("No configuration provided: send `config` or `config_name_to_load`")
    depth = ctx.settings.json_max_depth
    check_document("config", config, depth)
    check_document("dataloader_config", dataloader, depth)  # before copying it, recursively
    spec = build_spec(config, copy.deepcopy(dataloader), max_depth=depth)
    job_id = uuid.uuid4().hex
    policy = FileAccessPolicy.for_caller(ctx.settings, caller)
    local = spec.local_datasets()
    resolve_dataset_paths(spec.dataloader, local, policy)
    runs_here = provider.job_type == JobType.LOCAL.value
    policy.confine(spec, job_id=job_id, runs_here=runs_here)
    provider.check(spec)
    offer = (
        provider.offer(request.hardware_profile)
        if isinstance(provider, HasHardwareProfiles)
        else None
    )
    scan = package = None
    if local:
        scan = scan_datasets(local, policy, max_files=ctx.settings.max_dataset_files)
        require_images(scan)
        if runs_here:
            refuse_links_out(scan)
    if scan is not None and isinstance(provider, Uploads) and package_data:
        limit = provider.upload_limit_bytes
        if scan.total_bytes > limit:
            raise _too_large("the datasets", scan.total_bytes, limit)
        package = package_datasets(scan, ctx.settings.packages_dir)
        if package.size > limit:
            raise _too_large("the dataset archive", package.size, limit)
    estimate = speed = None
    if offer is not None:
        estimate, speed = costs.estimate_micros(
            ctx, offer, spec.model_family, spec.max_train_steps
        )
    _, _, secrets = split_secrets(spec.config, spec.dataloader)
    return _Prepared(
        job_id=job_id,
        provider=provider,
        spec=spec,
        config_name=config_name,
        offer=offer,
        scan=scan if isinstance(provider, Uploads) or not package_data else None,
        package=package,
        estimate_micros=estimate,
        steps_per_second=speed,
        secrets=tuple((path, value) for path, value in secrets if value != MASK),
    )


def _refuse_unsupported(request: SubmitRequest) -> None:
    """Fields a submit may carry that this server does not act on yet: refused, so nobody
    believes a model was published or a webhook will be called when neither will happen."""
    if request.unknown_fields:
        shown = [printable(n) for n in request.unknown_fields[:20]]
        names = ", ".join(f"`{n}`" for n in shown)
        raise InvalidInputError(
            f"unknown field(s) {names}: this server does not act on them; submit without them",
            code="unsupported_field",
            fields=shown,
        )
    for name, value in (("publish", request.publish), ("webhook_url", request.webhook_url)):
        if value not in (None, "", {}):
            raise InvalidInputError(
                f"`{name}` is not supported by this server yet; submit without it (the "
                "trained model is written to the job's output folder)",
                code="unsupported_field",
                field=name,
            )


def _too_large(what: str, size: int, limit: int) -> PayloadTooLargeError:
    mib = 1024 * 1024
    return PayloadTooLargeError(
        f"{what} come to {size / mib:.1f} MiB ({size} bytes), over the provider's upload limit "
        f"of {limit / mib:.0f} MiB ({limit} bytes); nothing was uploaded",
        size_bytes=size,
        limit_bytes=limit,
    )


def _invalid(detail: str) -> InvalidInputError:
    return InvalidInputError(detail, code="invalid_config")


def _new_job(ctx: Context, caller: Principal, prepared: _Prepared, request: SubmitRequest) -> Job:
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
        hardware_type=offer.label if offer else prepared.provider.hardware_type(),
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


def _insert(
    ctx: Context,
    caller: Principal,
    job: Job,
    key: str | None,
    secrets: tuple[tuple[SecretPath, Any], ...],
) -> None:
    ttl = timedelta(hours=ctx.settings.idempotency_ttl_hours)
    sealed = ctx.secret_box.seal_secrets(list(secrets)) if secrets else None
    with ctx.db.write() as session:
        job_store.insert_job(session, job)
        if sealed is not None:
            session.add(JobSecretModel(job_id=job.job_id, ciphertext=sealed))
        if key:
            job_store.claim_idempotency_key(
                session, user_id=caller.user_id, key=key, job_id=job.job_id, ttl=ttl
            )


def _find_replay(ctx: Context, caller: Principal, key: str) -> SubmitResult | None:
    with ctx.db.read() as session:
        job_id = job_store.find_idempotent_job_id(session, user_id=caller.user_id, key=key)
        job = job_store.get_job(session, job_id) if job_id else None
    if job is None:
        return None
    return SubmitResult(
        job_id=job.job_id,
        status=job.status,
        idempotent_hit=True,
        estimated_cost_usd=_usd(job.estimated_cost_micros),
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


def _usd(micros: int | None) -> float | None:
    return None if micros is None else micros / 1_000_000
