"""Streaming one output file home: resume, checks, and which links are fetched at all."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cloudtune.errors import ProviderError
from cloudtune.providers.base import PART_SUFFIX
from cloudtune.providers.replicate import outputs
from cloudtune.providers.replicate.outputs import fetch, may_fetch, output_urls, part_path
from cloudtune.settings import Settings

DATA = bytes(range(256)) * 4096  # 1 MiB
URL = "https://replicate.delivery/xezq/abc/weights.safetensors"


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outputs, "WAIT_SECONDS", 0.0)


async def _nothing() -> None:
    return None


class Server:
    """A file host answering from a script: each request takes the next behaviour."""

    def __init__(self, *behaviours: str, data: bytes = DATA, etag: bool = True) -> None:
        self.behaviours = list(behaviours)
        self.data = data
        self.etag = etag
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        behaviour = self.behaviours.pop(0) if self.behaviours else "ok"
        if behaviour.isdigit():
            return httpx.Response(int(behaviour))
        headers = {"Content-Length": str(len(self.data))}
        if self.etag:
            headers["ETag"] = f'"{hashlib.md5(self.data).hexdigest()}"'
        start = 0
        wanted = request.headers.get("range")
        if wanted and behaviour != "ignore-range":
            start = int(wanted.removeprefix("bytes=").removesuffix("-"))
            headers["Content-Range"] = f"bytes {start}-{len(self.data) - 1}/{len(self.data)}"
            headers["Content-Length"] = str(len(self.data) - start)
        body = self.data[start:]
        if behaviour == "corrupt":
            body = body[:-1] + b"\x00"
        cut = int(behaviour.removeprefix("cut:")) if behaviour.startswith("cut:") else None
        status = 206 if "Content-Range" in headers else 200
        return httpx.Response(status, headers=headers, stream=_Stream(body, cut))


class _Stream(httpx.AsyncByteStream):
    def __init__(self, body: bytes, cut: int | None) -> None:
        self.body, self.cut = body, cut

    async def __aiter__(self) -> AsyncIterator[bytes]:
        step = 64 * 1024
        for offset in range(0, len(self.body), step):
            if self.cut is not None and offset >= self.cut:
                raise httpx.ReadError("connection reset")
            yield self.body[offset : offset + step]


def client_for(server: Server) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(server.handler))


async def test_a_cut_download_resumes_from_where_it_stopped(tmp_path: Path) -> None:
    server = Server("cut:262144")
    async with client_for(server) as client:
        got = await fetch(client, URL, tmp_path / "w.bin", token="r8_x", heartbeat=_nothing)
    assert (tmp_path / "w.bin").read_bytes() == DATA
    assert got.size == len(DATA) and got.sha256 == hashlib.sha256(DATA).hexdigest()
    assert [r.headers.get("range") for r in server.requests] == [None, "bytes=262144-"]
    assert all(r.headers["authorization"] == "Bearer r8_x" for r in server.requests)
    assert not part_path(tmp_path / "w.bin").exists()


async def test_a_server_answering_a_resume_with_the_whole_file_starts_over(
    tmp_path: Path,
) -> None:
    server = Server("cut:131072", "ignore-range")
    async with client_for(server) as client:
        got = await fetch(client, URL, tmp_path / "w.bin", token="t", heartbeat=_nothing)
    assert (tmp_path / "w.bin").read_bytes() == DATA
    assert got.sha256 == hashlib.sha256(DATA).hexdigest()


async def test_busy_answers_are_retried_a_bounded_number_of_times(tmp_path: Path) -> None:
    server = Server(*["503"] * 10)
    async with client_for(server) as client:
        with pytest.raises(ProviderError, match="still failing after 5 tries"):
            await fetch(client, URL, tmp_path / "w.bin", token="t", heartbeat=_nothing)
    assert len(server.requests) == outputs.ATTEMPTS
    assert not (tmp_path / "w.bin").exists()


async def test_a_gone_file_fails_at_once_and_says_links_expire(tmp_path: Path) -> None:
    server = Server("404")
    async with client_for(server) as client:
        with pytest.raises(ProviderError, match="may be gone") as raised:
            await fetch(
                client, URL + "?sig=secret", tmp_path / "w.bin", token="t", heartbeat=_nothing
            )
    assert len(server.requests) == 1 and "secret" not in str(raised.value)


async def test_a_copy_that_differs_from_the_etag_is_refused_and_not_kept(tmp_path: Path) -> None:
    server = Server("corrupt")
    async with client_for(server) as client:
        with pytest.raises(ProviderError, match="MD5 differs"):
            await fetch(client, URL, tmp_path / "w.bin", token="t", heartbeat=_nothing)
    assert list(tmp_path.iterdir()) == []


async def test_a_repr_digest_is_checked(tmp_path: Path) -> None:
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Repr-Digest": f"sha-256=:{wrong}:"}
        return httpx.Response(200, headers=headers, stream=_Stream(DATA, None))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ProviderError, match="SHA-256 differs"):
            await fetch(client, URL, tmp_path / "w.bin", token="t", heartbeat=_nothing)


async def test_a_part_left_by_a_stopped_replica_is_resumed(tmp_path: Path) -> None:
    dest = tmp_path / "w.bin"
    part_path(dest).write_bytes(DATA[:100_000])
    server = Server()
    async with client_for(server) as client:
        got = await fetch(client, URL, dest, token="t", heartbeat=_nothing)
    assert dest.read_bytes() == DATA and got.sha256 == hashlib.sha256(DATA).hexdigest()
    assert [r.headers.get("range") for r in server.requests] == ["bytes=100000-"]
    assert part_path(dest).name == f".w.bin{PART_SUFFIX}"


async def test_a_redirect_is_not_followed(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ProviderError, match="HTTP 302"):
            await fetch(client, URL, tmp_path / "w.bin", token="t", heartbeat=_nothing)


def test_only_the_configured_file_hosts_are_fetched() -> None:
    production = Settings().replicate_output_hosts
    assert production == ["replicate.delivery"]
    assert may_fetch("https://replicate.delivery/a/b.bin", production)
    assert may_fetch("https://pbxt.replicate.delivery/a/b.bin", production)
    assert may_fetch("https://PBXT.Replicate.Delivery:443/a", production)
    fake = ["http://127.0.0.1:9100"]
    assert may_fetch("http://127.0.0.1:9100/delivery/p/a", fake)
    for url in (
        # The API's origin is not a file host: its answers are the account's data.
        "https://api.replicate.com/v1/predictions",
        "https://api.replicate.com/v1/files/x",
        "http://replicate.delivery/a",  # not https
        "https://replicate.delivery:8443/a",
        "https://evilreplicate.delivery/a",
        "https://replicate.delivery.evil.com/a",
        "https://user:pw@replicate.delivery/a",
        "http://169.254.169.254/latest/meta-data",
        "not a url",
    ):
        assert not may_fetch(url, production), url
    for url in (
        "http://127.0.0.1:9101/delivery/p/a",
        "https://127.0.0.1:9100/delivery/p/a",
        "http://localhost:9100/delivery/p/a",
        "https://replicate.delivery/a",
    ):
        assert not may_fetch(url, fake), url


def test_the_output_hosts_setting_reads_origins_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "CLOUDTUNE_REPLICATE_OUTPUT_HOSTS", "replicate.delivery, http://127.0.0.1:9100"
    )
    assert Settings().replicate_output_hosts == ["replicate.delivery", "http://127.0.0.1:9100"]


def test_output_links_are_found_in_lists_and_objects() -> None:
    found = output_urls(
        [
            "https://replicate.delivery/a/w.safetensors",
            {"version": "abc", "weights": "https://replicate.delivery/a/w.tar"},
            "not a link",
            "https://replicate.delivery/a/w.safetensors",
        ]
    )
    assert found == [
        "https://replicate.delivery/a/w.safetensors",
        "https://replicate.delivery/a/w.tar",
    ]
