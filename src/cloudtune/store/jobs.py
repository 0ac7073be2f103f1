"""Queries on jobs, their events, counts and idempotency keys."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloudtune.domain.jobs import (
    ACTIVE_STATUSES,
    Job,
    JobStatus,
    Progress,
    can_transition,
    utcnow,
)

# The reads live in store.job_reads; these names stay importable from here.
from cloudtune.store.job_reads import _LIST_COLUMNS as _LIST_COLUMNS
from cloudtune.store.job_reads import JobFilter as JobFilter
from cloudtune.store.job_reads import _jobs as _jobs
from cloudtune.store.job_reads import _to_job as _to_job
from cloudtune.store.job_reads import count_jobs as count_jobs
from cloudtune.store.job_reads import get_job as get_job
from cloudtune.store.job_reads import list_jobs as list_jobs
from cloudtune.store.job_reads import user_key as user_key
from cloudtune.store.storage import revoke_job_credentials
from cloudtune.store.tables import (
    IdempotencyKeyModel,
    JobCountModel,
    JobEventModel,
    JobLeaseModel,
    JobSecretModel,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StatusChange:
    applied: bool
    job: Job
    previous: JobStatus


def insert_job(session: Session, job: Job) -> None:
    session.execute(
        _jobs.insert().values(
            job_id=job.job_id,
            job_type=job.job_type.value,
            provider=job.provider,
            status=job.status.value,
            config_name=job.config_name,
            tracker_run_name=job.tracker_run_name,
            user_id=job.user_id,
            priority=job.priority,
            created_at=job.created_at,
            updated_at=job.created_at,
            queued_at=job.queued_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
            cost_micros=job.cost_micros,
            error_message=job.error_message,
            provider_ref=job.provider_ref,
            hardware_type=job.hardware_type,
            hardware_profile=job.hardware_profile,
            price_per_hour_micros=job.price_per_hour_micros,
            estimated_cost_micros=job.estimated_cost_micros,
            max_cost_micros=job.max_cost_micros,
            progress=job.progress.to_dict(),
            output_url=job.output_url,
            outputs=job.outputs,
            metadata=job.metadata,
            config_snapshot=job.config_snapshot,
            provider_data=job.provider_data,
        )
    )
    session.add(
        JobEventModel(
            job_id=job.job_id,
            at=job.created_at,
            kind="status",
            from_status=None,
            to_status=job.status.value,
            message="submitted",
        )
    )
    _bump_count(session, job.user_id, job.provider, job.job_type.value, job.status.value, 1)


def claim_idempotency_key(
    session: Session, *, user_id: str | None, key: str, job_id: str, ttl: timedelta
) -> None:
    """Insert the key for this job; raises IntegrityError when the key is already taken."""
    now = utcnow()
    session.execute(
        delete(IdempotencyKeyModel).where(
            IdempotencyKeyModel.user_key == user_key(user_id),
            IdempotencyKeyModel.key == key,
            IdempotencyKeyModel.expires_at <= now,
        )
    )
    session.add(
        IdempotencyKeyModel(
            user_key=user_key(user_id),
            key=key,
            job_id=job_id,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    session.flush()


def find_idempotent_job_id(session: Session, *, user_id: str | None, key: str) -> str | None:
    return session.scalar(
        select(IdempotencyKeyModel.job_id).where(
            IdempotencyKeyModel.user_key == user_key(user_id),
            IdempotencyKeyModel.key == key,
            IdempotencyKeyModel.expires_at > utcnow(),
        )
    )


def list_active_jobs(session: Session, *, provider: str | None = None) -> list[Job]:
    query = select(_jobs).where(_jobs.c.status.in_([s.value for s in ACTIVE_STATUSES]))
    if provider:
        query = query.where(_jobs.c.provider == provider)
    query = query.order_by(_jobs.c.created_at)
    return [_to_job(row) for row in session.execute(query).mappings()]


def switch_job_status(
    session: Session,
    job_id: str,
    new_status: JobStatus,
    *,
    message: str | None = None,
    at: datetime | None = None,
    error_message: str | None = None,
    started_at: datetime | None = None,
    completed_at: datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> StatusChange | None:
    """The one place a job's status changes: checks the transition table, updates the row,
    writes the event row and keeps the counts, all in the caller's transaction.

    Returns None for an unknown job. An illegal change is not applied and is logged.
    """
    job = get_job(session, job_id, for_update=True)
    if job is None:
        return None
    previous = job.status
    if new_status == previous:
        return StatusChange(applied=False, job=job, previous=previous)
    if not can_transition(previous, new_status):
        log.warning(
            "ignored status change of job %s from %s to %s (%s)",
            job_id,
            previous.value,
            new_status.value,
            message or "no reason given",
        )
        return StatusChange(applied=False, job=job, previous=previous)
    now = at or utcnow()
    values: dict[str, Any] = {"status": new_status.value, "updated_at": now}
    if new_status == JobStatus.QUEUED and job.queued_at is None:
        values["queued_at"] = now
    # A provider's clock (or Replicate's created_at) may be behind ours: a job never starts
    # before it was queued (or created), nor ends before it started.
    started_at = _not_before(started_at, job.queued_at or job.created_at)
    completed_at = _not_before(completed_at, job.started_at or started_at)
    if new_status != JobStatus.QUEUED:
        values["queue_position"] = None
    if new_status == JobStatus.RUNNING and job.started_at is None:
        values["started_at"] = started_at or now
    if new_status.is_terminal:
        if job.started_at is None and started_at is not None:
            values["started_at"] = started_at
        values["completed_at"] = completed_at or now
        if job.cost_micros is None and (extra or {}).get("cost_micros") is None:
            # The final bill: price snapshot × seconds run, frozen with the job.
            job.started_at = values.get("started_at", job.started_at)
            values["cost_micros"] = job.billed_cost_micros(values["completed_at"])
    if error_message is not None:
        values["error_message"] = error_message
    if extra:
        values.update(extra)
    session.execute(update(_jobs).where(_jobs.c.job_id == job_id).values(**values))
    session.add(
        JobEventModel(
            job_id=job_id,
            at=now,
            kind="status",
            from_status=previous.value,
            to_status=new_status.value,
            message=message or error_message,
        )
    )
    if new_status.is_terminal:
        # An ended job is polled by no replica: its lease (store.leases) goes with it.
        session.execute(delete(JobLeaseModel).where(JobLeaseModel.job_id == job_id))
        # Its storage keys already stop working (each request reads the job's status); this
        # records when.
        revoke_job_credentials(session, job_id, at=now)
    for status, delta in sorted(((previous.value, -1), (new_status.value, 1))):
        _bump_count(session, job.user_id, job.provider, job.job_type.value, status, delta)
    updated = get_job(session, job_id)
    assert updated is not None
    return StatusChange(applied=True, job=updated, previous=previous)


def _not_before(value: datetime | None, floor: datetime | None) -> datetime | None:
    if value is None or floor is None:
        return value
    return max(value, floor)


def update_job_fields(session: Session, job_id: str, **values: Any) -> None:
    """Change fields other than status (provider reference, metadata, queue position)."""
    if "status" in values:
        raise ValueError("status changes go through switch_job_status")
    values["updated_at"] = utcnow()
    session.execute(update(_jobs).where(_jobs.c.job_id == job_id).values(**values))


def record_progress(session: Session, job_id: str, progress: Progress) -> bool:
    """Store a progress report on an active job, with an event row; False if not applied."""
    row = session.execute(
        update(_jobs)
        .where(
            _jobs.c.job_id == job_id,
            _jobs.c.status.in_([s.value for s in ACTIVE_STATUSES]),
        )
        .values(progress=progress.to_dict(), updated_at=utcnow())
    )
    if cast(CursorResult[Any], row).rowcount == 0:
        return False
    session.add(
        JobEventModel(
            job_id=job_id,
            at=progress.updated_at or utcnow(),
            kind="progress",
            data=progress.to_dict(),
        )
    )
    return True


def delete_job(session: Session, job: Job) -> bool:
    result = session.execute(
        delete(_jobs).where(_jobs.c.job_id == job.job_id, _jobs.c.status == job.status.value)
    )
    if cast(CursorResult[Any], result).rowcount == 0:
        return False
    _bump_count(session, job.user_id, job.provider, job.job_type.value, job.status.value, -1)
    return True


def list_events(session: Session, job_id: str) -> list[JobEventModel]:
    return list(
        session.scalars(
            select(JobEventModel).where(JobEventModel.job_id == job_id).order_by(JobEventModel.id)
        )
    )


def _bump_count(
    session: Session,
    user_id: str | None,
    provider: str,
    job_type: str,
    status: str,
    delta: int,
) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    counts = cast(Table, JobCountModel.__table__)
    stmt = insert(counts).values(
        user_key=user_key(user_id),
        provider=provider,
        job_type=job_type,
        status=status,
        count=delta,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_key", "provider", "job_type", "status"],
        set_={"count": counts.c.count + delta},
    )
    session.execute(stmt)


def find_by_provider_ref(session: Session, provider: str, ref: str) -> Job | None:
    row = (
        session.execute(
            select(_jobs).where(_jobs.c.provider == provider, _jobs.c.provider_ref == ref)
        )
        .mappings()
        .first()
    )
    return _to_job(row) if row is not None else None


def save_job_secrets(session: Session, job_id: str, ciphertext: str) -> None:
    session.add(JobSecretModel(job_id=job_id, ciphertext=ciphertext))


def job_secrets_ciphertext(session: Session, job_id: str) -> str | None:
    row = session.get(JobSecretModel, job_id)
    return row.ciphertext if row is not None else None
