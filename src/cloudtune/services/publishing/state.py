"""How far a job's publishing got, for its JSON and `GET /api/cloud/jobs/{id}/publish`, and a
retry of what failed (`POST .../publish/retry`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloudtune.domain.deliveries import PUBLISH_KINDS, Delivery, DeliveryStatus
from cloudtune.domain.jobs import Job, JobStatus
from cloudtune.domain.principal import Principal
from cloudtune.errors import ConflictError, job_not_found
from cloudtune.services.context import Context
from cloudtune.store import deliveries as delivery_store
from cloudtune.store import jobs as job_store

SKIPPED = "skipped"  # the job did not complete: nothing is published
# Kept with a delivery for the runner, not shown with the job.
_INTERNAL = frozenset({"from_defaults", "by_provider_manager"})


@dataclass(frozen=True, slots=True)
class TargetState:
    kind: str  # hub | s3
    status: str  # pending | running | done | failed | skipped
    target: str | None  # the repository URL or s3:// URL, once published
    error: str | None
    attempts: int
    settings: dict[str, Any]  # repo_id, private / bucket, prefix, region, endpoint_url
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PublishState:
    job_id: str
    targets: tuple[TargetState, ...]

    @property
    def error(self) -> str | None:
        failed = [f"{t.kind}: {t.error}" for t in self.targets if t.status == "failed"]
        return "; ".join(failed) or None


def publish_state(
    job_id: str, job_status: JobStatus, deliveries: Iterable[Delivery]
) -> PublishState:
    targets = []
    for d in deliveries:
        if d.kind not in PUBLISH_KINDS:
            continue
        status = d.status.value
        if d.status == DeliveryStatus.PENDING and job_status.is_terminal:
            status = SKIPPED if job_status != JobStatus.COMPLETED else status
        settings = {k: v for k, v in d.settings.items() if k not in _INTERNAL}
        targets.append(
            TargetState(
                d.kind.value, status, d.target, d.error, d.attempts, settings, d.updated_at
            )
        )
    return PublishState(job_id, tuple(targets))


def publish_fields(state: PublishState) -> dict[str, Any]:
    """The job JSON's fields: `publish` (null when the job publishes nowhere, else one entry per
    target) and `publish_error` (the failed targets' errors, or null)."""
    if not state.targets:
        return {"publish": None, "publish_error": None}
    return {
        "publish": {
            t.kind: {
                **t.settings,
                "status": t.status,
                "target": t.target,
                "error": t.error,
                "attempts": t.attempts,
                "updated_at": t.updated_at.isoformat(),
            }
            for t in state.targets
        },
        "publish_error": state.error,
    }


def job_publish_fields(ctx: Context, job_id: str, job_status: JobStatus) -> dict[str, Any]:
    """`publish_fields` of a job read from the database (for the job JSON)."""
    with ctx.db.read() as session:
        found = delivery_store.deliveries_of(session, job_id)
    return publish_fields(publish_state(job_id, job_status, found))


def get_publish(ctx: Context, caller: Principal, job_id: str) -> PublishState:
    with ctx.db.read() as session:
        job = job_store.get_job(session, job_id)
        if job is None:
            raise job_not_found(job_id)
        caller.require_visible(job)
        found = delivery_store.deliveries_of(session, job_id)
    return publish_state(job_id, job.status, found)


def retry_publish(ctx: Context, caller: Principal, job_id: str) -> PublishState:
    """Failed targets start over (pending; the runner takes them). 409 when nothing failed."""
    caller.require("job.submit")
    with ctx.db.write() as session:
        job = job_store.get_job(session, job_id)
        if job is None:
            raise job_not_found(job_id)
        caller.require_visible(job)
        failed = [
            d
            for d in delivery_store.deliveries_of(session, job_id)
            if d.kind in PUBLISH_KINDS and d.status == DeliveryStatus.FAILED
        ]
        if not failed:
            raise ConflictError(
                f"Job {job_id} has no failed publish to retry",
                code="nothing_to_retry",
                job_id=job_id,
            )
        for d in failed:
            delivery_store.plan(session, job_id, d.kind, at=ctx.clock())
        found = delivery_store.deliveries_of(session, job_id)
    return publish_state(job_id, job.status, found)


def publish_fields_of_jobs(ctx: Context, jobs: Sequence[Job]) -> dict[str, dict[str, Any]]:
    """`publish_fields` of each job of a page, read in one query, and none when no job of the
    page publishes (most pages: the job list's hot path)."""
    publishing = [job.job_id for job in jobs if job.publishes]
    found: dict[str, list[Delivery]] = {}
    if publishing:
        with ctx.db.read() as session:
            found = delivery_store.deliveries_of_jobs(session, publishing)
    return {
        job.job_id: publish_fields(
            publish_state(job.job_id, job.status, found.get(job.job_id, []))
        )
        for job in jobs
    }
