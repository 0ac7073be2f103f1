"""Jobs whose create answer never reached us, found again at their provider.

A job is written before its provider is asked to run it, and its provider reference after the
provider answered. A crash between the two, or an answer lost on the way, leaves an active job
with no reference while the provider may be running it (and billing for it). A provider that
`Discovers` lists what it runs for us by our job ids; each such job gets its reference and
moves to `queued`, and the reconciler follows it from then on like any other.

Load the lost jobs (short transaction), ask the provider (no transaction), then adopt each job
in its own transaction, only if it still has no reference (a submit still in flight may have
written the same reference meanwhile).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from cloudtune.domain.jobs import Job, JobStatus, JobType
from cloudtune.errors import InvalidInputError
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
