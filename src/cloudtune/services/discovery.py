"""Jobs whose create answer never reached us, found again at their provider.

A job is written before its provider is asked to run it, and its provider reference after the
provider answered. A crash between the two, or an answer lost on the way, leaves an active job
with no reference while the provider may be running it (and billing for it). A provider that
`Discovers` lists what it runs for us by our job ids; each such job gets its reference and
moves to `queued`, and the reconciler follows it from then on like any other.

`POST /api/cloud/jobs/sync` looks for every such job (`discover_lost_jobs`); the reconciler
settles the ones lost long enough ago (`settle_orphans`): adopted when found, failed when their
provider says it does not run them, left for the next pass when it cannot be asked or cannot
tell (a provider whose list was cut off raises rather than leave a running job out).

Load the lost jobs (short transaction), ask the provider (no transaction), then adopt each job
in its own transaction, only if it still has no reference (a submit still in flight may have
written the same reference meanwhile).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from cloudtune.domain.jobs import Job, JobStatus, JobType
from cloudtune.errors import InvalidInputError, ProviderError
from cloudtune.providers.base import Discovers, ProviderHandle
from cloudtune.services.context import Context
from cloudtune.store import jobs as job_store

log = logging.getLogger(__name__)


async def discover_lost_jobs(ctx: Context, provider_name: str | None = None) -> int:
    """Adopt the active jobs without a provider reference that their provider (one, or every
    provider that discovers) runs; the number adopted. Raises ProviderError when a provider
    cannot be asked."""
    lost: dict[str, list[Job]] = defaultdict(list)
    for job in await ctx.in_thread(_load_lost, ctx, provider_name):
        lost[job.provider].append(job)
    adopted = 0
    for name, jobs in lost.items():
        try:
            provider = ctx.providers.get(name)
        except InvalidInputError:  # a provider this server no longer has
            continue
        if not isinstance(provider, Discovers):
            continue
        with ctx.metrics.provider_calls.labels(name, "discover").time():
            found = await provider.discover([job.job_id for job in jobs])
        for job_id, handle in found.items():
            if await ctx.in_thread(_adopt, ctx, job_id, handle):
                log.warning("job %s: found at %s as %s; adopted", job_id, name, handle.ref)
                adopted += 1
    return adopted


async def settle_orphans(ctx: Context, orphans: list[Job]) -> int:
    """Jobs still without a provider reference long after their submit: adopt those their
    provider runs, fail the rest. A provider that cannot be asked now, or cannot tell (its
    list was cut off), leaves its jobs for the next pass: failing them could leave a
    prediction running unseen. The number changed."""
    by_provider: dict[str, list[Job]] = defaultdict(list)
    for job in orphans:
        by_provider[job.provider].append(job)
    changed = 0
    for name, jobs in by_provider.items():
        found: dict[str, ProviderHandle] = {}
        try:
            provider = ctx.providers.get(name)
        except InvalidInputError:
            provider = None
        if isinstance(provider, Discovers):
            try:
                found = await provider.discover([job.job_id for job in jobs])
            except ProviderError as exc:
                log.warning("%s: lost jobs not settled (%s); next pass", name, exc)
                continue
        for job in jobs:
            handle = found.get(job.job_id)
            if handle is not None:
                changed += await ctx.in_thread(_adopt, ctx, job.job_id, handle)
            else:
                changed += await ctx.in_thread(_fail_lost, ctx, job)
    return changed


def _load_lost(ctx: Context, provider_name: str | None) -> list[Job]:
    with ctx.db.read() as session:
        active = job_store.list_active_jobs(session, provider=provider_name)
    return [job for job in active if job.provider_ref is None]


def _adopt(ctx: Context, job_id: str, handle: ProviderHandle) -> bool:
    with ctx.db.write() as session:
        job = job_store.get_job(session, job_id, for_update=True)
        if job is None or job.provider_ref is not None or not job.is_active:
            return False
        fields: dict[str, Any] = {"provider_ref": handle.ref, "provider_data": handle.data}
        if job.job_type == JobType.CLOUD:
            fields["metadata"] = {**job.metadata, "prediction_id": handle.ref, **handle.data}
        job_store.update_job_fields(session, job_id, **fields)
        job_store.switch_job_status(
            session, job_id, JobStatus.QUEUED, message="found at the provider by a sync"
        )
    return True


def _fail_lost(ctx: Context, job: Job) -> bool:
    with ctx.db.write() as session:
        current = job_store.get_job(session, job.job_id, for_update=True)
        if current is None or current.provider_ref is not None:
            return False  # adopted meanwhile (by a sync, or another replica)
        change = job_store.switch_job_status(
            session,
            job.job_id,
            JobStatus.FAILED,
            error_message="the server stopped before the job reached its provider; "
            "submit it again",
        )
    return bool(change and change.applied)
