"""Leases on remote jobs: which replica polls a job, until when.

A lease is claimed or renewed by one guarded statement per job, so two replicas racing for a
job cannot both win: an insert when nobody holds it, an update only when the holder is the
caller or the lease has run out. The caller's clock is wall time (replicas on several hosts
share the database), taken once per pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, Table, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloudtune.domain.jobs import TERMINAL_STATUSES, Job
from cloudtune.store.jobs import _to_job
from cloudtune.store.tables import JobLeaseModel, JobModel

_leases = cast(Table, JobLeaseModel.__table__)
_jobs = cast(Table, JobModel.__table__)


def claim(
    session: Session, job_ids: Iterable[str], *, owner: str, now: datetime, ttl: timedelta
) -> set[str]:
    """Take or renew the lease of each job for `owner` until `now + ttl`; the ids it holds."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    held: set[str] = set()
    for job_id in job_ids:
        stmt = insert(_leases).values(job_id=job_id, owner=owner, expires_at=now + ttl)
        stmt = stmt.on_conflict_do_update(
            index_elements=["job_id"],
            set_={"owner": stmt.excluded.owner, "expires_at": stmt.excluded.expires_at},
            where=or_(_leases.c.owner == owner, _leases.c.expires_at < now),
        )
        # RETURNING, not rowcount: drivers disagree on an upsert's rowcount.
        if session.execute(stmt.returning(_leases.c.job_id)).first() is not None:
            held.add(job_id)
    return held


def holders(session: Session, job_ids: Iterable[str]) -> dict[str, tuple[str, datetime]]:
    """Who holds each of these jobs, and until when (expired leases included)."""
    ids = list(job_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(_leases.c.job_id, _leases.c.owner, _leases.c.expires_at).where(
            _leases.c.job_id.in_(ids)
        )
    )
    return {row.job_id: (row.owner, row.expires_at) for row in rows}


def release(session: Session, job_ids: Iterable[str], *, owner: str) -> int:
    """Give up the leases `owner` holds on these jobs."""
    ids = list(job_ids)
    if not ids:
        return 0
    result = session.execute(
        delete(_leases).where(_leases.c.job_id.in_(ids), _leases.c.owner == owner)
    )
    return int(cast(CursorResult[object], result).rowcount)


def release_ended(session: Session) -> int:
    """Drop the leases of jobs that have ended, whoever held them: nothing polls those.
    (`store.jobs.switch_job_status` drops a job's lease as it ends; this catches leases a
    job kept through a status change made by an older server.)

    It runs every pass: it walks the lease rows (a few, one per active remote job) and looks
    each job up by its key, never the ended jobs (millions, after a while)."""
    ended = (
        select(_jobs.c.job_id)
        .where(
            _jobs.c.job_id == _leases.c.job_id,
            _jobs.c.status.in_([s.value for s in TERMINAL_STATUSES]),
        )
        .exists()
    )
    result = session.execute(delete(_leases).where(ended))
    return int(cast(CursorResult[object], result).rowcount)


# -- cancel requests: a cancel taken by a replica that does not hold the job -----------------


def request_cancel(session: Session, job_id: str, *, at: datetime) -> None:
    """Mark the job for its holder to stop (kept if already marked: the first ask counts)."""
    session.execute(
        update(_jobs)
        .where(_jobs.c.job_id == job_id, _jobs.c.cancel_requested_at.is_(None))
        .values(cancel_requested_at=at)
    )


def cancel_requested(session: Session, job_id: str) -> bool:
    """Whether the job's cancel still waits for the replica that holds it."""
    query = select(_jobs.c.cancel_requested_at).where(_jobs.c.job_id == job_id)
    return session.execute(query).scalar() is not None


def list_cancel_requests(session: Session) -> list[Job]:
    """Jobs whose cancel waits for the replica that holds them, oldest ask first."""
    query = (
        select(_jobs)
        .where(_jobs.c.cancel_requested_at.is_not(None))
        .order_by(_jobs.c.cancel_requested_at)
    )
    return [_to_job(row) for row in session.execute(query).mappings()]


def clear_cancel_request(session: Session, job_id: str) -> None:
    session.execute(update(_jobs).where(_jobs.c.job_id == job_id).values(cancel_requested_at=None))
