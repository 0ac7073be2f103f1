"""Keeps jobs true to their providers: asks each provider about the active jobs this replica
reconciles and applies the answers through the one status-change function. Load in a short
transaction, ask the provider with no transaction open, then apply.

Several replicas may share one database (DESIGN §7). Each pass a replica reconciles:
- the local jobs it holds (`Pinned.holds`: started here); another replica's are left alone,
  and their provider answers `NotMine` if asked;
- every other job (a provider not `Pinned`) whose lease it holds: every pass it renews its
  leases and takes free or run-out ones (`store.leases.claim`), so one replica at a time polls
  such a job and a stopped replica's jobs move to another within `reconcile_lease_seconds`
  (at once after a clean stop, which gives its leases back); `poll_with_backoff` only decides
  how often the holder polls;
- the cancels other replicas took for jobs it holds (`store.leases.request_cancel`), kept
  until its provider says the job stopped (also across a restart of the holder).

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

from cloudtune.domain.costs import format_usd
from cloudtune.domain.jobs import ACTIVE_STATUSES, ORPHAN_AFTER, Job, JobStatus
from cloudtune.errors import InvalidInputError, ProviderError
from cloudtune.providers.base import (
    NotMine,
    Pinned,
    Restorable,
    RestoredJob,
    RunsInBackground,
)
from cloudtune.services import costs, discovery, leases
from cloudtune.services.context import Context
from cloudtune.services.jobs import handle_of, job_secrets
from cloudtune.services.outputs import homecoming
from cloudtune.services.outputs.worker import OutputsWorker
from cloudtune.services.polling import PollSchedule
from cloudtune.services.provider_status import apply_provider_status
from cloudtune.services.storage import job_credentials
from cloudtune.store import jobs as job_store

log = logging.getLogger(__name__)

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
        # The leased jobs this replica held at its last claim: readers' asks about other jobs
        # are another replica's to answer, so they neither wake nor wait for a pass here.
        self._held: set[str] = set()
        # Remote jobs' outputs brought home (services/outputs), in a loop of its own.
        self.outputs = OutputsWorker(ctx)

    def wake(self) -> None:
        self._wake.set()
        self.outputs.wake()

    @property
    def passes_done(self) -> int:
        """Passes of the loop so far: a provider is asked about a job at most once in each."""
        return self._passes_done

    async def start(self) -> None:
        """Hand this replica's active jobs back to their providers, and the ended ones whose
        cancel waits for it (a trainer may still run), start provider loops, then poll."""
        self._ctx.wake_reconciler = self.wake
        active = await self._ctx.in_thread(_load_active, self._ctx, None)
        asked = await self._ctx.in_thread(leases.load_cancel_requests, self._ctx)
        known = {job.job_id for job in active}
        active += [job for job in asked if job.job_id not in known]
        for provider in self._ctx.providers.all():
            if isinstance(provider, Restorable):
                mine = [
                    RestoredJob(
                        job=job,
                        handle=handle_of(job),
                        webhook_url=self._ctx.trainer_webhook_url(job.job_id),
                        webhook_token=self._ctx.tokens.job_token(job.job_id),
                        secrets=await self._ctx.in_thread(job_secrets, self._ctx, job.job_id),
                        storage=await self._ctx.in_thread(job_credentials, self._ctx, job.job_id),
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
        await self.outputs.start()

    async def stop(self) -> None:
        """Stop polling and give this replica's leases back, so another replica polls its
        jobs on its next pass instead of after a lease period (a rolling deploy)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self._lock:  # a sync in progress could renew them meanwhile
            held, self._held = self._held, set()
            try:
                await self._ctx.in_thread(leases.release, self._ctx, held, self._replica)
            except Exception:  # shutting down: the leases run out by themselves
                log.exception("could not give back this replica's leases")
        await self.outputs.stop()  # hands its claims back for another replica
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
        """A reader wants fresh status of these (visible) jobs: mark the ones polled with
        backoff that this replica held at its last pass and whose floor has passed, and wake
        the loop. Never calls a provider itself. True if any of them waits for a pass."""
        marked = pending = False
        for job in jobs:
            if job.job_id not in self._held or not job.is_active or not self._backs_off(job):
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

    async def _mine(self, jobs: list[Job], *, everything_loaded: bool) -> list[Job]:
        """The jobs this replica reconciles this pass: its own local jobs, the remote jobs whose
        lease it renewed or took, and jobs not yet handed to a provider (database only)."""
        remote = [job.job_id for job in jobs if job.provider_ref and self._leased(job)]
        held = await self._ctx.in_thread(
            leases.claim_for_pass,
            self._ctx,
            remote,
            self._replica,
            self._ctx.clock(),
            self._lease_ttl(),
        )
        if everything_loaded:
            self._held = held
        else:  # one provider's jobs: what is known of the others' stands
            self._held = (self._held - {job.job_id for job in jobs}) | held
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
            if await self._ctx.in_thread(homecoming.is_planned, self._ctx, job.job_id):
                continue  # its provider finished: nothing is spent while its outputs come home
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
        stop (the API already answered `cancelled`). A job's request stays until its provider
        says the job no longer runs: the request is all that remembers the trainer to stop."""
        asked = await self._ctx.in_thread(leases.load_cancel_requests, self._ctx)
        done = 0
        for job in asked:
            if job.provider_ref is not None and not self._holds(job):
                continue
            if job.provider_ref is not None and not await self._stopped(job):
                continue
            log.info("job %s: stopped on a cancel taken by another replica", job.job_id)
            done += await self._ctx.in_thread(leases.finish_cancel_request, self._ctx, job.job_id)
        return done

    async def _stopped(self, job: Job) -> bool:
        """Cancel a job at its provider (idempotent); for a `Pinned` one, True only once it
        says the job ended (its trainer stops within the cancel grace)."""
        provider = self._ctx.providers.get(job.provider)
        try:
            await provider.cancel(handle_of(job))
            if not isinstance(provider, Pinned):
                return True
            status = await provider.status(handle_of(job))
        except ProviderError:
            log.warning("job %s: provider did not take the cancel; next pass", job.job_id)
            return False
        return not isinstance(status, NotMine) and status.status.is_terminal

    def _leased(self, job: Job) -> bool:
        """Polled under a lease: every job of a provider whose jobs do not live in one replica
        (however often it is polled)."""
        try:
            return not isinstance(self._ctx.providers.get(job.provider), Pinned)
        except InvalidInputError:  # a provider this server no longer has
            return False

    def _backs_off(self, job: Job) -> bool:
        try:
            return self._ctx.providers.get(job.provider).poll_with_backoff
        except InvalidInputError:
            return False

    async def _reconcile(self, provider_name: str | None, *, everything: bool) -> SyncResult:
        """One pass. `everything` (an explicit sync) checks every job now and raises the first
        provider error; the loop's passes follow the schedule and log errors."""
        async with self._lock:
            loaded = await self._ctx.in_thread(_load_active, self._ctx, provider_name)
            started = self._ctx.clock()
            jobs = await self._mine(loaded, everything_loaded=provider_name is None)
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
