"""The ray provider against a real Ray head (tests/ray_cluster.py): a retried submit, discovery,
the refusals a submit gets before anything reaches the cluster, and the cluster's check."""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from cloudtune.domain.jobs import JobStatus
from cloudtune.domain.storage import JobStorageCredentials
from cloudtune.domain.training import TrainingSpec
from cloudtune.errors import InvalidInputError, ProviderError
from cloudtune.providers.base import JobBundle, ProviderHandle
from cloudtune.providers.ray.provider import RayProvider
from cloudtune.providers.ray.settings import RaySettings
from cloudtune.settings import Settings
from tests.factories import make_job

pytestmark = pytest.mark.ray


class SavedSettings:
    """What the server's settings store would hand the provider."""

    def __init__(self, settings: RaySettings, token: str | None = None) -> None:
        self.settings = settings
        self.saved_token = token

    def config(self, provider: str) -> BaseModel:
        return self.settings

    def token(self, provider: str) -> str | None:
        return self.saved_token


def make_provider(address: str | None, **overrides: Any) -> RayProvider:
    own = RaySettings(**{"entrypoint_num_gpus": 0.0, "entrypoint_num_cpus": 0.25, **overrides})
    return RayProvider(Settings(ray_address=address), SavedSettings(own))


def bundle_for(job_id: str, **config: Any) -> JobBundle:
    spec = TrainingSpec(
        config={"--model_family": "reference", "--max_train_steps": 1, **config},
        dataloader=[],
    )
    storage = JobStorageCredentials(
        access_key_id="CTAKTEST",
        secret_access_key="not-a-real-secret",
        bucket="outputs",
        prefix=f"{job_id}/",
        endpoint_url="http://127.0.0.1:9/api/cloud/storage",  # nothing listens: the job fails
        upload_token="t",
    )
    return JobBundle(
        spec=spec,
        webhook_url="http://127.0.0.1:9/webhook",
        webhook_token="token",
        storage=storage,
    )


def ray_jobs_with(address: str, submission_id: str) -> list[dict[str, Any]]:
    jobs = httpx.get(f"{address}/api/jobs/", timeout=30).json()
    return [job for job in jobs if job.get("submission_id") == submission_id]


async def test_a_retried_submit_starts_one_ray_job(ray_address: str) -> None:
    provider = make_provider(ray_address, python=sys.executable)
    job = make_job(provider="ray", job_id=uuid.uuid4().hex)
    first = await provider.submit(job, bundle_for(job.job_id))
    # The answer to the first was "lost": the same submit again.
    second = await provider.submit(job, bundle_for(job.job_id))
    try:
        assert first.ref == second.ref == job.job_id
        assert len(ray_jobs_with(ray_address, job.job_id)) == 1
        found = await provider.discover([job.job_id, uuid.uuid4().hex])
        assert set(found) == {job.job_id}
        status = await provider.status(first)
        assert status.status in {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED}
    finally:
        await provider.cancel(first)


async def test_a_submit_under_another_jobs_id_is_refused(ray_address: str) -> None:
    """A Ray job with our id that we did not submit (no cloudtune metadata) is not adopted."""
    job_id = uuid.uuid4().hex
    response = httpx.post(
        f"{ray_address}/api/jobs/",
        json={"entrypoint": "sleep 30", "submission_id": job_id},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    provider = make_provider(ray_address, python=sys.executable)
    try:
        with pytest.raises(ProviderError, match="did not submit"):
            await provider.submit(make_job(provider="ray", job_id=job_id), bundle_for(job_id))
        assert await provider.discover([job_id]) == {}
    finally:
        httpx.post(f"{ray_address}/api/jobs/{job_id}/stop", timeout=30)


async def test_an_unknown_job_reads_as_failed_and_cancels_quietly(ray_address: str) -> None:
    provider = make_provider(ray_address)
    assert await provider.discover([]) == {}
    gone = ProviderHandle(ref=uuid.uuid4().hex)
    status = await provider.status(gone)
    assert status.status == JobStatus.FAILED
    assert status.error_message is not None and "no longer knows" in status.error_message
    await provider.cancel(gone)  # idempotent: nothing to stop is no error


async def test_validate_reports_the_cluster(ray_address: str) -> None:
    account = await make_provider(ray_address).validate()
    assert account.ok, account.detail
    assert account.detail.startswith("Ray 2.") and "4 CPU(s)" in account.detail
    wanting = await make_provider(ray_address, entrypoint_num_gpus=1.0).validate()
    assert "more than the cluster has now" in wanting.detail


async def test_validate_says_when_the_cluster_does_not_answer() -> None:
    account = await make_provider("http://127.0.0.1:9").validate()
    assert not account.ok and "did not answer" in account.detail
    unset = await make_provider(None).validate()
    assert not unset.ok and "CLOUDTUNE_RAY_ADDRESS" in unset.detail


def test_a_submit_is_refused_before_the_cluster_is_asked() -> None:
    spec = TrainingSpec(config={"--model_family": "reference"}, dataloader=[])
    with pytest.raises(InvalidInputError) as unset:
        make_provider(None).check(spec)
    assert unset.value.code == "provider_not_configured"
    provider = make_provider("http://127.0.0.1:9")
    with pytest.raises(InvalidInputError, match="secrets"):
        provider.check(
            TrainingSpec(config={"--model_family": "flux", "--hub_token": "hf_x"}, dataloader=[])
        )
    with pytest.raises(InvalidInputError, match="model_family"):
        provider.check(TrainingSpec(config={}, dataloader=[]))
    with pytest.raises(InvalidInputError) as profile:
        provider.offer("h100")
    assert profile.value.code == "invalid_hardware_profile"


async def test_a_cluster_that_stops_answering_is_a_provider_error() -> None:
    provider = make_provider("http://127.0.0.1:9")
    with pytest.raises(ProviderError):
        await asyncio.wait_for(provider.status(ProviderHandle(ref=uuid.uuid4().hex)), 120)
