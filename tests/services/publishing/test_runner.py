"""The publish runner and the submit hook on both databases: deliveries planned with a local
job, made once it completes (one replica at a time), skipped for a job that did not; secrets
sealed apart from the trainer's."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy_boto3_s3 import S3Client

from cloudtune.domain.jobs import JobStatus, JobType
from cloudtune.domain.principal import LOCAL_ADMIN
from cloudtune.errors import InvalidInputError
from cloudtune.services import publishing
from cloudtune.services.context import Context
from cloudtune.services.jobs import job_secrets
from cloudtune.services.submission.idempotency import insert_job
from cloudtune.settings import Settings
from cloudtune.store import jobs as job_store
from cloudtune.store.db import Database
from tests.factories import make_context, make_job
from tests.fakes.hub import FakeHub
from tests.services.publishing.conftest import EXPECTED, HUB_TOKEN, S3_KEY_ID, S3_SECRET


@pytest.fixture
def ctx(settings: Settings, db: Database) -> Context:
    return make_context(settings, db)


def _submit(
    ctx: Context, outputs: Path, raw: dict[str, object] | None, **job: object
) -> tuple[str, publishing.JobPublish | None]:
    publish = publishing.for_submit(ctx, LOCAL_ADMIN, raw)
    made = make_job(output_url=str(outputs), **job)
    insert_job(ctx, LOCAL_ADMIN, made, None, (), publish)
    return made.job_id, publish


def _complete(ctx: Context, job_id: str, status: JobStatus = JobStatus.COMPLETED) -> None:
    with ctx.db.write() as session:
        for step in (JobStatus.QUEUED, JobStatus.RUNNING, status):
            job_store.switch_job_status(session, job_id, step)


async def test_a_local_job_publishes_once_it_completes(
    ctx: Context, outputs: Path, hub: FakeHub
) -> None:
    job_id, _ = _submit(ctx, outputs, {"hub": {"repo_id": "me/lora", "token": HUB_TOKEN}})
    runner = publishing.PublishRunner(ctx)
    assert await runner.run_once() == 0  # pending until the job completes
    _complete(ctx, job_id)

    assert await runner.run_once() == 1

    fields = publishing.job_publish_fields(ctx, job_id, JobStatus.COMPLETED)
    assert fields["publish_error"] is None
    assert fields["publish"]["hub"]["status"] == "done"
    assert set(hub.repos["me/lora"].files) == EXPECTED
    assert await runner.run_once() == 0


def test_publish_secrets_are_sealed_apart_from_the_trainers(ctx: Context, outputs: Path) -> None:
    job_id, publish = _submit(ctx, outputs, {"hub": {"repo_id": "me/lora", "token": HUB_TOKEN}})

    assert publish is not None and publish.given == ((("publish", "hub", "token"), HUB_TOKEN),)
    with ctx.db.read() as session:
        sealed = job_store.job_secrets_ciphertext(session, job_id)
        job = job_store.get_job(session, job_id)
    assert sealed is not None and HUB_TOKEN not in sealed
    assert ctx.secret_box.open_secrets(sealed) == [(("publish", "hub", "token"), HUB_TOKEN)]
    assert job_secrets(ctx, job_id) == []  # what a restarted trainer is handed
    assert job is not None and HUB_TOKEN not in repr(job)


def test_a_remote_job_plans_no_delivery(ctx: Context, outputs: Path) -> None:
    job_id, publish = _submit(
        ctx,
        outputs,
        {"hub": {"repo_id": "me/lora", "token": HUB_TOKEN}},
        job_type=JobType.CLOUD,
        provider="replicate",
    )
    assert publish is not None and publish.settings.hub is not None
    assert publishing.job_publish_fields(ctx, job_id, JobStatus.PENDING)["publish"] is None


async def test_a_job_that_failed_is_not_published(ctx: Context, outputs: Path) -> None:
    job_id, _ = _submit(ctx, outputs, {"hub": {"repo_id": "me/lora", "token": HUB_TOKEN}})
    _complete(ctx, job_id, JobStatus.FAILED)

    assert await publishing.PublishRunner(ctx).run_once() == 0
    fields = publishing.job_publish_fields(ctx, job_id, JobStatus.FAILED)
    assert fields["publish"]["hub"]["status"] == "skipped"


async def test_one_replica_takes_a_delivery(ctx: Context, outputs: Path, hub: FakeHub) -> None:
    job_id, _ = _submit(ctx, outputs, {"hub": {"repo_id": "me/lora", "token": HUB_TOKEN}})
    _complete(ctx, job_id)
    first, second = publishing.PublishRunner(ctx), publishing.PublishRunner(ctx)

    taken = first._take()

    assert [d.job_id for d in taken] == [job_id]
    assert second._take() == []


async def test_defaults_publish_with_their_saved_keys_and_the_environment_token(
    ctx: Context,
    outputs: Path,
    hub: FakeHub,
    bucket: tuple[S3Client, str],
    moto_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, name = bucket
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    shown = publishing.update_defaults(
        ctx,
        LOCAL_ADMIN,
        {
            "hub": {"repo_id": "me/team"},
            "s3": {
                "bucket": name,
                "endpoint_url": moto_url,
                "access_key_id": S3_KEY_ID,
                "secret_access_key": S3_SECRET,
            },
        },
    )
    assert shown.hub is not None and not shown.hub.token_saved
    assert shown.s3 is not None and shown.s3.keys_saved and shown.hf_token_in_environment
    job_id, publish = _submit(ctx, outputs, None)
    assert publish is not None and publish.from_defaults and publish.given == ()
    _complete(ctx, job_id)

    assert await publishing.PublishRunner(ctx).run_once() == 2

    fields = publishing.job_publish_fields(ctx, job_id, JobStatus.COMPLETED)
    assert fields["publish_error"] is None, fields
    assert set(hub.repos["me/team"].files) == EXPECTED
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=name)["Contents"]}
    assert keys == {f"{job_id}/{rel}" for rel in EXPECTED}


async def test_no_token_anywhere_fails_with_what_to_do(
    ctx: Context, outputs: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    job_id, _ = _submit(ctx, outputs, {"hub": {"repo_id": "me/lora"}})
    monkeypatch.delenv("HF_TOKEN")
    _complete(ctx, job_id)

    await publishing.PublishRunner(ctx).run_once()

    error = publishing.job_publish_fields(ctx, job_id, JobStatus.COMPLETED)["publish_error"]
    assert error.startswith("hub: publish refused: no Hugging Face token")


def test_a_submit_without_a_token_is_refused(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InvalidInputError) as refused:
        publishing.for_submit(ctx, LOCAL_ADMIN, {"hub": {"repo_id": "me/lora"}})
    assert refused.value.extra["field"] == "publish.hub.token"
    with pytest.raises(InvalidInputError) as no_keys:
        publishing.for_submit(ctx, LOCAL_ADMIN, {"s3": {"bucket": "models"}})
    assert no_keys.value.extra["field"] == "publish.s3"
