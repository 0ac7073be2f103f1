"""Keeps jobs true to their providers: asks each provider about the active jobs this replica
reconciles and applies the answers through the one status-change function. Load in a short
transaction, ask the provider with no transaction open, then apply.

Several replicas may share one database (DESIGN §7). Each pass a replica reconciles:
- the local jobs it holds (`Pinned.holds`: started here); another replica's are left alone,
  and their provider answers `NotMine` if asked;
- the remote jobs whose lease it holds: every pass it renews its leases and takes free or
  run-out ones (`store.leases.claim`), so one replica at a time polls a remote job and a
  stopped replica's jobs move to another within `reconcile_lease_seconds`;
- the cancels other replicas took for jobs it holds (`store.leases.request_cancel`).

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import timedelta

from cloudtune.domain.costs import cost_micros, format_usd
from cloudtune.domain.jobs import ACTIVE_STATUSES, Job, JobStatus
from cloudtune.errors import InvalidInputError, ProviderError
from cloudtune.providers.base import (
    NotMine,
    Pinned,
    ProviderStatus,
    Restorable,
    RestoredJob,
    RunsInBackground,
)
from cloudtune.services import costs, discovery, leases
from cloudtune.services.context import Context
from cloudtune.services.jobs import handle_of, job_secrets
from cloudtune.services.polling import PollSchedule
from cloudtune.store import jobs as job_store
from cloudtune.store import logs as log_store

log = logging.getLogger(__name__)

# A job still `pending` with no provider reference this long after submit was lost in a crash
# between writing it and handing it over.
ORPHAN_AFTER = timedelta(minutes=15)
# A reader asking for fresh status waits this long at most for the pass that checks its jobs,
# then gets what the database has.
READER_WAIT_SECONDS = 5.0
# Active jobs of one reader looked at per request; the rest keep their usual schedule.
READER_JOBS_LIMIT = 500


@dataclass(frozen=True, slots=True)
class SyncResult:
    updated: int
    discovered: int = 0


class Reconciler:
    def __init__(self, ctx: Context, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        """`monotonic` paces polls in this process; `ctx.clock` (wall time, shared by every
        replica) dates leases and orphans."""
        self._ctx = ctx
        self._replica = ctx.settings.replica
        self._schedule = PollSchedule(ctx.settings, monotonic)
        self._passes_started = 0
        self._passes_done = 0
        self._pass_ended = asyncio.Condition()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        self._wake.set()

    @property
    def passes_done(self) -> int:
        """Passes of the loop so far: a provider is asked about a job at most once in each."""
        return self._passes_done

    async def start(self) -> None:
        """Hand this replica's active jobs back to their providers, start provider loops,
        then poll."""
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
                    if job.provider == provider.name
                    and job.provider_ref
                    and (not isinstance(provider, Pinned) or provider.holds(handle_of(job)))
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
        """Check every active job (of one provider) this replica reconciles now; raises
        ProviderError if a provider is down. For callers who may see every job: it calls
        providers regardless of the schedule. Jobs another replica holds are its to check.
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
        marked = pending = False
        for job in jobs:
            if job.provider_ref is None or not job.is_active or not self._is_remote(job):
                continue
            now_marked, waits = self._schedule.ask(job.job_id)
            marked, pending = marked or now_marked, pending or waits
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
        self._schedule.checked_by_webhook(job_id)

    # -- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        interval = self._ctx.settings.reconcile_interval_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            self._wake.clear()
            await self.run_pass()

    async def run_pass(self) -> None:
        """One pass of the loop (also what tests drive, with injected clocks)."""
        self._passes_started += 1
        try:
            await self._reconcile(None, everything=False)
        except Exception:  # the loop must survive one bad pass
            log.exception("reconcile pass failed")
        finally:
            self._passes_done += 1
            async with self._pass_ended:
                self._pass_ended.notify_all()

    def _lease_ttl(self) -> timedelta:
        # A lease shorter than two passes would lapse between renewals of a live holder.
        settings = self._ctx.settings
        seconds = max(settings.reconcile_lease_seconds, 2 * settings.reconcile_interval_seconds)
        return timedelta(seconds=seconds)

    async def _mine(self, jobs: list[Job]) -> list[Job]:
        """The jobs this replica reconciles this pass: its own local jobs, the remote jobs whose
        lease it renewed or took, and jobs not yet handed to a provider (database only)."""
        remote = [job.job_id for job in jobs if job.provider_ref and self._is_remote(job)]
        held = await self._ctx.in_thread(
            leases.claim_for_pass,
            self._ctx,
            remote,
            self._replica,
            self._ctx.clock(),
            self._lease_ttl(),
        )
        mine = []
        for job in jobs:
            if job.provider_ref is None or job.job_id in held:
                mine.append(job)
            elif job.job_id not in remote and self._holds(job):
                mine.append(job)
        return mine

    def _holds(self, job: Job) -> bool:
        try:
            provider = self._ctx.providers.get(job.provider)
        except InvalidInputError:  # a provider this server no longer has
            return False
        return not isinstance(provider, Pinned) or provider.holds(handle_of(job))

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

    async def _act_on_cancel_requests(self) -> int:
        """Stop the jobs this replica holds that a cancel through another replica asked to
        stop (the API already answered `cancelled`)."""
        asked = await self._ctx.in_thread(leases.load_cancel_requests, self._ctx)
        done = 0
        for job in asked:
            if job.provider_ref is not None and not self._holds(job):
                continue
            if job.provider_ref is not None:
                try:
                    await self._ctx.providers.get(job.provider).cancel(handle_of(job))
                except ProviderError:
                    log.warning("job %s: provider did not take the cancel; next pass", job.job_id)
                    continue
            log.info("job %s: stopped on a cancel taken by another replica", job.job_id)
            done += await self._ctx.in_thread(leases.finish_cancel_request, self._ctx, job.job_id)
        return done

    def _is_remote(self, job: Job) -> bool:
        try:
            return self._ctx.providers.get(job.provider).poll_with_backoff
        except InvalidInputError:  # a provider this server no longer has
            return False

    async def _reconcile(self, provider_name: str | None, *, everything: bool) -> SyncResult:
        """One pass. `everything` (an explicit sync) checks every job now and raises the first
        provider error; the loop's passes follow the schedule and log errors."""
        async with self._lock:
            loaded = await self._ctx.in_thread(_load_active, self._ctx, provider_name)
            started = self._ctx.clock()
            jobs = await self._mine(loaded)
            self._schedule.keep_only(job.job_id for job in jobs)
            updated = await self._act_on_cancel_requests()
            updated += await self._enforce_cost_caps(jobs)
            # Lost before their provider answered: adopted if it runs them, else failed.
            orphans = [
                job
                for job in jobs
                if job.provider_ref is None and self._ctx.clock() - job.created_at > ORPHAN_AFTER
            ]
            updated += await discovery.settle_orphans(self._ctx, orphans)
            for job in jobs:
                if job.provider_ref is None:
                    continue
                if self._ctx.clock() >= started + self._lease_ttl():
                    # A pass this long may have outlived its leases: renew them first.
                    log.warning("reconcile pass outlived its leases; the rest waits")
                    break
                updated += await self._check(job, everything)
            return SyncResult(updated=updated)

    async def _check(self, job: Job, everything: bool) -> int:
        """Ask the provider about one job if it is due; 1 if what it said changed the job."""
        remote = False
        try:
            provider = self._ctx.providers.get(job.provider)
            remote = provider.poll_with_backoff
            if remote and not everything and not self._schedule.due(job.job_id):
                return 0
            if remote:
                self._schedule.before_call(job.job_id)
            with self._ctx.metrics.provider_calls.labels(job.provider, "status").time():
                status = await provider.status(handle_of(job))
        except ProviderError:
            self._ctx.metrics.provider_errors.labels(job.provider, "status").inc()
            if remote:
                self._schedule.after_check(job.job_id, changed=False)
            if everything:
                raise
            log.warning("job %s: provider %s did not answer", job.job_id, job.provider)
            return 0
        except Exception as exc:
            if remote:
                self._schedule.after_check(job.job_id, changed=False)
            if everything:
                raise ProviderError(
                    f"{job.provider}: {type(exc).__name__}: {exc}", provider=job.provider
                ) from exc
            log.exception("job %s: status check failed", job.job_id)
            return 0
        if isinstance(status, NotMine):  # another replica took it meanwhile: its to judge
            return 0
        changed = await self._ctx.in_thread(apply_provider_status, self._ctx, job, status)
        if remote:
            self._schedule.after_check(job.job_id, changed=changed)
        return int(changed)


def apply_provider_status(ctx: Context, job: Job, status: ProviderStatus) -> bool:
    """Write what the provider said; True if anything changed (no transaction if nothing did)."""
    fields: dict[str, object] = {}
    if status.billed_seconds is not None and job.price_per_hour_micros is not None:
        cost = cost_micros(job.price_per_hour_micros, status.billed_seconds)
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
            log_store.save_logs(session, job.job_id, status.logs, ctx.clock())
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
