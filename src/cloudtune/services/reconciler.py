"""Keeps jobs true to their providers: asks each provider about its active jobs and applies
the answers through the one status-change function. Load in a short transaction, ask the
provider with no transaction open, then apply."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from cloudtune.domain.jobs import Job, JobStatus, utcnow
from cloudtune.errors import ProviderError
from cloudtune.providers.base import ProviderStatus, Restorable, RestoredJob, RunsInBackground
from cloudtune.services.context import Context
from cloudtune.services.jobs import handle_of
from cloudtune.store import jobs as job_store

log = logging.getLogger(__name__)

# A job still `pending` with no provider reference this long after submit was lost in a crash
# between writing it and handing it over.
ORPHAN_AFTER = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class SyncResult:
    updated: int
    discovered: int = 0


class Reconciler:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
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

    async def _reconcile(self, provider_name: str | None, *, raise_errors: bool) -> SyncResult:
        async with self._lock:
            jobs = await self._ctx.in_thread(_load_active, self._ctx, provider_name)
            updated = 0
            for job in jobs:
                if job.provider_ref is None:
                    if utcnow() - job.created_at > ORPHAN_AFTER:
                        updated += await self._ctx.in_thread(_fail_orphan, self._ctx, job)
                    continue
                try:
                    provider = self._ctx.providers.get(job.provider)
                    status = await provider.status(handle_of(job))
                except ProviderError:
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
                if await self._ctx.in_thread(apply_provider_status, self._ctx, job, status):
                    updated += 1
            return SyncResult(updated=updated)


def apply_provider_status(ctx: Context, job: Job, status: ProviderStatus) -> bool:
    """Write what the provider said; True if anything changed (no transaction if nothing did)."""
    fields: dict[str, object] = {}
    if status.queue_position != job.queue_position and status.status == JobStatus.QUEUED:
        fields["queue_position"] = status.queue_position
    if status.metadata and any(job.metadata.get(k) != v for k, v in status.metadata.items()):
        fields["metadata"] = {**job.metadata, **status.metadata}
    if status.outputs is not None and status.outputs != job.outputs:
        fields["outputs"] = status.outputs
    if not fields and status.status == job.status:
        return False
    changed = bool(fields)
    with ctx.db.write() as session:
        if fields:
            job_store.update_job_fields(session, job.job_id, **fields)
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
    return changed


def _load_active(ctx: Context, provider: str | None) -> list[Job]:
    with ctx.db.read() as session:
        return job_store.list_active_jobs(session, provider=provider)


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
