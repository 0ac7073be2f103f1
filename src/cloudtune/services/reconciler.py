"""Keeps jobs true to their providers: asks each provider about its active jobs and applies
the answers through the one status-change function. Load in a short transaction, ask the
provider with no transaction open, then apply."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from cloudtune.domain.costs import micros_to_usd
from cloudtune.domain.jobs import Job, JobStatus, utcnow
from cloudtune.errors import ProviderError
from cloudtune.providers.base import ProviderStatus, Restorable, RestoredJob, RunsInBackground
from cloudtune.services import costs
from cloudtune.services.context import Context
from cloudtune.services.jobs import handle_of
from cloudtune.store import jobs as job_store
from cloudtune.store import providers as provider_store

log = logging.getLogger(__name__)

# A job still `pending` with no provider reference this long after submit was lost in a crash
# between writing it and handing it over.
ORPHAN_AFTER = timedelta(minutes=15)
# Remote jobs are asked every BACKOFF_START seconds after a change, doubling to BACKOFF_MAX
# while nothing changes.
BACKOFF_START = 2.0
BACKOFF_MAX = 60.0


@dataclass(frozen=True, slots=True)
class SyncResult:
    updated: int
    discovered: int = 0


class Reconciler:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        # job id -> (monotonic time of the next check, current interval) for remote providers
        self._schedule: dict[str, tuple[float, float]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        """Hand active jobs back to their providers, start provider loops, then poll."""
        self._ctx.wake_reconciler = self.wake
        active = await self._ctx.in_thread(_load_active, self._ctx, None)
        for provider in self._ctx.providers.all():
            if isinstance(provider, Restorable):
                mine = [
                    RestoredJob(
                        job=job,
                        handle=handle_of(job),
                        webhook_url=self._ctx.trainer_webhook_url(job.job_id),
                        webhook_token=self._ctx.tokens.job_token(job.job_id),
                    )
                    for job in active
                    if job.provider == provider.name and job.provider_ref
                ]
                await provider.restore(mine)
            if isinstance(provider, RunsInBackground):
                await provider.start(self.wake)
        self._task = asyncio.create_task(self._run(), name="reconciler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for provider in self._ctx.providers.all():
            if isinstance(provider, RunsInBackground):
                await provider.stop()

    async def sync(self, provider: str | None = None) -> SyncResult:
        """Check every active job (of one provider) now; raises ProviderError if it is down."""
        return await self._reconcile(provider, raise_errors=True)

    async def _run(self) -> None:
        interval = self._ctx.settings.reconcile_interval_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            self._wake.clear()
            try:
                await self._reconcile(None, raise_errors=False)
            except Exception:  # the loop must survive one bad pass
                log.exception("reconcile pass failed")

    async def _enforce_cost_caps(self, jobs: list[Job]) -> int:
        """Cancel jobs whose cost so far reached their `max_cost_usd`, and say why."""
        cancelled = 0
        for job, cost in costs.jobs_over_their_cap(self._ctx, jobs):
            reason = (
                f"cancelled: cost cap of ${micros_to_usd(job.max_cost_micros):.2f} reached "
                f"(${micros_to_usd(cost):.2f} spent)"
            )
            log.warning("job %s: %s", job.job_id, reason)
            if job.provider_ref is not None:
                try:
                    await self._ctx.providers.get(job.provider).cancel(handle_of(job))
                except ProviderError:
                    log.warning("job %s: provider did not take the cancel; next pass", job.job_id)
                    continue
            cancelled += await self._ctx.in_thread(_cancel_for_cost, self._ctx, job, reason)
        return cancelled

    def checked_by_webhook(self, job_id: str) -> None:
        """A webhook just told us about this job: the next poll can wait."""
        self._schedule[job_id] = (time.monotonic() + BACKOFF_START, BACKOFF_START)

    def _due(self, job: Job, provider_polls_with_backoff: bool, everything: bool) -> bool:
        if everything or not provider_polls_with_backoff:
            return True
        when, _ = self._schedule.get(job.job_id, (0.0, BACKOFF_START))
        return time.monotonic() >= when

    def _after_check(self, job_id: str, changed: bool) -> None:
        _, interval = self._schedule.get(job_id, (0.0, BACKOFF_START / 2))
        interval = max(interval, 0.1)
        ceiling = min(BACKOFF_MAX, self._ctx.settings.reconcile_backoff_max_seconds)
        interval = min(BACKOFF_START, ceiling) if changed else min(ceiling, interval * 2)
        self._schedule[job_id] = (time.monotonic() + interval, interval)

    async def _reconcile(self, provider_name: str | None, *, raise_errors: bool) -> SyncResult:
        async with self._lock:
            jobs = await self._ctx.in_thread(_load_active, self._ctx, provider_name)
            active = {job.job_id for job in jobs}
            for job_id in list(self._schedule):
                if job_id not in active:
                    del self._schedule[job_id]
            updated = await self._enforce_cost_caps(jobs)
            for job in jobs:
                if job.provider_ref is None:
                    if utcnow() - job.created_at > ORPHAN_AFTER:
                        updated += await self._ctx.in_thread(_fail_orphan, self._ctx, job)
                    continue
                try:
                    provider = self._ctx.providers.get(job.provider)
                    if not self._due(job, provider.poll_with_backoff, raise_errors):
                        continue
                    with self._ctx.metrics.provider_calls.labels(job.provider, "status").time():
                        status = await provider.status(handle_of(job))
                except ProviderError:
                    self._ctx.metrics.provider_errors.labels(job.provider, "status").inc()
                    if raise_errors:
                        raise
                    log.warning("job %s: provider %s did not answer", job.job_id, job.provider)
                    continue
                except Exception as exc:
                    if raise_errors:
                        raise ProviderError(
                            f"{job.provider}: {type(exc).__name__}: {exc}", provider=job.provider
                        ) from exc
                    log.exception("job %s: status check failed", job.job_id)
                    continue
                changed = await self._ctx.in_thread(apply_provider_status, self._ctx, job, status)
                self._after_check(job.job_id, changed)
                updated += int(changed)
            return SyncResult(updated=updated)


def apply_provider_status(ctx: Context, job: Job, status: ProviderStatus) -> bool:
    """Write what the provider said; True if anything changed (no transaction if nothing did)."""
    fields: dict[str, object] = {}
    if status.billed_seconds is not None and job.price_per_hour_micros is not None:
        cost = int(job.price_per_hour_micros * status.billed_seconds / 3600)
        if cost != job.cost_micros:
            fields["cost_micros"] = cost
    new_logs = status.logs is not None and hash(status.logs) != ctx.logs_seen.get(job.job_id)
    if status.queue_position != job.queue_position and status.status == JobStatus.QUEUED:
        fields["queue_position"] = status.queue_position
    if status.metadata and any(job.metadata.get(k) != v for k, v in status.metadata.items()):
        fields["metadata"] = {**job.metadata, **status.metadata}
    if status.outputs is not None and status.outputs != job.outputs:
        fields["outputs"] = status.outputs
    if not fields and status.status == job.status and not new_logs:
        return False
    changed = bool(fields)
    with ctx.db.write() as session:
        if fields:
            job_store.update_job_fields(session, job.job_id, **fields)
        if new_logs and status.logs is not None:
            provider_store.save_logs(session, job.job_id, status.logs, utcnow())
        if status.status != job.status:
            change = job_store.switch_job_status(
                session,
                job.job_id,
                status.status,
                message=f"{job.provider}: {status.status.value}",
                error_message=status.error_message if status.status == JobStatus.FAILED else None,
                started_at=status.started_at,
                completed_at=status.completed_at,
            )
            changed = changed or bool(change and change.applied)
    if status.status.is_terminal:
        ctx.logs_seen.pop(job.job_id, None)
    elif new_logs and status.logs is not None:
        ctx.logs_seen[job.job_id] = hash(status.logs)
    return changed


def _load_active(ctx: Context, provider: str | None) -> list[Job]:
    with ctx.db.read() as session:
        return job_store.list_active_jobs(session, provider=provider)


def _cancel_for_cost(ctx: Context, job: Job, reason: str) -> int:
    with ctx.db.write() as session:
        change = job_store.switch_job_status(
            session, job.job_id, JobStatus.CANCELLED, message=reason, error_message=reason
        )
    return int(bool(change and change.applied))


def _fail_orphan(ctx: Context, job: Job) -> int:
    with ctx.db.write() as session:
        change = job_store.switch_job_status(
            session,
            job.job_id,
            JobStatus.FAILED,
            error_message="the server stopped before the job reached its provider; "
            "submit it again",
        )
    return int(bool(change and change.applied))
