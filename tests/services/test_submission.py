"""Submission as a service: an idempotent retry answers its job before any path, data or
provider check."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudtune.domain.jobs import JobStatus
from cloudtune.domain.principal import LOCAL_ADMIN
from cloudtune.errors import InvalidInputError
from cloudtune.services import submission
from cloudtune.services.context import Context
from cloudtune.services.submission.idempotency import insert_job
from cloudtune.settings import Settings
from cloudtune.store.db import Database
from tests.factories import job_body, make_context, make_dataset, make_job


@pytest.fixture
def ctx(settings: Settings, db: Database, tmp_path: Path) -> Iterator[Context]:
    settings.data_roots = [str(tmp_path)]
    yield make_context(settings, db, providers=["local"])


def request_for(dataset: Path, output: Path, key: str) -> submission.SubmitRequest:
    body = job_body(dataset, output)
    return submission.SubmitRequest(
        config=body["config"], dataloader_config=body["dataloader_config"], idempotency_key=key
    )


async def test_a_retry_whose_dataset_vanished_still_answers_its_job(
    ctx: Context, tmp_path: Path
) -> None:
    dataset = make_dataset(tmp_path / "dataset", 2, size=16)
    original = make_job(status=JobStatus.QUEUED, estimated_cost_micros=1234)
    insert_job(ctx, LOCAL_ADMIN, original, "ci-build-7", ())
    shutil.rmtree(dataset)

    retry = await submission.submit_job(
        ctx, LOCAL_ADMIN, "local", request_for(dataset, tmp_path / "out", "ci-build-7")
    )

    assert retry.idempotent_hit is True
    assert retry.job_id == original.job_id and retry.status == JobStatus.QUEUED
    assert retry.estimated_cost_micros == 1234
    # The same request under a new key reaches the path check, and the path is gone.
    with pytest.raises(InvalidInputError):
        await submission.submit_job(
            ctx, LOCAL_ADMIN, "local", request_for(dataset, tmp_path / "out", "ci-build-8")
        )


async def test_a_retry_needs_no_provider_at_all(ctx: Context, tmp_path: Path) -> None:
    original = make_job(status=JobStatus.RUNNING)
    insert_job(ctx, LOCAL_ADMIN, original, "k", ())
    retry = await submission.submit_job(
        ctx, LOCAL_ADMIN, "no-such-provider", request_for(tmp_path / "gone", tmp_path, "k")
    )
    assert retry.idempotent_hit and retry.job_id == original.job_id
