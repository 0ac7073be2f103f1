"""Finding: the unauthenticated Replicate webhook buffered up to 32 MiB per request before any
check, and then copied it: 8 concurrent anonymous chunked 32 MiB bodies took a server from
122 MB to 613 MB. Now its limit is 8 MiB, a body is read only once its signature headers pass
(present, timestamp within ±5 minutes, `webhook-id` not seen), into one buffer that is neither
copied nor decoded before the HMAC and the parse.

A real `cloudtune server` process with a Replicate token, pointed at the fake Replicate (for
the signing secret), takes each wave of 8 concurrent anonymous 32 MiB chunked bodies; its peak
resident size (VmHWM) is measured around each wave."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from cloudtune.api.limits import REPLICATE_WEBHOOK_MAX_BYTES
from tests.e2e.test_server import ServerProcess
from tests.fakes.replicate import FakeReplicate, running_fake
from tests.security.test_body_limits import (
    REPLICATE,
    MiB,
    RawResponse,
    assert_refused,
    peak_rss,
    post_raw,
    reset_peak_rss,
    zeros,
)

CONCURRENT = 8
BODY = 32 * MiB  # what the probe sent: at the old limit, 4 times the new one


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def fake() -> Iterator[FakeReplicate]:
    with running_fake() as server:
        yield server


@pytest.fixture
def server(
    tmp_path: Path, database_url: str, fake: FakeReplicate, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServerProcess]:
    monkeypatch.setenv("CLOUDTUNE_REPLICATE_BASE_URL", fake.base_url)
    monkeypatch.setenv("CLOUDTUNE_REPLICATE_OUTPUT_HOSTS", fake.file_origin)
    monkeypatch.setenv("REPLICATE_API_TOKEN", fake.token)
    process = ServerProcess(tmp_path / "home", database_url)
    process.start()
    yield process
    process.stop()


def forged(msg_id: str) -> dict[str, str]:
    """Signature headers of the right form and age, with a signature nobody made."""
    signature = base64.b64encode(secrets.token_bytes(32)).decode()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": f"v1,{signature}",
    }


def wave(port: int, size: int, headers: Callable[[int], dict[str, str]]) -> list[RawResponse]:
    """`CONCURRENT` chunked bodies of `size` bytes at once."""
    with ThreadPoolExecutor(CONCURRENT) as pool:
        futures = [
            pool.submit(
                post_raw, port, REPLICATE, zeros(size), content_length=None, headers=headers(i)
            )
            for i in range(CONCURRENT)
        ]
        return [f.result() for f in futures]


@pytest.mark.e2e
def test_anonymous_webhook_bodies_keep_memory_bounded(
    server: ServerProcess, fake: FakeReplicate, capsys: pytest.CaptureFixture[str]
) -> None:
    assert server.process is not None
    process = psutil.Process(server.process.pid)
    limit = REPLICATE_WEBHOOK_MAX_BYTES
    # Warm up the route's code, and the secret cache: one small body of each kind.
    assert_refused(
        post_raw(server.port, REPLICATE, iter([b"{}"]), content_length=2), 401, "invalid_signature"
    )
    small = post_raw(server.port, REPLICATE, iter([b"{}"]), content_length=2, headers=forged("w"))
    assert small.status == 401, small.body[:300]
    assert fake.calls["GET /v1/webhooks/default/secret"] == 1

    figures = []

    def measure(
        name: str, size: int, headers: Callable[[int], dict[str, str]]
    ) -> tuple[list[RawResponse], int]:
        reset_peak_rss(process.pid)
        rss, peak = process.memory_info().rss, peak_rss(process.pid)
        responses = wave(server.port, size, headers)
        grown = peak_rss(process.pid) - peak
        sent = sum(r.sent for r in responses)
        figures.append(
            f"{name}: {CONCURRENT} x {size / MiB:.0f} MiB chunked: rss {rss / MiB:.0f} MiB, "
            f"peak +{grown / MiB:.1f} MiB, {sent / MiB:.1f} MiB sent, "
            f"answers {sorted({r.status for r in responses})}"
        )
        return responses, grown

    # No signature headers: refused on the head, not a byte of the body read.
    unsigned, grown = measure("unsigned", BODY, lambda i: {})
    for response in unsigned:
        assert_refused(response, 401, "invalid_signature")
    assert grown < 16 * MiB, figures[-1]

    # Headers of the right form: the body is read, up to the limit and no further.
    over, grown_over = measure("signed-looking, over the limit", BODY, lambda i: forged(f"o{i}"))
    for response in over:
        assert_refused(response, 413, "payload_too_large")
        assert response.sent < BODY // 2
    # Within the limit: read whole, verified in place, refused.
    within, grown_within = measure(
        "signed-looking, within the limit", limit - MiB, lambda i: forged(f"i{i}")
    )
    for response in within:
        assert response.status == 401, response.body[:300]
    # Each request held at most one buffer of the limit (before: the body and its copy, 8 x
    # 2 x 32 MiB), plus what the server's allocator and sockets add.
    for grown in (grown_over, grown_within):
        assert grown < CONCURRENT * limit * 1.25 + 16 * MiB, figures
    # The secret was fetched once, at the warm-up; every later request used the cached one.
    assert fake.calls["GET /v1/webhooks/default/secret"] == 1
    assert server.get("/health").status_code == 200
    with capsys.disabled():
        print("\n  " + "\n  ".join(figures))
