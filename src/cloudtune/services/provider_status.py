"""Writing what a provider said about a job: its fields, its logs and its status, through the
one status-change function. Shared by the reconciler's polls and verified provider webhooks."""

from __future__ import annotations

from cloudtune.domain.costs import cost_micros
from cloudtune.domain.jobs import Job, JobStatus
from cloudtune.providers.base import ProviderStatus
from cloudtune.services.context import Context
from cloudtune.store import jobs as job_store
from cloudtune.store import logs as log_store


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
        # Where the model is: the first output (a provider lists the weights first).
        first = next((o for o in status.outputs if isinstance(o, str)), None)
        if job.output_url is None and first is not None:
            fields["output_url"] = first
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
