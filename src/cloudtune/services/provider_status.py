"""Writing what a provider said about a job: its fields, its logs and its status, through the
one status-change function. Shared by the reconciler's polls and verified provider webhooks.

A success from a provider whose outputs are expiring links does not complete the job: it stays
`running` while its files come home (services/outputs/homecoming.py says how and why)."""

from __future__ import annotations

from cloudtune.domain.costs import cost_micros
from cloudtune.domain.jobs import Job, JobStatus
from cloudtune.providers.base import ProviderStatus
from cloudtune.services.context import Context
from cloudtune.services.outputs import homecoming as outputs
from cloudtune.services.storage import staging
from cloudtune.store import jobs as job_store
from cloudtune.store import logs as log_store


def apply_provider_status(ctx: Context, job: Job, status: ProviderStatus) -> bool:
    """Write what the provider said; True if anything changed (no transaction if nothing did)."""
    coming = outputs.homecoming(ctx, job, status)
    # Waiting for its outputs, a job the provider finished stays (or becomes) running.
    target = JobStatus.RUNNING if coming is not None else status.status
    plan = coming is not None and not outputs.is_planned(ctx, job.job_id)
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
    # Where a fetching provider's outputs are is the outputs delivery's to say (local files
    # once home); its links expire and need our token.
    owns_outputs = outputs.provider_of(ctx, job) is not None
    if status.outputs is not None and status.outputs != job.outputs and not owns_outputs:
        fields["outputs"] = status.outputs
        # Where the model is: the first output (a provider lists the weights first).
        first = next((o for o in status.outputs if isinstance(o, str)), None)
        if job.output_url is None and first is not None:
            fields["output_url"] = first
    if not fields and target == job.status and not new_logs and not plan:
        return False
    changed = bool(fields)
    with ctx.db.write() as session:
        if fields:
            job_store.update_job_fields(session, job.job_id, **fields)
        if new_logs and status.logs is not None:
            log_store.save_logs(session, job.job_id, status.logs, ctx.clock())
        if target != job.status:
            change = job_store.switch_job_status(
                session,
                job.job_id,
                target,
                message=f"{job.provider}: {status.status.value}"
                + ("; bringing its outputs home" if coming is not None else ""),
                error_message=status.error_message if status.status == JobStatus.FAILED else None,
                started_at=status.started_at,
                completed_at=status.completed_at if coming is None else None,
            )
            changed = changed or bool(change and change.applied)
        if coming is not None and plan:
            changed = outputs.plan_in(session, ctx, job, coming) is not None or changed
    if coming is not None and plan:
        ctx.wake_reconciler()  # its worker claims the delivery on the next pass
    if target.is_terminal:
        ctx.logs_seen.pop(job.job_id, None)
        staging.clear_inputs(ctx, job)
    elif new_logs and status.logs is not None:
        ctx.logs_seen[job.job_id] = hash(status.logs)
    return changed
