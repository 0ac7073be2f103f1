"""Reading, cancelling and deleting jobs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from cloudtune.domain.documents import JsonObject
from cloudtune.domain.jobs import Job, JobStatus, JobType
from cloudtune.domain.principal import Principal
from cloudtune.domain.publishing import is_publish_secret
from cloudtune.errors import ConflictError, InvalidInputError, job_not_found
from cloudtune.providers.base import (
    Forgettable,
    HasLogFile,
    Pinned,
    ProviderHandle,
    tail_lines,
)
from cloudtune.services.context import Context
from cloudtune.services.storage import staging
from cloudtune.store import jobs as job_store
from cloudtune.store import leases as lease_store
from cloudtune.store import logs as log_store
from cloudtune.store.tables import JobEventModel

log = logging.getLogger(__name__)

MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One row of a job's history: a status change or a note (written with the change)."""

    id: int
    at: datetime
    kind: str
    from_status: str | None
    to_status: str | None
    message: str | None
    data: JsonObject | None


class SyncCounts(Protocol):
    @property
    def updated(self) -> int: ...

    @property
    def discovered(self) -> int: ...


class Syncer(Protocol):
    """The reconciler, as a sync request sees it."""

    async def sync(self, provider: str | None = None) -> SyncCounts: ...


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    total: int
    limit: int
    offset: int


def parse_filter(
    caller: Principal,
    *,
    status: str | None,
    provider: str | None,
    job_type: str | None,
) -> job_store.JobFilter:
    statuses: list[JobStatus] = []
    for name in (status or "").split(","):
        name = name.strip().lower()
        if not name:
            continue
        try:
            statuses.append(JobStatus(name))
        except ValueError:
            allowed = ", ".join(s.value for s in JobStatus)
            raise InvalidInputError(
                f"Invalid status: {name}. Must be one of: {allowed}", code="invalid_filter"
            ) from None
    kind = None
    if job_type:
        try:
            kind = JobType(job_type)
        except ValueError:
            raise InvalidInputError(
                f"Invalid job_type: {job_type}. Must be 'local' or 'cloud'.", code="invalid_filter"
            ) from None
    if not (caller.has("job.view.all") or caller.has("job.view.own")):
        caller.require("job.view.own")
    return job_store.JobFilter(
        statuses=tuple(statuses),
        provider=provider or None,
        job_type=kind,
        user_id=caller.user_id,
        only_user=not caller.has("job.view.all"),
    )


def list_jobs(
    ctx: Context, caller: Principal, flt: job_store.JobFilter, *, limit: int, offset: int
) -> JobPage:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(
            f"limit must be between 1 and {MAX_LIMIT}, got {limit}", code="invalid_filter"
        )
    if offset < 0:
        raise InvalidInputError(f"offset must be 0 or more, got {offset}", code="invalid_filter")
    with ctx.db.read() as session:
        jobs = job_store.list_jobs(session, flt, limit=limit, offset=offset)
        total = job_store.count_jobs(session, flt)
    return JobPage(jobs=jobs, total=total, limit=limit, offset=offset)


def get_job(ctx: Context, caller: Principal, job_id: str) -> Job:
    with ctx.db.read() as session:
        job = job_store.get_job(session, job_id)
    if job is None:
        raise job_not_found(job_id)
    caller.require_visible(job)
    return job


def list_events(ctx: Context, caller: Principal, job_id: str) -> list[JobEvent]:
    get_job(ctx, caller, job_id)
    with ctx.db.read() as session:
        events = job_store.list_events(session, job_id)
    return [job_event_model_to_job_event(e) for e in events]


async def sync_jobs(caller: Principal, reconciler: Syncer, provider: str | None) -> SyncCounts:
    """Ask the providers about every active job now (and find jobs they run for us that we
    lost track of); for whoever may see all jobs."""
    caller.require("job.view.all")
    return await reconciler.sync(provider)


async def get_logs(ctx: Context, caller: Principal, job_id: str, tail: int | None) -> str:
    if tail is not None and tail < 0:
        raise InvalidInputError("tail must be 0 or more", code="invalid_filter")
    job = await ctx.in_thread(get_job, ctx, caller, job_id)
    return await logs_of(ctx, job, tail)


async def logs_of(ctx: Context, job: Job, tail: int | None) -> str:
    """A job's logs (its last `tail` lines), for a caller already allowed to see the job."""
    job_id = job.job_id
    if job.provider_ref is None:
        return ""
    provider = ctx.providers.get(job.provider)
    if isinstance(provider, HasLogFile):
        return await provider.logs(handle_of(job), tail)  # a file on this machine
    # A remote job's logs are what the reconciler copied into the database: a reader never
    # calls the provider (its calls are paced per job, and its breaker is everyone's).
    stored = await ctx.in_thread(_stored_logs, ctx, job_id)
    return tail_lines(stored or "", tail)


def _stored_logs(ctx: Context, job_id: str) -> str | None:
    with ctx.db.read() as session:
        return log_store.get_logs(session, job_id)


async def cancel_job(ctx: Context, caller: Principal, job_id: str) -> Job:
    job = await ctx.in_thread(get_job, ctx, caller, job_id)
    caller.require_on_job("cancel", job)
    if job.status == JobStatus.CANCELLED:
        return job
    if job.is_terminal:
        raise _state_conflict(job, "cancelled")
    held_elsewhere = False
    if job.provider_ref is not None:
        provider = ctx.providers.get(job.provider)
        handle = handle_of(job)
        # A local job of another replica is stopped by that replica, on its next pass; a
        # remote job is cancelled from here, whoever polls it (the provider's cancel is
        # idempotent).
        held_elsewhere = isinstance(provider, Pinned) and not provider.holds(handle)
        if not held_elsewhere:
            await provider.cancel(handle)
    change = await ctx.in_thread(_apply_cancel, ctx, job_id, held_elsewhere)
    if change is None:
        raise job_not_found(job_id)
    if not change.applied and change.job.status != JobStatus.CANCELLED:
        raise _state_conflict(change.job, "cancelled")
    await ctx.in_thread(staging.clear_inputs, ctx, job)
    ctx.wake_reconciler()
    return change.job


def delete_job(ctx: Context, caller: Principal, job_id: str) -> None:
    job = get_job(ctx, caller, job_id)
    caller.require_on_job("delete", job)
    if not job.is_terminal:
        raise ConflictError(
            f"Job {job_id} is {job.status.value}; cancel it before deleting it",
            code="invalid_job_state",
            job_id=job_id,
            current_state=job.status.value,
        )
    with ctx.db.write() as session:
        # A cancel taken by another replica is carried out by the job's holder on its next
        # pass, from the request on this row: deleting the row now would leave the trainer
        # running with nobody to stop it.
        if lease_store.cancel_requested(session, job_id):
            raise ConflictError(
                f"Job {job_id} is {job.status.value}, but the replica that runs it has not "
                "stopped its trainer yet; try again in a few seconds",
                code="cancel_pending",
                job_id=job_id,
                current_state=job.status.value,
            )
        deleted = job_store.delete_job(session, job)
    if not deleted:
        # Its status changed under us; say what it is now.
        current = get_job(ctx, caller, job_id)
        raise _state_conflict(current, "deleted")
    provider = ctx.providers.get(job.provider)
    if isinstance(provider, Forgettable) and job.provider_ref:
        provider.forget(handle_of(job))


def cancel_by_user(session: Session, job_id: str) -> job_store.StatusChange | None:
    """The status change of a user's cancel, wherever it is carried out."""
    return job_store.switch_job_status(
        session,
        job_id,
        JobStatus.CANCELLED,
        message="cancelled by user",
        error_message="cancelled by user",
    )


def handle_of(job: Job) -> ProviderHandle:
    return ProviderHandle(ref=job.provider_ref or job.job_id, data=job.provider_data)


def _apply_cancel(
    ctx: Context, job_id: str, held_elsewhere: bool
) -> job_store.StatusChange | None:
    with ctx.db.write() as session:
        change = cancel_by_user(session, job_id)
        if held_elsewhere and change is not None and change.applied:
            lease_store.request_cancel(session, job_id, at=ctx.clock())
    return change


def _state_conflict(job: Job, target: str) -> ConflictError:
    return ConflictError(
        f"Job {job.job_id} is already {job.status.value} and cannot be {target}",
        code="invalid_job_state",
        job_id=job.job_id,
        current_state=job.status.value,
    )


def job_event_model_to_job_event(event: JobEventModel) -> JobEvent:
    return JobEvent(
        id=event.id,
        at=event.at,
        kind=event.kind,
        from_status=event.from_status,
        to_status=event.to_status,
        message=event.message,
        data=event.data,
    )


def job_secrets(ctx: Context, job_id: str) -> list[tuple[tuple[str | int, ...], Any]]:
    """A job's secrets, decrypted, for handing its trainer back after a restart."""
    with ctx.db.read() as session:
        sealed = job_store.job_secrets_ciphertext(session, job_id)
    opened = ctx.secret_box.open_secrets(sealed) if sealed else []
    # Publishing secrets are the server's to use (services/publishing), never the trainer's.
    return [(path, value) for path, value in opened if not is_publish_secret(path)]
