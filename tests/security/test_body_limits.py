"""Finding 6: bodies are limited while they stream in, before authentication. A 300 MB body to
login, submit or either webhook is answered 413 without the server reading it (its memory
grows by less than 20 MB; a chunked one to the Replicate webhook without signature headers
gets 401 before any of it is read); a body that arrives too slowly is answered 408.

Bodies over a limit go through a raw socket: the server answers and closes the connection
before the body is sent, and an HTTP client that insists on sending all of it first would
report a broken pipe instead of the answer."""

from __future__ import annotations

import asyncio
import json
import select
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from cloudtune.api.limits import REPLICATE_WEBHOOK_MAX_BYTES, TRAINER_EVENT_MAX_BYTES
from cloudtune.settings import Settings
from tests.e2e.test_server import ServerProcess

MiB = 1024 * 1024
HUGE = 300 * MiB
LOGIN = "/api/auth/login"
SUBMIT = "/api/cloud/jobs/submit?provider=local"
TRAINER = "/api/webhooks/trainer/0123456789abcdef"
REPLICATE = "/api/webhooks/replicate"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """No storage in these checks: SQLite only."""
    return f"sqlite:///{tmp_path / 'test.db'}"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client got out before the answer came

    def json(self) -> Any:
        return json.loads(self.body)


def zeros(total: int, chunk: int = MiB) -> Iterator[bytes]:
    """`total` bytes in chunks of one reused buffer: the test holds 1 MiB, not the body."""
    block = b"0" * chunk
    for start in range(0, total, chunk):
        yield block if total - start >= chunk else block[: total - start]


def post_raw(
    port: int,
    path: str,
    chunks: Iterator[bytes],
    *,
    content_length: int | None,
    host: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
) -> RawResponse:
    """POST `chunks` (with `Content-Length`, else chunked), stopping as soon as the server
    answers or stops taking bytes; the answer, and how much of the body went out."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    head.append(
        f"Content-Length: {content_length}"
        if content_length is not None
        else "Transfer-Encoding: chunked"
    )
    sent = 0
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer is there: the server wants no more
            frame = chunk if content_length is not None else _chunk_frame(chunk)
            sock.sendall(frame)
            sent += len(chunk)
        else:
            if content_length is None:
                sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server closed the connection on a body it refused
    try:
        return _read_response(sock, sent)
    finally:
        sock.close()


def _chunk_frame(chunk: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(chunk), chunk)


def _read_response(sock: socket.socket, sent: int) -> RawResponse:
    data = b""
    while b"\r\n\r\n" not in data or len(data) < _expected_length(data):
        try:
            part = sock.recv(65536)
        except ConnectionResetError:
            break  # a reset after the answer arrived; what was read stands
        if not part:
            break
        data += part
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines and lines[0].startswith("HTTP/1.1 "), f"no answer: {data[:200]!r}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(lines[0].split()[1]), headers, body, sent)


def _expected_length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return len(data) + 1  # read until the server closes


def assert_refused(response: RawResponse, status: int, code: str) -> None:
    assert response.status, response
    assert response.status == status, (response.status, response.body[:300])
    data = response.json()
    assert data["success"] is False and data["code"] == code and data["detail"]
    assert response.headers.get("connection", "").lower() == "close"


def reset_peak_rss(pid: int) -> None:
    """Start the high-water mark again from the current size (Linux, `clear_refs` 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss(pid: int) -> int:
    """The process's high-water resident size (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


# -- a real `cloudtune server` process ------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "home", database_url)
    process.start()
    yield process
    process.stop()


def _warm_up(server: ServerProcess) -> None:
    """One small request per route first, so what the RSS figures count is the big bodies, not
    the first use of each route's code."""
    for path in (LOGIN, SUBMIT, TRAINER, REPLICATE):
        response = server.post(path, content=b"{}", headers={"Content-Type": "application/json"})
        assert response.status_code < 500, response.text


@pytest.mark.e2e
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_300_mb_body_is_refused_without_being_read(
    server: ServerProcess, declared: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    assert server.process is not None
    process = psutil.Process(server.process.pid)
    _warm_up(server)
    figures = []
    for path, limit in (
        (LOGIN, MiB),
        (SUBMIT, MiB),
        (TRAINER, TRAINER_EVENT_MAX_BYTES),
        (REPLICATE, REPLICATE_WEBHOOK_MAX_BYTES),
    ):
        reset_peak_rss(process.pid)
        rss, peak = process.memory_info().rss, peak_rss(process.pid)
        response = post_raw(
            server.port, path, zeros(HUGE), content_length=HUGE if declared else None
        )
        grown = process.memory_info().rss - rss
        peak_grown = peak_rss(process.pid) - peak
        figures.append(
            f"{path}: rss {rss / MiB:.0f} +{grown / MiB:.1f} MiB, peak {peak / MiB:.0f} "
            f"+{peak_grown / MiB:.1f} MiB, {response.sent / MiB:.1f} MiB sent"
        )
        if path == REPLICATE and not declared:
            # No signature headers: refused on its head, before a byte of the body is read
            # (signed ones: test_replicate_webhook_memory.py).
            assert_refused(response, 401, "invalid_signature")
        else:
            assert_refused(response, 413, "payload_too_large")
            assert response.json()["limit_bytes"] == limit
        if declared:  # refused at once: the answer comes without a byte of the body
            unsent = post_raw(server.port, path, zeros(0), content_length=HUGE)
            assert_refused(unsent, 413, "payload_too_large")
        # The rest of the body was never read: what went out is the limit plus socket buffers.
        assert response.sent < HUGE // 2, response.sent
        assert grown < 20 * MiB, figures[-1]
        # While it lasted, the request held at most its route's limit: the Replicate webhook
        # (8 MiB, its logs ride in every delivery) buffers that much for its signature check,
        # every other route at most 1 MiB.
        assert peak_grown < limit + 20 * MiB, figures[-1]
    # Still serving, on a fresh connection.
    assert server.get("/health").status_code == 200
    with capsys.disabled():
        print("\n  " + "\n  ".join(figures))


@pytest.mark.e2e
def test_oversized_headers_are_refused_by_the_cli_server(server: ServerProcess) -> None:
    """uvicorn's h11 protocol bounds the request head; httptools would read it all."""
    response = post_raw(server.port, LOGIN, zeros(0), content_length=0, host="x" * (200 * 1024))
    assert response.status == 400


# -- the app in this process, on a real uvicorn server --------------------------------------


async def _pieces(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


class TestLimits:
    async def test_a_chunked_body_over_the_limit_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        port = client.base_url.port
        assert port
        response = await asyncio.to_thread(
            post_raw, port, LOGIN, zeros(4 * MiB), content_length=None
        )
        assert_refused(response, 413, "payload_too_large")
        assert response.json()["limit_bytes"] == MiB

    async def test_a_body_within_the_limit_reaches_the_route(
        self, client: httpx.AsyncClient
    ) -> None:
        padding = "x" * (MiB - 100)
        response = await client.post(LOGIN, json={"username": "a", "password": "b", "p": padding})
        assert response.status_code != 413, response.text
        streamed = await client.put(
            "/api/cloud/metrics/cost-limit",
            content=_pieces(b'{"limit_usd"', b": 5}"),  # chunked, under the limit
            headers={"Content-Type": "application/json"},
        )
        assert streamed.status_code == 200, streamed.text

    async def test_the_trainer_webhook_has_its_own_smaller_limit(
        self, client: httpx.AsyncClient
    ) -> None:
        port = client.base_url.port
        assert port
        over = TRAINER_EVENT_MAX_BYTES + 1
        for declared in (over, None):
            response = await asyncio.to_thread(
                post_raw, port, TRAINER, zeros(over), content_length=declared
            )
            assert_refused(response, 413, "payload_too_large")
            assert response.json()["limit_bytes"] == TRAINER_EVENT_MAX_BYTES
        # At the limit the route itself answers (here: no such job's token).
        response = await client.post(
            TRAINER, content=b" " * TRAINER_EVENT_MAX_BYTES, headers={"Authorization": "Bearer x"}
        )
        assert response.status_code in (401, 403, 404), response.text


@pytest.fixture
def body_timeout() -> float:
    return 30.0


@pytest.fixture
def settings(settings: Settings, body_timeout: float) -> Settings:
    settings.body_timeout_seconds = body_timeout
    return settings


@pytest.mark.parametrize("body_timeout", [0.2])
async def test_a_body_that_stalls_is_answered_408(client: httpx.AsyncClient) -> None:
    """A client announces 100 bytes, sends 10 and stalls; the server answers on its own."""
    port = client.base_url.port
    assert port
    stalled = iter([b'{"username"'])
    response = await asyncio.to_thread(post_raw, port, LOGIN, stalled, content_length=100)
    assert_refused(response, 408, "request_timeout")
