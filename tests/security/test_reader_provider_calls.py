"""Finding 7: readers must not drive provider calls. A key holding only `job.view.own` follows a
Replicate job with many log streams and many `sync_active` lists; the fake Replicate counts what
reaches it, and another user's failing job never shows its provider error to this reader."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cloudtune.domain.jobs import JobStatus, JobType, utcnow
from cloudtune.settings import Settings
from tests.api.routes.test_auth import add_user, bearer, setup_admin
from tests.factories import create_job
from tests.fakes.replicate import FakeReplicate, running_fake, settings_for

STREAMS = 20
LISTS = 50
INTERVAL = 0.2  # the reconcile interval of these tests
OTHERS_ERROR = "prediction store unavailable for olga-private-run"


@pytest.fixture
def fake() -> Iterator[FakeReplicate]:
    with running_fake(start_after=0.3, run_for=3.0) as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, database_url: str, fake: FakeReplicate) -> Settings:
    return settings_for(fake, tmp_path / "home", database_url, reconcile_interval_seconds=INTERVAL)


async def remote_job(client: httpx.AsyncClient, fake: FakeReplicate, user_id: str) -> str:
    """A queued Replicate job of `user_id`, its prediction created at the fake directly (this
    test is about reading a job, not about submitting one); returns the job id."""
    job_id = uuid.uuid4().hex
    async with httpx.AsyncClient() as http:
        created = await http.post(
            f"{fake.base_url}/predictions",
            json={"version": "simpletuner/trainer:abc", "input": {"cloudtune_job_id": job_id}},
            headers={"Authorization": f"Bearer {fake.token}"},
        )
    assert created.status_code == 201, created.text
    create_job(
        client.app.state.ctx.db,  # type: ignore[attr-defined]
        job_id=job_id,
        user_id=user_id,
        provider="replicate",
        job_type=JobType.CLOUD,
        status=JobStatus.QUEUED,
        queued_at=utcnow(),
        provider_ref=created.json()["id"],
    )
    return job_id


async def user_id(client: httpx.AsyncClient, token: str) -> str:
    return str((await client.get("/api/auth/me", headers=bearer(token))).json()["id"])


async def test_many_readers_cost_the_provider_what_the_schedule_allows(
    client: httpx.AsyncClient, fake: FakeReplicate, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await setup_admin(client)
    alice = await add_user(client, admin, "alice", "researcher")
    olga = await add_user(client, admin, "olga", "researcher")
    created = await client.post(
        "/api/cloud/auth/api-keys",
        json={"name": "reader", "scoped_permissions": ["job.view.own"]},
        headers=bearer(alice),
    )
    assert created.status_code == 200, created.text
    reader = {"X-API-Key": created.json()["key"]}

    # Olga's job fails at the provider on every call, with a detail that is hers.
    olgas = await remote_job(client, fake, await user_id(client, olga))
    olgas_prediction = fake.predictions_for(olgas)[0].id
    fake.fail_paths[f"/v1/predictions/{olgas_prediction}"] = (400, OTHERS_ERROR)

    reconciler = client.app.state.reconciler  # type: ignore[attr-defined]
    passes_before = reconciler.passes_done
    job_id = await remote_job(client, fake, await user_id(client, alice))
    prediction = fake.predictions_for(job_id)[0].id

    async def follow() -> list[str]:
        lines = []
        path = f"/api/cloud/jobs/{job_id}/logs/stream"
        async with client.stream("GET", path, headers=reader, timeout=60) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                lines.append(line)
        return lines

    async def list_with_sync() -> list[httpx.Response]:
        answers = []
        for _ in range(LISTS // 10):  # rounds of ten at once while the job runs
            answers += await asyncio.gather(
                *(client.get("/api/cloud/jobs?sync_active=1", headers=reader) for _ in range(10))
            )
            await asyncio.sleep(0.3)
        return answers

    *streams, answers = await asyncio.gather(*(follow() for _ in range(STREAMS)), list_with_sync())
    passes = reconciler.passes_done - passes_before + 1  # the pass under way may ask once more

    for lines in streams:
        assert "event: done" in lines and "data: completed" in lines, lines[-5:]
        assert "data: 100%|##########| 100/100 [00:01<00:01, 10it/s]" in lines
        assert "data: training complete" in lines
    assert len(answers) == LISTS
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert OTHERS_ERROR not in answer.text
        assert {job["job_id"] for job in answer.json()["jobs"]} == {job_id}

    # Readers only mark jobs for the reconciler's next pass, which asks the provider at most
    # once per job (how often passes may ask is the schedule's floor, tested on an injected
    # clock in tests/services/test_reconciler.py). The readers alone would have made hundreds
    # of reads: a stream polls every 0.25 s, and every list asks for a sync.
    reads = fake.reads_of(prediction)
    assert 0 < reads <= passes, f"{reads} reads of the prediction in {passes} passes"
    assert reads < STREAMS + LISTS
    print(f"{reads} prediction reads in {passes} passes")

    # The stored log is served without asking the provider again.
    logs = await client.get(f"/api/cloud/jobs/{job_id}/logs?tail=1", headers=reader)
    assert logs.json()["logs"] == "training complete\n"
    assert fake.reads_of(prediction) == reads

    # Olga's job: polled on its own backed-off schedule, its error logged, never shown to
    # this reader (404 as an unknown job, not 502 with her provider's words).
    assert fake.reads_of(olgas_prediction) <= passes
    assert OTHERS_ERROR in caplog.text or "did not answer" in caplog.text
    hidden = await client.get(f"/api/cloud/jobs/{olgas}", headers=reader)
    assert hidden.status_code == 404 and OTHERS_ERROR not in hidden.text
    listing = await client.get("/api/cloud/jobs?sync_active=1&provider=replicate", headers=reader)
    assert listing.status_code == 200 and OTHERS_ERROR not in listing.text
