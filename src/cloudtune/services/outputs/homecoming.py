"""A remote job's output files, brought home before the job shows `completed`.

How a job waits for its outputs: when a provider whose outputs are expiring links (`HasOutputs`)
says a job succeeded, `services.provider_status` keeps the job `running` and, in the same
transaction, plans an `outputs` delivery (one job_deliveries row) holding the links and the
folder. A worker of whichever replica claims that row streams the files home, then finishes the
row and switches the job to `completed` through the one status-change function, in one
transaction. Why `running` rather than a new status: every client already reads `running` as
"not done yet", the transition table needs no new edge, and the job stays active so the usual
readers (lists, waits, cost caps) treat it as unfinished; `completed` then means "the weights are
on this machine" (or, with `delivery_error`, that they could not be fetched). Why a row: the claim
lives in the database, so one replica at a time downloads, a dead replica's claim runs out and
another resumes, and the state and error are visible to the API.

A download that still fails after its retries completes the job anyway with the error shown as
`delivery_error`: the training succeeded and is billed, and a job left `running` for ever would
hide that. `retry` plans it again. No network call is made inside a transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from cloudtune.domain.deliveries import Delivery, DeliveryKind, DeliveryStatus
from cloudtune.domain.jobs import Job, JobStatus
from cloudtune.domain.principal import Principal
from cloudtune.errors import CloudtuneError, ConflictError, InvalidInputError
from cloudtune.providers.base import HasOutputs, ProviderStatus
from cloudtune.services.context import Context
from cloudtune.services.outputs.names import file_names, inside, job_folder
from cloudtune.store import deliveries
from cloudtune.store import jobs as job_store

log = logging.getLogger(__name__)

KIND = DeliveryKind.OUTPUTS
# The job's metadata key that mirrors the delivery row's error, so every job read shows it
# without a join (written in the same transaction as the row).
ERROR_KEY = "delivery_error"
MAX_ERROR = 2000
# Claims of one planned delivery that may end with no answer (a replica that died or failed
# mid-way each time) before it is given up with an error, rather than tried for ever.
MAX_CLAIMS = 5


@dataclass(frozen=True, slots=True)
class Homecoming:
    """What a provider's success says must come home before the job completes."""

    urls: list[str]
    completed_at: datetime | None


def provider_of(ctx: Context, job: Job) -> HasOutputs | None:
    try:
        provider = ctx.providers.get(job.provider)
    except InvalidInputError:  # a provider this server no longer has
        return None
    return provider if isinstance(provider, HasOutputs) else None


def homecoming(ctx: Context, job: Job, status: ProviderStatus) -> Homecoming | None:
    """Not None when the provider says `job` succeeded and it has output files to fetch first
    (no I/O)."""
    provider = provider_of(ctx, job)
    if provider is None or status.status != JobStatus.COMPLETED or job.is_terminal:
        return None
    # No links at all is planned too: the delivery then says so (the provider may have removed
    # them already), rather than the job completing with nothing and no word.
    return Homecoming(provider.output_urls(status.outputs or []), status.completed_at)


def is_planned(ctx: Context, job_id: str) -> bool:
    with ctx.db.read() as session:
        return deliveries.get_delivery(session, job_id, KIND) is not None


def plan_in(session: Session, ctx: Context, job: Job, coming: Homecoming) -> Path | None:
    """In the caller's write transaction: plan the job's outputs delivery unless one exists,
    and point the job's `output_url` at its folder. The job row's lock serialises a poll and a
    webhook (or two replicas) seeing the success at once. The folder, if planned now."""
    if job_store.get_job(session, job.job_id, for_update=True) is None:
        return None
    if deliveries.get_delivery(session, job.job_id, KIND) is not None:
        return None
    folder = job_folder(session, ctx.settings, job)
    deliveries.plan(
        session,
        job.job_id,
        KIND,
        at=ctx.clock(),
        settings={
            "urls": coming.urls,
            "folder": str(folder),
            "completed_at": coming.completed_at.isoformat() if coming.completed_at else None,
            "files": {},
        },
    )
    job_store.update_job_fields(session, job.job_id, output_url=str(folder))
    return folder


async def deliver(ctx: Context, delivery: Delivery) -> str | None:
    """Fetch a claimed delivery's files (those not home yet), then finish it and complete the
    job. The error shown, or None."""
    job_id, settings = delivery.job_id, delivery.settings
    urls = [str(u) for u in settings.get("urls") or []]
    folder = Path(str(settings.get("folder")))
    home: dict[str, Any] = dict(settings.get("files") or {})
    job = await ctx.in_thread(_load_job, ctx, job_id)
    provider = provider_of(ctx, job) if job is not None else None
    errors: list[str] = []
    claims = delivery.attempts - int(settings.get("attempts_at_plan") or 0)
    if not urls:
        errors.append(
            "the provider listed no output files; they may have been removed already (its "
            "links expire some time after the job ends)"
        )
    elif claims > MAX_CLAIMS:
        errors.append(f"given up after {MAX_CLAIMS} tries that ended without an answer")
    elif provider is None:
        errors.append("this server can no longer fetch this provider's outputs")
    else:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            errors.append(f"cannot create the output folder: {exc.strerror}")
    if provider is not None and not errors:

        async def heartbeat() -> None:
            await ctx.in_thread(_heartbeat, ctx, job_id)

        for url, name in zip(urls, file_names(urls), strict=True):
            dest = inside(folder, name)
            known = home.get(name)
            if known and dest.is_file() and dest.stat().st_size == known.get("size"):
                continue  # home already (a retry after some files failed)
            if not provider.may_fetch(url):
                errors.append(f"{name}: not fetched: its link is not on the provider's file host")
                continue
            try:
                fetched = await provider.fetch_output(url, dest, heartbeat=heartbeat)
            except CloudtuneError as exc:
                errors.append(f"{name}: {exc.detail}")
                continue
            except OSError as exc:  # a full disk, a folder made unwritable
                errors.append(f"{name}: cannot write it here: {exc.strerror}")
                continue
            home[name] = {"size": fetched.size, "sha256": fetched.sha256}
    error = "; ".join(errors)[:MAX_ERROR] or None
    order = [name for name in file_names(urls) if name in home]
    await ctx.in_thread(_finish, ctx, delivery, home, order, error)
    return error


def retry(ctx: Context, caller: Principal, job: Job) -> None:
    """Plan a failed outputs delivery again (who may cancel the job may retry it)."""
    caller.require_on_job("cancel", job)
    with ctx.db.write() as session:
        current = deliveries.get_delivery(session, job.job_id, KIND)
        if current is None:
            raise ConflictError(
                f"Job {job.job_id} has no remote outputs to bring home",
                code="no_outputs_delivery",
            )
        if current.status in (DeliveryStatus.PENDING, DeliveryStatus.RUNNING):
            raise ConflictError(
                f"Job {job.job_id}'s outputs are already being brought home",
                code="delivery_in_progress",
            )
        if current.status == DeliveryStatus.DONE:
            raise ConflictError(
                f"Job {job.job_id}'s outputs are all home already", code="delivery_done"
            )
        settings = {**current.settings, "attempts_at_plan": current.attempts}
        deliveries.plan(session, job.job_id, KIND, at=ctx.clock(), settings=settings)
        _mirror_error(session, job.job_id, None)
    ctx.wake_reconciler()


def release(ctx: Context, job_id: str) -> None:
    """Hand a claimed delivery back (this replica stops): pending again, taken at once by the
    next replica that looks, instead of after its claim runs out."""
    with ctx.db.write() as session:
        current = deliveries.get_delivery(session, job_id, KIND)
        if current is not None and current.status == DeliveryStatus.RUNNING:
            deliveries.plan(session, job_id, KIND, at=ctx.clock())


def _load_job(ctx: Context, job_id: str) -> Job | None:
    with ctx.db.read() as session:
        return job_store.get_job(session, job_id)


def _heartbeat(ctx: Context, job_id: str) -> None:
    with ctx.db.write() as session:
        deliveries.heartbeat(session, job_id, KIND, at=ctx.clock())


def _finish(
    ctx: Context, delivery: Delivery, home: dict[str, Any], order: list[str], error: str | None
) -> None:
    settings = delivery.settings
    folder = str(settings.get("folder"))
    completed_at = settings.get("completed_at")
    with ctx.db.write() as session:
        deliveries.save_settings(session, delivery.job_id, KIND, {**settings, "files": home})
        deliveries.finish(
            session, delivery.job_id, KIND, at=ctx.clock(), error=error, target=folder
        )
        job = job_store.get_job(session, delivery.job_id, for_update=True)
        if job is None:
            return
        job_store.update_job_fields(
            session,
            job.job_id,
            output_url=folder,
            outputs=[str(Path(folder) / name) for name in order],
        )
        _mirror_error(session, job.job_id, error)
        job_store.switch_job_status(
            session,
            job.job_id,
            JobStatus.COMPLETED,
            message=f"{job.provider}: outputs home"
            if error is None
            else f"{job.provider}: succeeded; outputs not all home",
            completed_at=datetime.fromisoformat(completed_at) if completed_at else None,
        )


def _mirror_error(session: Session, job_id: str, error: str | None) -> None:
    job = job_store.get_job(session, job_id)
    if job is None or job.metadata.get(ERROR_KEY) == error:
        return
    metadata = {k: v for k, v in job.metadata.items() if k != ERROR_KEY}
    if error is not None:
        metadata[ERROR_KEY] = error
    job_store.update_job_fields(session, job_id, metadata=metadata)
