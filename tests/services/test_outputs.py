"""Bringing outputs home across replicas: names that stay in the folder, one replica at a time,
a dead replica's claim taken over, a clean stop handing its claim back; on both databases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cloudtune.domain.deliveries import DeliveryStatus
from cloudtune.domain.jobs import Job, JobStatus, JobType, utcnow
from cloudtune.errors import ProviderError
from cloudtune.providers.base import FetchedFile, ProviderStatus
from cloudtune.providers.registry import ProviderRegistry
from cloudtune.services.context import Context
from cloudtune.services.outputs import homecoming, worker
from cloudtune.services.outputs.names import file_name, file_names, inside
from cloudtune.services.provider_status import apply_provider_status
from cloudtune.services.tokens import TokenSigner
from cloudtune.settings import Settings
from cloudtune.store import deliveries
from cloudtune.store import jobs as job_store
from cloudtune.store.db import Database


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://h/a/weights.safetensors", "weights.safetensors"),
        ("https://h/a/..%2F..%2Fetc%2Fpasswd", "passwd"),
        ("https://h/a/%2E%2E", "output-1"),
        ("https://h/a/..", "output-1"),
        ("https://h/", "output-1"),
        ("https://h/a/x%00y.bin", "x_y.bin"),
        ("https://h/a/.hidden", "hidden"),
        ("https://h/a/a%5C..%5Cb", "a_.._b"),
    ],
)
def test_names_from_links_are_one_plain_file_name(url: str, name: str) -> None:
    assert file_name(url, 0) == name
    assert inside(Path("/out/job"), name).parent == Path("/out/job")


def test_names_are_made_distinct_and_bounded() -> None:
    names = file_names(["https://h/1/a.bin", "https://h/2/a.bin", "https://h/3/A.bin"])
    assert names == ["a.bin", "a-2.bin", "A-3.bin"]
    long = file_name("https://h/" + "x" * 500 + ".safetensors", 0)
    assert len(long) <= 150 and long.endswith(".safetensors")
    with pytest.raises(ValueError):
        inside(Path("/out/job"), "..")


class FakeFetcher:
    """A provider with expiring output links, whose fetch writes known bytes."""

    name = "fetching"
    job_type = "cloud"
    poll_with_backoff = True

    def __init__(self) -> None:
        self.fetched: list[str] = []
        self.failing: set[str] = set()

    def output_urls(self, outputs: Sequence[Any]) -> list[str]:
        return [o for o in outputs if isinstance(o, str)]

    def may_fetch(self, url: str) -> bool:
        return url.startswith("https://files.example/")

    async def fetch_output(
        self, url: str, dest: Path, *, heartbeat: Callable[[], Awaitable[None]]
    ) -> FetchedFile:
        await heartbeat()
        if url in self.failing:
            raise ProviderError(f"{url}: HTTP 503", provider=self.name)
        self.fetched.append(url)
        dest.write_bytes(url.encode())
        return FetchedFile(size=len(url.encode()), sha256="x")


@pytest.fixture
def fetcher() -> FakeFetcher:
    return FakeFetcher()


@pytest.fixture
def ctx(tmp_path: Path, db: Database, fetcher: FakeFetcher) -> Iterator[Context]:
    settings = Settings(home=tmp_path / "home")
    registry = ProviderRegistry(settings, names=[])
    registry._providers["fetching"] = fetcher  # type: ignore[assignment]
    yield Context(settings=settings, db=db, providers=registry, tokens=TokenSigner(b"k" * 32))


def running_job(ctx: Context) -> Job:
    job = Job(
        job_id="job-1",
        job_type=JobType.CLOUD,
        provider="fetching",
        status=JobStatus.PENDING,
        created_at=utcnow(),
        provider_ref="p-1",
    )
    with ctx.db.write() as session:
        job_store.insert_job(session, job)
        job_store.switch_job_status(session, job.job_id, JobStatus.RUNNING)
    return load(ctx)


def load(ctx: Context) -> Job:
    with ctx.db.read() as session:
        job = job_store.get_job(session, "job-1")
    assert job is not None
    return job


LINKS = ["https://files.example/a/w.bin", "https://files.example/a/s.png"]
SUCCESS = ProviderStatus(status=JobStatus.COMPLETED, outputs=LINKS)


async def test_a_success_plans_once_and_the_job_waits_running(ctx: Context) -> None:
    job = running_job(ctx)
    assert apply_provider_status(ctx, job, SUCCESS) is True
    job = load(ctx)
    assert job.status == JobStatus.RUNNING and job.output_url
    assert Path(job.output_url).parts[-2:] == ("local", "job-1")
    # Told again (a webhook and a poll): nothing new, no second plan.
    assert apply_provider_status(ctx, job, SUCCESS) is False
    with ctx.db.read() as session:
        (planned,) = deliveries.deliveries_of(session, "job-1")
    assert planned.status == DeliveryStatus.PENDING and planned.settings["urls"] == LINKS


async def test_two_replicas_never_take_the_same_delivery(
    ctx: Context, fetcher: FakeFetcher
) -> None:
    apply_provider_status(ctx, running_job(ctx), SUCCESS)
    one, two = worker.OutputsWorker(ctx), worker.OutputsWorker(ctx)
    assert await one.run_pass() == 1
    assert await two.run_pass() == 0
    await one.idle()
    job = load(ctx)
    assert job.status == JobStatus.COMPLETED and fetcher.fetched == LINKS
    assert [Path(p).name for p in job.outputs] == ["w.bin", "s.png"]
    assert "delivery_error" not in job.metadata


async def test_a_dead_replicas_claim_runs_out_and_another_takes_it(
    ctx: Context, fetcher: FakeFetcher
) -> None:
    apply_provider_status(ctx, running_job(ctx), SUCCESS)
    with ctx.db.write() as session:  # a replica claimed it, then died
        (taken,) = deliveries.take(
            session, [homecoming.KIND], now=ctx.clock(), claim_for=worker.CLAIM
        )
    survivor = worker.OutputsWorker(ctx)
    assert await survivor.run_pass() == 0  # the claim still stands
    later = ctx.clock() + worker.CLAIM + timedelta(seconds=1)
    ctx.clock = lambda: later
    assert await survivor.run_pass() == 1
    await survivor.idle()
    with ctx.db.read() as session:
        done = deliveries.get_delivery(session, "job-1", homecoming.KIND)
    assert done is not None and done.status == DeliveryStatus.DONE and done.attempts == 2
    assert load(ctx).status == JobStatus.COMPLETED


async def test_a_failure_completes_the_job_with_the_error_and_a_retry_keeps_what_came(
    ctx: Context, fetcher: FakeFetcher
) -> None:
    from cloudtune.domain.principal import LOCAL_ADMIN

    fetcher.failing = {LINKS[1]}
    apply_provider_status(ctx, running_job(ctx), SUCCESS)
    one = worker.OutputsWorker(ctx)
    await one.run_pass()
    await one.idle()
    job = load(ctx)
    assert job.status == JobStatus.COMPLETED
    assert "s.png" in job.metadata["delivery_error"] and "503" in job.metadata["delivery_error"]
    fetcher.failing = set()
    homecoming.retry(ctx, LOCAL_ADMIN, job)
    assert "delivery_error" not in load(ctx).metadata
    await one.run_pass()
    await one.idle()
    assert fetcher.fetched == LINKS  # w.bin was home already: not fetched again
    assert "delivery_error" not in load(ctx).metadata


async def test_links_off_the_file_host_are_never_fetched(
    ctx: Context, fetcher: FakeFetcher
) -> None:
    odd = ProviderStatus(status=JobStatus.COMPLETED, outputs=["http://169.254.169.254/x"])
    apply_provider_status(ctx, running_job(ctx), odd)
    one = worker.OutputsWorker(ctx)
    await one.run_pass()
    await one.idle()
    job = load(ctx)
    assert fetcher.fetched == [] and job.status == JobStatus.COMPLETED
    assert "not on the provider's file host" in job.metadata["delivery_error"]


async def test_a_stop_hands_the_claim_back(ctx: Context, fetcher: FakeFetcher) -> None:
    import asyncio

    gate = asyncio.Event()

    async def slow(
        url: str, dest: Path, *, heartbeat: Callable[[], Awaitable[None]]
    ) -> FetchedFile:
        await gate.wait()
        raise AssertionError("never reached")

    fetcher.fetch_output = slow  # type: ignore[method-assign]
    apply_provider_status(ctx, running_job(ctx), SUCCESS)
    one = worker.OutputsWorker(ctx)
    assert await one.run_pass() == 1
    await asyncio.sleep(0)  # let the download start
    await one.stop()
    with ctx.db.read() as session:
        back = deliveries.get_delivery(session, "job-1", homecoming.KIND)
    assert back is not None and back.status == DeliveryStatus.PENDING
    assert load(ctx).status == JobStatus.RUNNING


async def test_a_delivery_whose_tries_keep_dying_is_given_up_visibly(
    ctx: Context, fetcher: FakeFetcher
) -> None:
    apply_provider_status(ctx, running_job(ctx), SUCCESS)
    now = ctx.clock()
    for n in range(homecoming.MAX_CLAIMS):  # replicas that each died mid-way
        at = now + n * (worker.CLAIM + timedelta(seconds=1))
        with ctx.db.write() as session:
            assert deliveries.take(session, [homecoming.KIND], now=at, claim_for=worker.CLAIM)
    later = now + homecoming.MAX_CLAIMS * (worker.CLAIM + timedelta(seconds=1))
    ctx.clock = lambda: later
    one = worker.OutputsWorker(ctx)
    assert await one.run_pass() == 1
    await one.idle()
    job = load(ctx)
    assert fetcher.fetched == [] and job.status == JobStatus.COMPLETED
    assert "given up after 5 tries" in job.metadata["delivery_error"]


async def test_a_job_waiting_for_its_outputs_is_not_cancelled_by_its_cost_cap(
    ctx: Context,
) -> None:
    from cloudtune.services.reconciler import Reconciler

    running_job(ctx)
    with ctx.db.write() as session:  # its final cost reached its cap
        job_store.update_job_fields(session, "job-1", max_cost_micros=100, cost_micros=150)
    apply_provider_status(ctx, load(ctx), SUCCESS)
    assert await Reconciler(ctx)._enforce_cost_caps([load(ctx)]) == 0
    assert load(ctx).status == JobStatus.RUNNING


async def test_a_success_listing_no_files_completes_with_the_reason(ctx: Context) -> None:
    removed = ProviderStatus(status=JobStatus.COMPLETED, outputs=None)
    apply_provider_status(ctx, running_job(ctx), removed)
    assert load(ctx).status == JobStatus.RUNNING
    one = worker.OutputsWorker(ctx)
    await one.run_pass()
    await one.idle()
    job = load(ctx)
    assert job.status == JobStatus.COMPLETED and job.outputs == []
    assert "listed no output files" in job.metadata["delivery_error"]
