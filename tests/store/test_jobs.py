"""Store tests, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from cloudtune.domain.jobs import JobStatus, JobType, Progress, utcnow
from cloudtune.store import jobs as job_store
from cloudtune.store.db import Database
from cloudtune.store.tables import JobEventModel, JobModel
from tests.factories import create_job, create_jobs


class TestSwitchJobStatus:
    def test_a_legal_change_is_applied_with_its_event(self, db: Database) -> None:
        job = create_job(db)
        with db.write() as session:
            change = job_store.switch_job_status(session, job.job_id, JobStatus.QUEUED)
        assert change is not None and change.applied
        assert change.job.status == JobStatus.QUEUED and change.job.queued_at is not None
        with db.read() as session:
            events = job_store.list_events(session, job.job_id)
        assert [(e.from_status, e.to_status) for e in events] == [
            (None, "pending"),
            ("pending", "queued"),
        ]

    def test_an_illegal_change_is_ignored_and_logged(
        self, db: Database, caplog: pytest.LogCaptureFixture
    ) -> None:
        job = create_job(db, status=JobStatus.QUEUED)
        with db.write() as session:
            job_store.switch_job_status(session, job.job_id, JobStatus.CANCELLED)
        with db.write() as session:
            change = job_store.switch_job_status(session, job.job_id, JobStatus.RUNNING)
        assert change is not None and not change.applied
        assert change.job.status == JobStatus.CANCELLED
        assert "ignored status change" in caplog.text
        with db.read() as session:
            assert job_store.get_job(session, job.job_id).status == JobStatus.CANCELLED

    def test_timestamps_follow_the_status(self, db: Database) -> None:
        job = create_job(db, status=JobStatus.QUEUED)
        with db.write() as session:
            running = job_store.switch_job_status(session, job.job_id, JobStatus.RUNNING)
            done = job_store.switch_job_status(
                session, job.job_id, JobStatus.FAILED, error_message="boom"
            )
        assert running.job.started_at is not None
        assert done.job.completed_at >= running.job.started_at
        assert done.job.error_message == "boom"

    def test_a_start_reported_before_the_queue_time_is_clamped(self, db: Database) -> None:
        """A provider's clock behind ours (or Replicate's created_at as a start): started_at
        is never before queued_at, and completed_at never before started_at."""
        queued = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
        job = create_job(db, status=JobStatus.QUEUED, created_at=queued, queued_at=queued)
        early = queued - timedelta(seconds=30)
        with db.write() as session:
            running = job_store.switch_job_status(
                session, job.job_id, JobStatus.RUNNING, started_at=early
            )
            done = job_store.switch_job_status(
                session, job.job_id, JobStatus.COMPLETED, completed_at=early
            )
        assert running.job.started_at == queued
        assert done.job.started_at == queued and done.job.completed_at == queued
        assert done.job.duration_seconds() == 0.0

    def test_a_job_finished_before_it_was_seen_running_starts_after_its_queue_time(
        self, db: Database
    ) -> None:
        queued = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
        job = create_job(db, status=JobStatus.QUEUED, created_at=queued, queued_at=queued)
        with db.write() as session:
            done = job_store.switch_job_status(
                session,
                job.job_id,
                JobStatus.COMPLETED,
                started_at=queued - timedelta(minutes=1),
                completed_at=queued + timedelta(minutes=2),
            )
        assert done.job.started_at == queued
        assert done.job.completed_at == queued + timedelta(minutes=2)

    def test_unknown_job_gives_none(self, db: Database) -> None:
        with db.write() as session:
            assert job_store.switch_job_status(session, "nope", JobStatus.QUEUED) is None


class TestCounts:
    def test_counts_match_the_table_after_random_changes(self, db: Database) -> None:
        rng = random.Random(7)
        jobs = create_jobs(db, 40)
        jobs += create_jobs(db, 10, provider="replicate", job_type=JobType.CLOUD, user_id="u1")
        for job in jobs:
            path = rng.choice(
                [
                    [],
                    ["queued"],
                    ["queued", "running"],
                    ["queued", "running", "completed"],
                    ["cancelled"],
                    ["queued", "running", "failed"],
                ]
            )
            with db.write() as session:
                for status in path:
                    job_store.switch_job_status(session, job.job_id, JobStatus(status))
        with db.write() as session:
            for job in jobs[:5]:
                current = job_store.get_job(session, job.job_id)
                if current.is_terminal:
                    job_store.delete_job(session, current)
        with db.read() as session:
            rows = session.execute(
                select(JobModel.status, JobModel.provider, func.count()).group_by(
                    JobModel.status, JobModel.provider
                )
            ).all()
            actual = Counter({(s, p): n for s, p, n in rows})
            for (status, provider), n in actual.items():
                flt = job_store.JobFilter(statuses=(JobStatus(status),), provider=provider)
                assert job_store.count_jobs(session, flt) == n
            assert job_store.count_jobs(session, job_store.JobFilter()) == sum(actual.values())
            mine = job_store.JobFilter(user_id="u1", only_user=True)
            assert job_store.count_jobs(session, mine) == 10
            local = job_store.JobFilter(job_type=JobType.LOCAL)
            assert job_store.count_jobs(session, local) == sum(
                n for (_, p), n in actual.items() if p == "local"
            )


class TestListing:
    def test_newest_first_with_offset(self, db: Database) -> None:
        jobs = create_jobs(db, 12)
        with db.read() as session:
            first = job_store.list_jobs(session, job_store.JobFilter(), limit=5, offset=0)
            second = job_store.list_jobs(session, job_store.JobFilter(), limit=5, offset=5)
        newest = [j.job_id for j in reversed(jobs)]
        assert [j.job_id for j in first] == newest[:5]
        assert [j.job_id for j in second] == newest[5:10]
        assert first[0].config_snapshot is None  # the list leaves the heavy column out

    def test_filters(self, db: Database) -> None:
        create_jobs(db, 3)
        create_jobs(db, 2, status=JobStatus.QUEUED, provider="replicate", job_type=JobType.CLOUD)
        with db.read() as session:
            cloud = job_store.list_jobs(
                session, job_store.JobFilter(job_type=JobType.CLOUD), limit=50, offset=0
            )
            queued = job_store.list_jobs(
                session,
                job_store.JobFilter(statuses=(JobStatus.QUEUED, JobStatus.RUNNING)),
                limit=50,
                offset=0,
            )
        assert len(cloud) == 2 and all(j.provider == "replicate" for j in cloud)
        assert len(queued) == 2

    def test_a_page_and_its_total_agree_for_the_local_owner(self, db: Database) -> None:
        create_jobs(db, 2)  # no user: made in no-users mode
        create_jobs(db, 3, user_id="u1")
        mine = job_store.JobFilter(user_id=None, only_user=True)
        with db.read() as session:
            page = job_store.list_jobs(session, mine, limit=50, offset=0)
            total = job_store.count_jobs(session, mine)
        assert len(page) == total == 2 and all(j.user_id is None for j in page)


class TestIdempotencyKeys:
    def test_a_taken_key_raises_and_leaves_no_job(self, db: Database) -> None:
        first = create_job(db)
        with db.write() as session:
            job_store.claim_idempotency_key(
                session, user_id=None, key="k", job_id=first.job_id, ttl=timedelta(hours=24)
            )
        second = create_job(db)
        with pytest.raises(IntegrityError), db.write() as session:
            job_store.claim_idempotency_key(
                session, user_id=None, key="k", job_id=second.job_id, ttl=timedelta(hours=24)
            )
        with db.read() as session:
            assert job_store.find_idempotent_job_id(session, user_id=None, key="k") == first.job_id

    def test_keys_are_scoped_per_user(self, db: Database) -> None:
        a, b = create_job(db, user_id="a"), create_job(db, user_id="b")
        with db.write() as session:
            for job in (a, b):
                job_store.claim_idempotency_key(
                    session,
                    user_id=job.user_id,
                    key="same",
                    job_id=job.job_id,
                    ttl=timedelta(hours=24),
                )
        with db.read() as session:
            assert job_store.find_idempotent_job_id(session, user_id="a", key="same") == a.job_id
            assert job_store.find_idempotent_job_id(session, user_id="b", key="same") == b.job_id

    def test_an_expired_key_is_free_again(self, db: Database) -> None:
        old, new = create_job(db), create_job(db)
        with db.write() as session:
            job_store.claim_idempotency_key(
                session, user_id=None, key="k", job_id=old.job_id, ttl=timedelta(seconds=-1)
            )
        with db.read() as session:
            assert job_store.find_idempotent_job_id(session, user_id=None, key="k") is None
        with db.write() as session:
            job_store.claim_idempotency_key(
                session, user_id=None, key="k", job_id=new.job_id, ttl=timedelta(hours=1)
            )
        with db.read() as session:
            assert job_store.find_idempotent_job_id(session, user_id=None, key="k") == new.job_id

    def test_deleting_the_job_frees_its_key(self, db: Database) -> None:
        job = create_job(db, status=JobStatus.PENDING)
        with db.write() as session:
            job_store.claim_idempotency_key(
                session, user_id=None, key="k", job_id=job.job_id, ttl=timedelta(hours=1)
            )
            job_store.switch_job_status(session, job.job_id, JobStatus.CANCELLED)
        with db.write() as session:
            assert job_store.delete_job(session, job_store.get_job(session, job.job_id))
        with db.read() as session:
            assert job_store.find_idempotent_job_id(session, user_id=None, key="k") is None
            events = session.scalar(select(func.count()).select_from(JobEventModel))
        assert events == 0


class TestProgress:
    def test_progress_is_kept_on_active_jobs_only(self, db: Database) -> None:
        job = create_job(db, status=JobStatus.QUEUED)
        progress = Progress(step=3, total_steps=10, loss=0.5, updated_at=utcnow())
        with db.write() as session:
            assert job_store.record_progress(session, job.job_id, progress)
            job_store.switch_job_status(session, job.job_id, JobStatus.CANCELLED)
        with db.write() as session:
            assert not job_store.record_progress(session, job.job_id, Progress(step=9))
            stored = job_store.get_job(session, job.job_id)
        assert stored.progress.step == 3 and stored.progress.loss == 0.5
