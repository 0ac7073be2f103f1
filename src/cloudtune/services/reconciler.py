"""Keeps jobs true to their providers: asks each provider about its active jobs and applies
the answers through the one status-change function. Load in a short transaction, ask the
provider with no transaction open, then apply.

The reconciler is the only caller of a remote provider's `status` (which carries the job's
logs, copied into the database as they arrive). Readers never call a provider: the job list's
`sync_active` and the log stream ask the reconciler to look at a job soon, and it calls the
provider at most once per job per reconcile interval however many readers ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta

from cloudtune.domain.costs import format_usd
from cloudtune.domain.jobs import ACTIVE_STATUSES, Job, JobStatus, utcnow
from cloudtune.errors import InvalidInputError, ProviderError
from cloudtune.providers.base import ProviderStatus, Restorable, RestoredJob, RunsInBackground
from cloudtune.services import costs, discovery
from cloudtune.services.context import Context
from cloudtune.services.jobs import handle_of, job_secrets
from cloudtune.store import jobs as job_store
from cloudtune.store import logs as log_store

log = logging.getLogger(__name__)

# A job still `pending` with no provider reference this long after submit was lost in a crash
# between writing it and handing it over.
ORPHAN_AFTER = timedelta(minutes=15)
# Remote jobs are asked every BACKOFF_START seconds after a change, doubling to BACKOFF_MAX
# while nothing changes.
BACKOFF_START = 2.0
BACKOFF_MAX = 60.0
# A reader asking for fresh status waits this long at most for the pass that checks its jobs,
# then gets what the database has.
READER_WAIT_SECONDS = 5.0
# Active jobs of one reader looked at per request; the rest keep their usual schedule.
READER_JOBS_LIMIT = 500


@dataclass(frozen=True, slots=True)
class SyncResult:
    updated: int
    discovered: int = 0


@dataclass(frozen=True, slots=True)
class _Poll:
    """When a remote job is next polled, and when we last learned its state."""

    next_at: float  # monotonic time of the next scheduled poll
    interval: float  # the current backoff
    fresh_at: float  # last provider call or verified webhook: the floor for readers' asks


class Reconciler:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        # Per process: with several replicas each one polls every remote job until polling
        # moves under a database lease (DESIGN §7, issue 9).
        self._schedule: dict[str, _Poll] = {}
        # Remote jobs readers asked about, checked by the next pass once their floor passed.
        self._asked: set[str] = set()
        self._passes_started = 0
        self._passes_done = 0
        self._pass_ended = asyncio.Condition()
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
                        secrets=await self._ctx.in_thread(job_secrets, self._ctx, job.job_id),
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
        """Check every active job (of one provider) now; raises ProviderError if it is down.
        For callers who may see every job: it calls providers regardless of the schedule.
        First, jobs whose create answer was lost are looked for at their provider
        (services/discovery.py; any replica may adopt one); those found are checked too."""
        discovered = await discovery.discover_lost_jobs(self._ctx, provider)
        result = await self._reconcile(provider, everything=True)
        return replace(result, discovered=discovered)

    # -- readers' asks ------------------------------------------------------------------------

    def ask(self, jobs: Iterable[Job]) -> bool:
        """A reader wants fresh status of these (visible) jobs: mark the remote ones whose
        floor has passed for the next pass, and wake it. Never calls a provider itself.
        True if any of them waits for a pass."""
        now = time.monotonic()
        marked = pending = False
        for job in jobs:
            if job.provider_ref is None or not job.is_active or not self._is_remote(job):
                continue
            if job.job_id in self._asked:
                pending = True
            elif self._floor_passed(job.job_id, now):
                self._asked.add(job.job_id)
                marked = pending = True
        if marked:
            self.wake()
        return pending

    async def check_soon(self, jobs: Iterable[Job], *, wait: float = READER_WAIT_SECONDS) -> None:
        """`ask`, then wait (at most `wait` seconds) for the pass that looks at them. Every
        reader waiting meanwhile shares that one pass. Provider trouble is logged by the pass,
        never raised to the reader."""
        if not self.ask(jobs):
            return
        target = self._passes_started + 1  # the next pass to start sees what we marked
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait), self._pass_ended:
                await self._pass_ended.wait_for(lambda: self._passes_done >= target)

    async def refresh_visible(self, flt: job_store.JobFilter) -> None:
        """`check_soon` for the active jobs a list filter lets its caller see (any status
        filter is ignored: an active job may be about to match it)."""
        active = replace(flt, statuses=tuple(ACTIVE_STATUSES))
        jobs = await self._ctx.in_thread(_load_visible_active, self._ctx, active)
        await self.check_soon(jobs)

    def checked_by_webhook(self, job_id: str) -> None:
        """A verified webhook just told us about this job: the next poll can wait, and readers
        asking meanwhile get what it said."""
        now = time.monotonic()
        self._schedule[job_id] = _Poll(now + BACKOFF_START, BACKOFF_START, now)

    # -- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        interval = self._ctx.settings.reconcile_interval_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            self._wake.clear()
            self._passes_started += 1
            try:
                await self._reconcile(None, everything=False)
            except Exception:  # the loop must survive one bad pass
                log.exception("reconcile pass failed")
            finally:
                self._passes_done += 1
                async with self._pass_ended:
                    self._pass_ended.notify_all()

    async def _enforce_cost_caps(self, jobs: list[Job]) -> int:
        """Cancel jobs whose cost so far reached their `max_cost_usd`, and say why."""
        cancelled = 0
        for job, cost in costs.jobs_over_their_cap(self._ctx, jobs):
            reason = (
                f"cancelled: cost cap of {format_usd(job.max_cost_micros or 0)} reached "
                f"({format_usd(cost)} spent)"
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

    def _is_remote(self, job: Job) -> bool:
        try:
            return self._ctx.providers.get(job.provider).poll_with_backoff
        except InvalidInputError:  # a provider this server no longer has
            return False

    def _floor_passed(self, job_id: str, now: float) -> bool:
        poll = self._schedule.get(job_id)
        return poll is None or now >= poll.fresh_at + self._ctx.settings.reconcile_interval_seconds

    def _due(self, job: Job, remote: bool, everything: bool) -> bool:
        if everything or not remote:
            return True
        now = time.monotonic()
        poll = self._schedule.get(job.job_id)
        if poll is None or now >= poll.next_at:
            return True
        return job.job_id in self._asked and self._floor_passed(job.job_id, now)

    def _before_call(self, job_id: str) -> None:
        self._asked.discard(job_id)
        now = time.monotonic()
        poll = self._schedule.get(job_id)
        if poll is None:
            self._schedule[job_id] = _Poll(now, BACKOFF_START / 2, now)
        else:
            self._schedule[job_id] = replace(poll, fresh_at=now)

    def _after_check(self, job_id: str, changed: bool) -> None:
        """Back off while nothing changes (a failed call counts as no change, so a broken job
        is not asked every pass), never below the reconcile interval."""
        now = time.monotonic()
        poll = self._schedule.get(job_id) or _Poll(now, BACKOFF_START / 2, now)
        ceiling = min(BACKOFF_MAX, self._ctx.settings.reconcile_backoff_max_seconds)
        interval = min(BACKOFF_START, ceiling) if changed else min(ceiling, poll.interval * 2)
        interval = max(interval, self._ctx.settings.reconcile_interval_seconds)
        self._schedule[job_id] = _Poll(now + interval, interval, poll.fresh_at)

    async def _reconcile(self, provider_name: str | None, *, everything: bool) -> SyncResult:
        """One pass. `everything` (an explicit sync) checks every job now and raises the first
        provider error; the loop's passes follow the schedule and log errors."""
        async with self._lock:
            jobs = await self._ctx.in_thread(_load_active, self._ctx, provider_name)
            active = {job.job_id for job in jobs}
            for job_id in list(self._schedule):
                if job_id not in active:
                    del self._schedule[job_id]
            self._asked &= active
            updated = await self._enforce_cost_caps(jobs)
            for job in jobs:
                if job.provider_ref is None:
                    if utcnow() - job.created_at > ORPHAN_AFTER:
                        updated += await self._ctx.in_thread(_fail_orphan, self._ctx, job)
                    continue
                remote = False
                try:
                    provider = self._ctx.providers.get(job.provider)
                    remote = provider.poll_with_backoff
                    if not self._due(job, remote, everything):
                        continue
                    if remote:
                        self._before_call(job.job_id)
                    with self._ctx.metrics.provider_calls.labels(job.provider, "status").time():
                        status = await provider.status(handle_of(job))
                except ProviderError:
                    self._ctx.metrics.provider_errors.labels(job.provider, "status").inc()
                    if remote:
                        self._after_check(job.job_id, changed=False)
                    if everything:
                        raise
                    log.warning("job %s: provider %s did not answer", job.job_id, job.provider)
                    continue
                except Exception as exc:
                    if remote:
                        self._after_check(job.job_id, changed=False)
                    if everything:
                        raise ProviderError(
                            f"{job.provider}: {type(exc).__name__}: {exc}", provider=job.provider
                        ) from exc
                    log.exception("job %s: status check failed", job.job_id)
                    continue
                changed = await self._ctx.in_thread(apply_provider_status, self._ctx, job, status)
                if remote:
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
            log_store.save_logs(session, job.job_id, status.logs, utcnow())
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


def _load_visible_active(ctx: Context, flt: job_store.JobFilter) -> list[Job]:
    with ctx.db.read() as session:
        return job_store.list_jobs(session, flt, limit=READER_JOBS_LIMIT, offset=0)


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
