"""What replicas sharing one database agree on through it: who polls a remote job (its lease)
and which cancels wait for the replica that holds a job. Blocking database work, run by the
reconciler in a thread."""

from __future__ import annotations

from datetime import datetime, timedelta

from cloudtune.domain.jobs import Job
from cloudtune.services.context import Context
from cloudtune.services.jobs import cancel_by_user
from cloudtune.store import leases as lease_store


def claim_for_pass(
    ctx: Context, job_ids: list[str], owner: str, now: datetime, ttl: timedelta
) -> set[str]:
    """Drop the leases of ended jobs, then renew or take `owner`'s leases on these jobs;
    the ids it holds until `now + ttl`. No write at all while no remote job is active (a
    deleted job's lease goes with its row)."""
    if not job_ids:
        return set()
    with ctx.db.write() as session:
        lease_store.release_ended(session)
        return lease_store.claim(session, job_ids, owner=owner, now=now, ttl=ttl)


def release(ctx: Context, job_ids: set[str], owner: str) -> None:
    """Give back `owner`'s leases on these jobs (a replica stopping cleanly)."""
    if not job_ids:
        return
    with ctx.db.write() as session:
        lease_store.release(session, job_ids, owner=owner)


def load_cancel_requests(ctx: Context) -> list[Job]:
    with ctx.db.read() as session:
        return lease_store.list_cancel_requests(session)


def finish_cancel_request(ctx: Context, job_id: str) -> int:
    """The holder stopped the job: clear the request, and cancel the job if it was not yet
    (a request recorded by an older server, or one whose status change was lost)."""
    with ctx.db.write() as session:
        lease_store.clear_cancel_request(session, job_id)
        change = cancel_by_user(session, job_id)
    return int(bool(change and change.applied))
