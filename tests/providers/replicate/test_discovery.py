"""Lost creates, against the fake Replicate: a create whose answer is lost is looked up by its
job id tag before anything is sent again, and `POST /api/cloud/jobs/sync` adopts predictions of
ours that a job lost track of (a crash between Replicate's create and our write)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudtune.domain.jobs import Job, JobStatus, JobType
from cloudtune.providers.replicate.client import IncompleteListingError, ReplicateClient
from cloudtune.providers.replicate.lookup import DISCOVERY_PAGES, LOOKUP_PAGES
from cloudtune.providers.replicate.predictions import JOB_TAG, tagged_job_id
from cloudtune.settings import Settings
from tests.conftest import TERMINAL
from tests.factories import create_job, job_body, make_dataset
from tests.fakes.replicate import FakeReplicate, running_fake, settings_for

CREATE = "POST /v1/predictions"
LIST = "GET /v1/predictions"


@pytest.fixture
def fake() -> Iterator[FakeReplicate]:
    with running_fake(run_for=0.3) as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, database_url: str, fake: FakeReplicate) -> Settings:
    return settings_for(fake, tmp_path / "home", database_url, replicate_timeout_seconds=1.0)


@pytest.fixture
def body(tmp_path: Path) -> dict[str, Any]:
    spec = job_body(make_dataset(tmp_path / "dataset", 2, size=16), tmp_path / "out", steps=2)
    spec["config"]["--model_family"] = "flux"
    return spec


async def job_of(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/cloud/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()["job"]  # type: ignore[no-any-return]


async def wait_terminal(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while (job := await job_of(client, job_id))["status"] not in TERMINAL:
        assert time.monotonic() < deadline, f"job still {job['status']}"
        await asyncio.sleep(0.1)
    return job


def test_the_tag_is_read_from_the_trainer_callback_config() -> None:
    tagged = {"input": {"webhook_config": json.dumps([{"x": 1}, {JOB_TAG: "j1"}])}}
    assert tagged_job_id(tagged) == "j1"
    for untagged in (
        {},
        {"input": None},
        {"input": "text"},
        {"input": {"webhook_config": "{not json"}},
        {"input": {"webhook_config": json.dumps({JOB_TAG: "j1"})}},  # not a list
        {"input": {"webhook_config": json.dumps([{JOB_TAG: 7}])}},
        {"input": {"config_json": json.dumps({JOB_TAG: "j1"})}},  # elsewhere in the input
    ):
        assert tagged_job_id(untagged) is None


class TestLostCreateAnswer:
    @pytest.mark.parametrize("how", ["error after the create", "answer after the timeout"])
    async def test_the_prediction_is_adopted_and_one_create_reaches_replicate(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any], how: str
    ) -> None:
        fake.lose_create_answers = 1
        if how == "answer after the timeout":
            fake.lost_answer_delay = 2.0  # over the client's 1 s timeout
        response = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
        assert response.status_code == 200, response.text
        job_id = response.json()["job_id"]
        assert fake.calls[CREATE] == 1 and fake.create_calls == 1
        assert fake.calls[LIST] >= 1  # looked up before anything was sent again
        (prediction,) = fake.predictions_for(job_id)
        job = await job_of(client, job_id)
        assert job["metadata"]["prediction_id"] == prediction.id
        assert (await wait_terminal(client, job_id))["status"] == "completed"
        assert fake.calls[CREATE] == 1

    async def test_a_create_that_was_not_applied_is_sent_again(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
    ) -> None:
        fake.refuse_creates = 1  # answers 500 before making anything
        response = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
        assert response.status_code == 200, response.text
        job_id = response.json()["job_id"]
        assert fake.calls[CREATE] == 2 and fake.create_calls == 1
        assert len(fake.predictions_for(job_id)) == 1

    async def test_no_lookup_no_second_create(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
    ) -> None:
        """When Replicate cannot say whether the create was applied, the submit fails rather
        than risk a second run."""
        fake.fail_paths["/v1/predictions"] = (503, "Service unavailable")  # create and list
        response = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
        assert response.status_code == 502, response.text
        answer = response.json()
        assert answer["code"] == "provider_create_unconfirmed"
        assert "looking it up failed" in answer["detail"]  # the lookup is what failed
        assert fake.calls[CREATE] == 1
        # It may be running at the provider: kept active for sync and the lost-job check to
        # settle, never failed on the spot.
        assert (await job_of(client, answer["job_id"]))["status"] in ("pending", "uploading")
        del fake.fail_paths["/v1/predictions"]
        synced = await client.post("/api/cloud/jobs/sync", json={"provider": "replicate"})
        assert synced.status_code == 200 and synced.json()["discovered"] == 0, synced.text
        assert (await job_of(client, answer["job_id"]))["status"] in ("pending", "uploading")


def lost_job(client: httpx.AsyncClient, **overrides: Any) -> Job:
    """A job as a crash between Replicate's create and our write leaves it."""
    values: dict[str, Any] = {
        "provider": "replicate",
        "job_type": JobType.CLOUD,
        "status": JobStatus.PENDING,
        **overrides,
    }
    return create_job(client.app.state.ctx.db, **values)  # type: ignore[attr-defined]


async def create_tagged(fake: FakeReplicate, job_id: str) -> str:
    """The prediction the lost job's create made, tagged as the provider tags it."""
    api = ReplicateClient(fake.base_url, fake.token)
    try:
        prediction = await api.create_prediction(
            {
                "version": "simpletuner/advanced-trainer-h100:" + "a" * 64,
                "input": {"webhook_config": json.dumps([{JOB_TAG: job_id}])},
            }
        )
    finally:
        await api.aclose()
    return str(prediction["id"])


class TestSyncDiscovers:
    async def test_a_lost_job_is_found_adopted_and_followed(
        self, client: httpx.AsyncClient, fake: FakeReplicate
    ) -> None:
        lost = lost_job(client)
        never_created = lost_job(client)
        too_old = lost_job(client)
        local = lost_job(client, provider="local", job_type=JobType.LOCAL)
        prediction_id = await create_tagged(fake, lost.job_id)
        old_id = await create_tagged(fake, too_old.job_id)
        # Past an hour Replicate has removed the input (and our tag): not asked for.
        fake.predictions[old_id].created_at = (
            (datetime.now(UTC) - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
        )
        for i in range(5):  # someone else's predictions on the same account
            await create_tagged(fake, f"not-ours-{i}")
        fake.page_size = 2  # the list is followed page by page

        synced = await client.post("/api/cloud/jobs/sync", json={"provider": "replicate"})
        assert synced.status_code == 200, synced.text
        assert synced.json()["discovered"] == 1

        job = await job_of(client, lost.job_id)
        assert job["status"] != "pending"
        assert job["metadata"]["prediction_id"] == prediction_id
        assert job["metadata"]["hardware_profile"] == "h100"
        assert (await wait_terminal(client, lost.job_id))["status"] == "completed"
        for other in (never_created, too_old, local):
            assert (await job_of(client, other.job_id))["status"] == "pending"

        again = await client.post("/api/cloud/jobs/sync", json={"provider": "replicate"})
        assert again.json()["discovered"] == 0
        assert fake.create_calls == 7  # discovery sends nothing

    async def test_a_sync_of_every_provider_discovers_too_and_says_when_replicate_is_down(
        self, client: httpx.AsyncClient, fake: FakeReplicate
    ) -> None:
        lost = lost_job(client)
        await create_tagged(fake, lost.job_id)
        fake.fail_paths["/v1/predictions"] = (503, "Service unavailable")
        down = await client.post("/api/cloud/jobs/sync", json={})
        assert down.status_code in (502, 503), down.text
        del fake.fail_paths["/v1/predictions"]
        synced = (await client.post("/api/cloud/jobs/sync", json={})).json()
        assert synced["discovered"] == 1


class TestOrphans:
    """The reconciler settles jobs lost 15 minutes ago or more on its own, without a sync."""

    async def test_found_ones_are_adopted_the_rest_failed_and_recent_ones_left(
        self, client: httpx.AsyncClient, fake: FakeReplicate
    ) -> None:
        long_ago = datetime.now(UTC) - timedelta(minutes=20)
        running = lost_job(client, created_at=long_ago)
        vanished = lost_job(client, created_at=long_ago)
        recent = lost_job(client)
        prediction_id = await create_tagged(fake, running.job_id)

        assert (await wait_terminal(client, vanished.job_id))["status"] == "failed"
        job = await wait_terminal(client, running.job_id)
        assert job["status"] == "completed"
        assert job["metadata"]["prediction_id"] == prediction_id
        assert (await job_of(client, recent.job_id))["status"] == "pending"

    async def test_while_replicate_cannot_be_asked_nothing_is_failed(
        self, client: httpx.AsyncClient, fake: FakeReplicate
    ) -> None:
        fake.fail_paths["/v1/predictions"] = (503, "Service unavailable")
        lost = lost_job(client, created_at=datetime.now(UTC) - timedelta(minutes=20))
        deadline = time.monotonic() + 30
        while fake.calls[LIST] < 2:  # two passes asked, and failed
            assert time.monotonic() < deadline, "the reconciler never looked"
            await asyncio.sleep(0.05)
        assert (await job_of(client, lost.job_id))["status"] == "pending"
        del fake.fail_paths["/v1/predictions"]
        assert (await wait_terminal(client, lost.job_id))["status"] == "failed"


async def crowd(fake: FakeReplicate, count: int) -> None:
    """Someone else's predictions on the same account, newer than any made before."""
    for i in range(count):
        await create_tagged(fake, f"not-ours-{i}")


class TestCutOffList:
    """A list of predictions that ends before its last page cannot say a prediction does not
    exist: a lost create is not sent again, and a lost job is not failed."""

    async def read(self, fake: FakeReplicate, max_pages: int) -> list[dict[str, Any]]:
        api = ReplicateClient(fake.base_url, fake.token)
        seen: list[dict[str, Any]] = []
        try:
            async for prediction in api.predictions(max_pages=max_pages):
                seen.append(prediction)
        finally:
            await api.aclose()
        return seen

    async def test_the_client_says_when_pages_are_left_unread(self, fake: FakeReplicate) -> None:
        await crowd(fake, 4)
        fake.page_size = 2
        assert len(await self.read(fake, max_pages=2)) == 4  # two whole pages: nothing left
        await crowd(fake, 1)
        with pytest.raises(IncompleteListingError, match="more than 2 pages"):
            await self.read(fake, max_pages=2)

    async def test_the_client_does_not_follow_a_cursor_to_another_host(
        self, fake: FakeReplicate
    ) -> None:
        await crowd(fake, 3)
        fake.page_size = 2
        fake.next_page_base = "http://127.0.0.2:9/v1"
        with pytest.raises(IncompleteListingError, match="another host"):
            await self.read(fake, max_pages=5)
        assert fake.calls[LIST] == 1

    @pytest.mark.parametrize("cut_by", ["the page limit", "a cursor to another host"])
    async def test_a_refused_create_is_not_sent_again_when_the_list_is_cut_off(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any], cut_by: str
    ) -> None:
        await crowd(fake, 2 * LOOKUP_PAGES + 1)
        fake.page_size = 2
        if cut_by == "a cursor to another host":
            fake.next_page_base = "http://127.0.0.2:9/v1"
        fake.refuse_creates = 1  # answers 500 before making anything: nothing to find
        sent, made = fake.calls[CREATE], fake.create_calls
        response = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
        assert response.status_code == 502, response.text
        answer = response.json()
        assert answer["code"] == "provider_create_unconfirmed"
        assert "could not confirm whether Replicate created the prediction" in answer["detail"]
        assert fake.calls[CREATE] - sent == 1 and fake.create_calls == made
        assert fake.calls[LIST] >= 1
        # It may be running at the provider: kept active for sync and the lost-job check to
        # settle, never failed on the spot.
        job = await job_of(client, answer["job_id"])
        assert job["status"] in ("pending", "uploading") and job["error_message"] is None

    async def test_a_lost_create_found_on_the_pages_read_is_adopted(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
    ) -> None:
        await crowd(fake, 2 * LOOKUP_PAGES + 1)
        fake.page_size = 2
        fake.lose_create_answers = 1  # made, then answers 500; the newest, so on page one
        sent = fake.calls[CREATE]
        response = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
        assert response.status_code == 200, response.text
        (prediction,) = fake.predictions_for(response.json()["job_id"])
        job = await job_of(client, response.json()["job_id"])
        assert job["metadata"]["prediction_id"] == prediction.id
        assert fake.calls[CREATE] - sent == 1

    async def test_a_sync_says_it_could_not_tell(
        self, client: httpx.AsyncClient, fake: FakeReplicate
    ) -> None:
        lost = lost_job(client)
        await create_tagged(fake, lost.job_id)
        await crowd(fake, 2)
        fake.page_size = 1
        fake.next_page_base = "http://127.0.0.2:9/v1"
        synced = await client.post("/api/cloud/jobs/sync", json={"provider": "replicate"})
        assert synced.status_code == 502, synced.text
        assert synced.json()["code"] == "provider_listing_incomplete"
        assert (await job_of(client, lost.job_id))["status"] == "pending"

    async def test_an_orphan_beyond_the_pages_read_is_not_failed(
        self, client: httpx.AsyncClient, fake: FakeReplicate
    ) -> None:
        job_id = uuid.uuid4().hex
        prediction_id = await create_tagged(fake, job_id)
        await crowd(fake, DISCOVERY_PAGES)  # newer: they fill every page read
        fake.page_size = 1
        # Written last: no pass may see the job before its prediction is out of reach.
        orphan = lost_job(
            client, job_id=job_id, created_at=datetime.now(UTC) - timedelta(minutes=20)
        )
        deadline = time.monotonic() + 30
        while fake.calls[LIST] < 2 * DISCOVERY_PAGES:  # two passes read the list, cut off
            assert time.monotonic() < deadline, "the reconciler never looked"
            await asyncio.sleep(0.05)
        assert (await job_of(client, orphan.job_id))["status"] == "pending"
        fake.page_size = 100
        job = await wait_terminal(client, orphan.job_id)
        assert job["status"] == "completed"
        assert job["metadata"]["prediction_id"] == prediction_id
