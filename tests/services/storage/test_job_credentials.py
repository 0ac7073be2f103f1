"""A job's key to the built-in S3 endpoint, in the database: found again while the job runs
(a restarted server hands it back to its trainer), revoked in the transaction that ends the
job, stored encrypted, and not among the people's keys."""

from __future__ import annotations

from cloudtune.domain.jobs import JobStatus, JobType
from cloudtune.domain.principal import LOCAL_ADMIN
from cloudtune.services.secrets import SecretBox
from cloudtune.services.storage import credentials, job_credentials, mint_job_credentials
from cloudtune.settings import Settings
from cloudtune.store import jobs as job_store
from cloudtune.store import storage as store
from cloudtune.store.db import Database
from tests.factories import create_job, make_context


def test_a_jobs_key_lives_and_ends_with_its_job(settings: Settings, db: Database) -> None:
    ctx = make_context(settings, db, secret_box=SecretBox.from_settings(settings))
    job = create_job(db, job_type=JobType.CLOUD, provider="replicate", status=JobStatus.RUNNING)
    made = mint_job_credentials(ctx, job.job_id, None)

    again = job_credentials(ctx, job.job_id)
    assert again == made
    assert made.prefix == f"{job.job_id}/" and made.bucket == "outputs"
    assert made.endpoint_url == f"{settings.base_url}/api/cloud/storage"
    with db.read() as session:
        row = store.find_credential(session, made.access_key_id)
    assert row is not None and made.secret_access_key not in row.secret_ciphertext
    assert credentials.list_credentials(ctx, LOCAL_ADMIN) == []

    with db.write() as session:
        job_store.switch_job_status(session, job.job_id, JobStatus.COMPLETED)
    with db.read() as session:
        ended = store.find_credential(session, made.access_key_id)
    assert ended is not None and ended.revoked_at is not None
    assert job_credentials(ctx, job.job_id) is None


def test_a_job_with_no_key_has_none(settings: Settings, db: Database) -> None:
    ctx = make_context(settings, db, secret_box=SecretBox.from_settings(settings))
    job = create_job(db, job_type=JobType.CLOUD, provider="replicate", status=JobStatus.RUNNING)
    assert job_credentials(ctx, job.job_id) is None
