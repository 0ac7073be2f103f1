"""Leases on remote jobs and cancel requests, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from cloudtune.domain.jobs import JobStatus
from cloudtune.store import jobs as job_store
from cloudtune.store import leases
from cloudtune.store.db import Database
from tests.factories import create_job

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=30)


def claim(db: Database, job_ids: list[str], owner: str, now: datetime) -> set[str]:
    with db.write() as session:
        return leases.claim(session, job_ids, owner=owner, now=now, ttl=TTL)


def test_one_owner_at_a_time_and_renewal_by_the_holder(db: Database) -> None:
    a, b = create_job(db, provider="replicate"), create_job(db, provider="replicate")
    assert claim(db, [a.job_id], "r1", T0) == {a.job_id}
    # Someone else cannot take a live lease, but may take a free job in the same call.
    assert claim(db, [a.job_id, b.job_id], "r2", T0 + timedelta(seconds=1)) == {b.job_id}
    # The holder renews: its lease now runs from the renewal.
    assert claim(db, [a.job_id], "r1", T0 + timedelta(seconds=20)) == {a.job_id}
    assert claim(db, [a.job_id], "r2", T0 + timedelta(seconds=40)) == set()
    with db.read() as session:
        held = leases.holders(session, [a.job_id, b.job_id])
    assert held[a.job_id] == ("r1", T0 + timedelta(seconds=50))
    assert held[b.job_id][0] == "r2"


def test_a_lease_that_ran_out_is_taken_over(db: Database) -> None:
    job = create_job(db, provider="replicate")
    assert claim(db, [job.job_id], "r1", T0) == {job.job_id}
    assert claim(db, [job.job_id], "r2", T0 + TTL) == set()  # not before it ran out
    assert claim(db, [job.job_id], "r2", T0 + TTL + timedelta(microseconds=1)) == {job.job_id}
    assert claim(db, [job.job_id], "r1", T0 + TTL + timedelta(seconds=1)) == set()


def test_leases_are_released_by_their_holder_and_when_jobs_end(db: Database) -> None:
    a = create_job(db, provider="replicate", status=JobStatus.RUNNING)
    b = create_job(db, provider="replicate", status=JobStatus.RUNNING)
    ended = create_job(db, provider="replicate", status=JobStatus.FAILED)
    claim(db, [a.job_id, b.job_id, ended.job_id], "r1", T0)
    with db.write() as session:
        assert leases.release(session, [a.job_id], owner="r2") == 0
        assert leases.release(session, [a.job_id], owner="r1") == 1
        # The one status-change function drops the lease of a job that ends...
        job_store.switch_job_status(session, b.job_id, JobStatus.COMPLETED)
        assert set(leases.holders(session, [b.job_id, ended.job_id])) == {ended.job_id}
        # ...and a lease an ended job kept anyway is dropped by the next pass.
        assert leases.release_ended(session) == 1
    with db.read() as session:
        assert leases.holders(session, [a.job_id, b.job_id, ended.job_id]) == {}
    # A free job is anyone's again at once.
    assert claim(db, [a.job_id], "r2", T0) == {a.job_id}


def test_a_lease_goes_with_its_job(db: Database) -> None:
    job = create_job(db, provider="replicate", status=JobStatus.FAILED)
    claim(db, [job.job_id], "r1", T0)
    with db.write() as session:
        assert job_store.delete_job(session, job)
    with db.read() as session:
        assert leases.holders(session, [job.job_id]) == {}


def test_cancel_requests_keep_the_first_ask_until_cleared(db: Database) -> None:
    a, b = create_job(db, status=JobStatus.RUNNING), create_job(db, status=JobStatus.RUNNING)
    with db.write() as session:
        leases.request_cancel(session, b.job_id, at=T0)
        leases.request_cancel(session, a.job_id, at=T0 + timedelta(seconds=1))
        leases.request_cancel(session, b.job_id, at=T0 + timedelta(seconds=2))
    with db.read() as session:
        asked = leases.list_cancel_requests(session)
    assert [job.job_id for job in asked] == [b.job_id, a.job_id]
    with db.write() as session:
        leases.clear_cancel_request(session, b.job_id)
    with db.read() as session:
        assert [job.job_id for job in leases.list_cancel_requests(session)] == [a.job_id]


def test_dropping_ended_jobs_leases_looks_up_only_the_leased_jobs(db: Database) -> None:
    """It runs every pass: it must walk the few lease rows and look their jobs up by key,
    never read the ended jobs by status (a million of them after a while)."""
    if not db.is_sqlite:
        pytest.skip("the plan is read with SQLite's EXPLAIN QUERY PLAN")
    ran: list[tuple[str, object]] = []

    def record(_c: object, _cur: object, stmt: str, params: object, *_: object) -> None:
        ran.append((stmt, params))

    with db.write() as session:
        connection = session.connection()
        event.listen(connection, "before_cursor_execute", record)
        leases.release_ended(session)
        event.remove(connection, "before_cursor_execute", record)
        [(statement, params)] = ran
        plan = [
            row[3]
            for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)  # type: ignore[arg-type]
        ]
    on_jobs = [step for step in plan if " jobs " in f"{step} "]
    assert on_jobs and all("(job_id=?)" in step for step in on_jobs), plan
