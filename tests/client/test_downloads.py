"""Output downloads trust nothing a listing says: links to other hosts are not followed with
the credential, paths stay inside the folder, a planted link is never written through, a
broken download resumes, and a wrong checksum is refused. A hostile server is played by an
httpx transport of this test."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from cloudtune.client import Client, models
from cloudtune.client.downloads import DownloadError

BODY = b"weights" * 1000


def item(path: str, url: str, sha: str | None = None) -> models.OutputFile:
    return models.OutputFile(
        path=path, size=len(BODY), sha256=sha, modified_at=datetime.now(UTC), url=url
    )


def serving(seen: list[httpx.Request]) -> Client:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        start = 0
        if "range" in request.headers:
            start = int(request.headers["range"].removeprefix("bytes=").rstrip("-"))
            return httpx.Response(206, content=BODY[start:])
        return httpx.Response(200, content=BODY)

    return Client(
        "http://server.test", api_key="stk_secret", transport=httpx.MockTransport(answer)
    )


def test_a_link_to_another_host_is_not_fetched_with_the_key(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    with serving(seen) as client:
        for url in ("http://evil.test/steal", "//evil.test/steal", "/\\\\evil.test/x"):
            with pytest.raises(DownloadError):
                client.download(item("a.bin", url), tmp_path)
    assert seen == []


@pytest.mark.parametrize("path", ["../escape.bin", "/etc/passwd", "a/../../b", "", "a\\0b"])
def test_a_path_outside_the_folder_is_refused(tmp_path: Path, path: str) -> None:
    with serving([]) as client, pytest.raises(DownloadError):
        client.download(item(path.replace("\\0", "\0"), "/files/x"), tmp_path / "out")
    assert not (tmp_path / "escape.bin").exists()


def test_a_planted_link_is_replaced_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    folder = tmp_path / "out"
    folder.mkdir()
    os.symlink(victim, folder / "w.bin.part")
    with serving([]) as client:
        written = client.download(item("w.bin", "/files/w.bin"), folder)
    assert victim.read_text() == "keep me"
    assert written.read_bytes() == BODY and not written.is_symlink()


def test_a_broken_download_resumes_and_is_checked(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    (tmp_path / "w.bin.part").write_bytes(BODY[:1000])
    sha = hashlib.sha256(BODY).hexdigest()
    with serving(seen) as client:
        written = client.download(item("w.bin", "/files/w.bin", sha), tmp_path)
        assert written.read_bytes() == BODY
        assert seen[-1].headers["range"] == "bytes=1000-"
        assert seen[-1].headers["authorization"] == "Bearer stk_secret"
        with pytest.raises(DownloadError, match="checksum"):
            client.download(item("v.bin", "/files/v.bin", "0" * 64), tmp_path)
    assert not (tmp_path / "v.bin").exists() and not (tmp_path / "v.bin.part").exists()
