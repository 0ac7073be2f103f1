"""Idempotency keys: scoped to the caller, claimed in the job's own insert (a unique
constraint, so two concurrent submits with one key make one job), found again on a retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cloudtune.domain.jobs import Job, JobStatus, JobType
from cloudtune.domain.principal import Principal
from cloudtune.domain.training import SecretPath
from cloudtune.services.context import Context
from cloudtune.services.publishing import JobPublish, plan_publish
from cloudtune.store import jobs as job_store


@dataclass(frozen=True, slots=True)
class SubmitResult:
    job_id: str
    provider: str
    status: JobStatus
    idempotent_hit: bool
    data_uploaded: bool = False
    cost_limit_warning: str | None = None
    estimated_cost_micros: int | None = None


def find_replay(ctx: Context, caller: Principal, key: str) -> SubmitResult | None:
    """The job an earlier submit with this key made, as a replay answer; None if none."""
    with ctx.db.read() as session:
        job_id = job_store.find_idempotent_job_id(session, user_id=caller.user_id, key=key)
        job = job_store.get_job(session, job_id) if job_id else None
    if job is None:
        return None
    return SubmitResult(
        job_id=job.job_id,
        provider=job.provider,
        status=job.status,
        idempotent_hit=True,
        estimated_cost_micros=job.estimated_cost_micros,
    )


def insert_job(
    ctx: Context,
    caller: Principal,
    job: Job,
    key: str | None,
    secrets: tuple[tuple[SecretPath, Any], ...],
    publish: JobPublish | None = None,
) -> None:
    """The job, its sealed secrets (with the ones its `publish` brought), its publish
    deliveries (a local job's: the server publishes them) and its idempotency key in one
    transaction; IntegrityError when the key was claimed meanwhile."""
    ttl = timedelta(hours=ctx.settings.idempotency_ttl_hours)
    secrets = (*secrets, *(publish.given if publish else ()))
    sealed = ctx.secret_box.seal_secrets(list(secrets)) if secrets else None
    with ctx.db.write() as session:
        job_store.insert_job(session, job)
        if job.job_type == JobType.LOCAL:
            plan_publish(session, job.job_id, publish, at=job.created_at)
        if sealed is not None:
            job_store.save_job_secrets(session, job.job_id, sealed)
        if key:
            job_store.claim_idempotency_key(
                session, user_id=caller.user_id, key=key, job_id=job.job_id, ttl=ttl
            )
