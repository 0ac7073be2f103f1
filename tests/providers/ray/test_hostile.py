"""The ray provider against settings an admin should not be able to save and a cluster address
that answers garbage (a tiny stand-in HTTP server): clear refusals and provider errors, never
an exception our API would turn into a 500, never an answer buffered whole."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import ValidationError

from cloudtune.errors import ProviderError
from cloudtune.providers.base import ProviderHandle
from cloudtune.providers.ray import client as ray_client
from cloudtune.providers.ray.provider import RayProvider
from cloudtune.providers.ray.settings import RaySettings
from cloudtune.settings import Settings
from tests.factories import make_job
from tests.providers.ray.test_provider import SavedSettings, bundle_for

pytestmark = pytest.mark.ray


@pytest.mark.parametrize(
    "change",
    [
        {"price_per_hour_usd": float("inf")},
        {"price_per_hour_usd": float("nan")},
        {"entrypoint_memory_gib": float("nan")},
        {"address": "http://head:99999"},
        {"address": "http://head:80x"},
        {"address": "http://h\u00e9ad:8265"},
        {"address": "http://he ad:8265"},
        {"auth_header": "Host"},
        {"auth_header": "content-length"},
        {"auth_header": "Transfer-Encoding"},
        {"pip": ["torch; python_version > '3' --index-url=http://evil/"]},
        {"pip": ["torch --hash=sha256:00"]},
        {"cluster_data_roots": ["//"]},
    ],
)
def test_a_setting_that_would_break_later_calls_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RaySettings.model_validate(change)


def test_a_double_slash_root_is_the_folder_it_names() -> None:
    own = RaySettings(cluster_data_roots=["//mnt/data"])
    assert own.cluster_data_roots == ["/mnt/data"] and own.sees("/mnt/data/shapes")


@pytest.mark.parametrize(
    "path",
    ["/mnt/data/link/../shapes", "/mnt/data/a/..", "/mnt/data/../data/shapes"],
)
def test_a_path_that_climbs_is_never_the_nodes(path: str) -> None:
    """normpath says these are under the root; on a node, `..` climbs from where a link led."""
    assert RaySettings(cluster_data_roots=["/mnt/data"]).sees(path) is False


# -- a cluster address that answers garbage ------------------------------------------------


class Garbage(BaseHTTPRequestHandler):
    answer: tuple[int, bytes] = (200, b"{}")

    def log_message(self, *args: Any) -> None:
        pass

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, body = type(self).answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass  # the client stopped reading, as it should

    do_GET = do_POST = do_PUT = do_DELETE = _any


@pytest.fixture
def garbage() -> Iterator[tuple[str, type[Garbage]]]:
    handler = type("Answer", (Garbage,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def provider_at(address: str) -> RayProvider:
    own = RaySettings(entrypoint_num_gpus=0.0)
    return RayProvider(Settings(ray_address=address, ray_timeout_seconds=5), SavedSettings(own))


def handle() -> ProviderHandle:
    return ProviderHandle(ref=uuid.uuid4().hex)


async def test_times_no_clock_reads_are_unknown_not_a_failed_poll(
    garbage: tuple[str, type[Garbage]],
) -> None:
    address, answer = garbage
    answer.answer = (200, json.dumps({"status": "RUNNING", "start_time": 1e300}).encode())
    status = await provider_at(address).status(handle())
    assert status.status.value == "running" and status.started_at is None
    answer.answer = (200, json.dumps({"status": "FAILED", "end_time": 1e20}).encode())
    assert (await provider_at(address).status(handle())).status.value == "failed"


@pytest.mark.parametrize(
    "nodes",
    [
        {"data": [1]},
        {"data": {"result": {"result": [{"state": "ALIVE", "resources_total": [1]}]}}},
        {"data": {"result": {"result": {"x": 1}}}},
        {"data": {"result": {"result": [{"state": "ALIVE", "resources_total": {"GPU": "x"}}]}}},
    ],
)
async def test_validate_reads_odd_node_lists_as_no_nodes(
    garbage: tuple[str, type[Garbage]], nodes: dict[str, Any]
) -> None:
    address, answer = garbage
    answer.answer = (200, json.dumps({"ray_version": ["2"], **nodes}).encode())
    account = await provider_at(address).validate()
    assert account.ok and "0 GPU(s)" in account.detail


async def test_jobs_with_odd_metadata_are_not_ours(garbage: tuple[str, type[Garbage]]) -> None:
    address, answer = garbage
    job = make_job()
    listed = [
        {"submission_id": job.job_id, "metadata": "cloudtune_job_id"},
        {"submission_id": job.job_id, "metadata": None},
        {"submission_id": job.job_id},
        7,
    ]
    answer.answer = (200, json.dumps(listed).encode())
    assert await provider_at(address).discover([job.job_id]) == {}
    # A submit Ray calls taken, for a job whose metadata is not a mapping: not ours.
    answer.answer = (
        400,
        f"ValueError: Job with submission_id {job.job_id} already exists.".encode(),
    )
    provider = provider_at(address)

    async def taken(submission_id: str) -> dict[str, Any]:
        return {"status": "RUNNING", "metadata": "x"}

    async def exists(uri: str) -> bool:
        return True

    api = provider._api()
    api.job = taken  # type: ignore[method-assign]
    api.package_exists = exists  # type: ignore[method-assign]
    with pytest.raises(ProviderError, match="did not submit"):
        await provider.submit(job, bundle_for(job.job_id))


async def test_an_answer_too_large_is_refused_unread(
    garbage: tuple[str, type[Garbage]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ray_client, "MAX_ANSWER_BYTES", 4096)
    address, answer = garbage
    answer.answer = (200, b'{"status": "RUNNING", "logs": "' + b"a" * 100_000 + b'"}')
    provider = provider_at(address)
    with pytest.raises(ProviderError, match="over"):
        await provider.status(handle())
    # A log too large to read does not stop the job's status from being read.
    client = provider._api()

    async def running(submission_id: str) -> dict[str, Any]:
        return {"status": "RUNNING"}

    client.job = running  # type: ignore[method-assign]
    status = await provider.status(handle())
    assert status.status.value == "running" and "over 0 MiB" in (status.logs or "")
    account = await provider.validate()
    assert not account.ok and "over" in account.detail


class Silent(BaseHTTPRequestHandler):
    """Takes the request and never answers (a hung dashboard, a black-holing proxy)."""

    calls = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        type(self).calls += 1
        time.sleep(3)


async def test_a_hung_cluster_holds_each_poll_for_a_few_calls_not_the_whole_budget() -> None:
    handler: type[Silent] = type("Hung", (Silent,), {"calls": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        own = RaySettings(entrypoint_num_gpus=0.0)
        settings = Settings(
            ray_address=f"http://127.0.0.1:{server.server_address[1]}", ray_timeout_seconds=0.5
        )
        provider = RayProvider(settings, SavedSettings(own))
        started = time.monotonic()
        for _ in range(5):  # five jobs' polls in one reconciler pass
            with pytest.raises(ProviderError):
                await provider.status(handle())
        assert handler.calls <= ray_client.BREAKER_THRESHOLD + 1
        assert time.monotonic() - started < 15
        with pytest.raises(ProviderError, match="paused"):
            await provider.cancel(handle())
    finally:
        server.shutdown()
        server.server_close()


async def test_a_call_paused_by_its_own_failures_says_why_they_failed(
    garbage: tuple[str, type[Garbage]],
) -> None:
    address, answer = garbage
    answer.answer = (500, b"Traceback (most recent call last):\nRuntimeError: the GCS is down")
    with pytest.raises(ProviderError, match="the GCS is down"):
        await provider_at(address).status(handle())
