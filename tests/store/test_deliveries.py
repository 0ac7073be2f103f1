"""Job deliveries: planned, taken by one replica at a time, finished, planned again."""

from __future__ import annotations

from datetime import timedelta

from cloudtune.domain.deliveries import DeliveryKind, DeliveryStatus
from cloudtune.domain.jobs import utcnow
from cloudtune.store import deliveries
from cloudtune.store import jobs as job_store
from cloudtune.store.db import Database
from tests.factories import create_job

CLAIM = timedelta(minutes=5)


def test_a_delivery_is_taken_once_until_its_claim_runs_out(db: Database) -> None:
    job = create_job(db)
    now = utcnow()
    with db.write() as session:
        deliveries.plan(session, job.job_id, DeliveryKind.HUB, at=now, settings={"repo": "a/b"})
        deliveries.plan(session, job.job_id, DeliveryKind.OUTPUTS, at=now)
    with db.write() as session:
        taken = deliveries.take(session, [DeliveryKind.HUB], now=now, claim_for=CLAIM)
    assert [(d.kind, d.status, d.attempts) for d in taken] == [
        (DeliveryKind.HUB, DeliveryStatus.RUNNING, 1)
    ]
    assert taken[0].settings == {"repo": "a/b"}
    with db.write() as session:
        assert deliveries.take(session, [DeliveryKind.HUB], now=now, claim_for=CLAIM) == []
        later = now + CLAIM + timedelta(seconds=1)
        again = deliveries.take(session, [DeliveryKind.HUB], now=later, claim_for=CLAIM)
    assert [d.attempts for d in again] == [2]


def test_a_failed_delivery_shows_its_error_and_a_retry_starts_it_over(db: Database) -> None:
    job = create_job(db)
    now = utcnow()
    with db.write() as session:
        deliveries.plan(session, job.job_id, DeliveryKind.S3, at=now)
        deliveries.take(session, [DeliveryKind.S3], now=now, claim_for=CLAIM)
        deliveries.finish(session, job.job_id, DeliveryKind.S3, at=now, error="403 Forbidden")
    with db.read() as session:
        failed = deliveries.get_delivery(session, job.job_id, DeliveryKind.S3)
    assert failed is not None and failed.status == DeliveryStatus.FAILED
    assert failed.error == "403 Forbidden"
    with db.write() as session:
        assert deliveries.take(session, [DeliveryKind.S3], now=now, claim_for=CLAIM) == []
        deliveries.plan(session, job.job_id, DeliveryKind.S3, at=now)
        retried = deliveries.take(session, [DeliveryKind.S3], now=now, claim_for=CLAIM)
        deliveries.finish(session, job.job_id, DeliveryKind.S3, at=now, target="s3://bucket/run")
    assert [d.error for d in retried] == [None]
    with db.read() as session:
        (done,) = deliveries.deliveries_of(session, job.job_id)
    assert done.status == DeliveryStatus.DONE and done.target == "s3://bucket/run"


def test_a_publish_target_marks_its_job_and_outputs_do_not(db: Database) -> None:
    publishing, fetching = create_job(db), create_job(db)
    now = utcnow()
    with db.write() as session:
        deliveries.plan(session, publishing.job_id, DeliveryKind.S3, at=now)
        deliveries.plan(session, fetching.job_id, DeliveryKind.OUTPUTS, at=now)
    with db.read() as session:
        assert job_store.get_job(session, publishing.job_id).publishes  # type: ignore[union-attr]
        assert not job_store.get_job(session, fetching.job_id).publishes  # type: ignore[union-attr]
