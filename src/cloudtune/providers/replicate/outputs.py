"""Bringing a prediction's output files home (reference/replicate-api.md §4: output links are
served by the file host with the API token, and are removed an hour after the prediction).

One file is streamed to a temp file beside its destination in constant memory, hashed as it is
written (SHA-256, and MD5 when the server's ETag looks like one), checked against the length and
digests the server gave, then renamed into place. A connection that breaks mid-file is resumed
where it stopped with `Range: bytes=N-` (a bounded number of tries with backoff); a server that
answers a resume with the whole file starts over.

Only links on the provider's own hosts are requested, and only those get the token: a trainer's
output is data, and a link in it pointing elsewhere (another host, an internal address) must not
make this server fetch it or hand it our credentials. Redirects are not followed for the same
reason.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from cloudtune.errors import ProviderError
from cloudtune.providers.base import PART_SUFFIX, FetchedFile

# Tries per file (the first and the resumes), and the backoff between them.
ATTEMPTS = 5
WAIT_SECONDS = 0.5
WAIT_MAX_SECONDS = 8.0
# A long download keeps its claim alive this often (the claim runs out after minutes).
HEARTBEAT_SECONDS = 20.0
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_MD5_ETAG = re.compile(r'^(?:W/)?"?([0-9a-fA-F]{32})"?$')
_DIGEST = re.compile(r"(sha-256|md5)=:([A-Za-z0-9+/=]+):", re.IGNORECASE)


class _Broken(Exception):
    """A try that may succeed if made again (a broken connection, a busy server)."""


def part_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}{PART_SUFFIX}")


def output_urls(outputs: Sequence[Any]) -> list[str]:
    """Every http(s) link in a prediction's output (a list, a dict such as a training's
    `{version, weights}`, or nested), in order, once each."""
    found: list[str] = []

    def walk(value: Any, depth: int) -> None:
        if depth > 4:
            return
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            if value not in found:
                found.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item, depth + 1)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item, depth + 1)

    walk(list(outputs), 0)
    return found


def may_fetch(url: str, hosts: Sequence[str]) -> bool:
    """A link on one of `hosts` (the setting `replicate_output_hosts`): a host name allows
    https on it and its subdomains; an origin (`http://127.0.0.1:9100`, the fake tests run)
    allows exactly that scheme, host and port. The API's own origin is not among them unless
    listed: a link there (`/v1/predictions`) would save the account's data as an output."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return False
    if parts.username is not None or parts.password is not None or not host:
        return False
    for allowed in hosts:
        if "://" in allowed:
            try:
                origin = urlsplit(allowed)
                same = (parts.scheme, host, port) == (
                    origin.scheme,
                    (origin.hostname or "").lower(),
                    origin.port,
                )
            except ValueError:
                continue
            if same:
                return True
            continue
        name = allowed.lower().strip(".")
        if parts.scheme == "https" and port in (None, 443) and _under(host, name):
            return True
    return False


def _under(host: str, name: str) -> bool:
    return bool(name) and (host == name or host.endswith("." + name))


@dataclass
class _Progress:
    """What is written so far, and what the server promised about the whole file."""

    written: int = 0
    total: int | None = None
    md5: str | None = None
    sha256: str | None = None
    hashes: tuple[Any, Any] = field(default_factory=lambda: (hashlib.sha256(), hashlib.md5()))

    def restart(self) -> None:
        self.written, self.hashes = 0, (hashlib.sha256(), hashlib.md5())


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    token: str,
    heartbeat: Callable[[], Awaitable[None]],
    attempts: int = ATTEMPTS,
) -> FetchedFile:
    """Stream `url` into `dest`; raises ProviderError (no token, no query string in it)."""
    shown = _shown(url)
    part = part_path(dest)
    progress = _Progress()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if part.is_symlink():  # writing through a link would land outside the folder
        part.unlink()
    # A part left by a replica that stopped mid-file is resumed: rehash what it holds.
    if part.exists():
        with open(part, "rb") as f:
            while chunk := f.read(1024 * 1024):
                progress.written += len(chunk)
                for h in progress.hashes:
                    h.update(chunk)
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=WAIT_SECONDS, max=WAIT_MAX_SECONDS),
            retry=retry_if_exception_type(_Broken),
            reraise=True,
        ):
            with attempt:
                await _one_try(client, url, part, progress, token, heartbeat)
    except _Broken as exc:
        raise ProviderError(
            f"{shown}: still failing after {attempts} tries ({exc}); "
            f"{progress.written} bytes kept for a retry",
            provider="replicate",
        ) from exc
    except ProviderError:
        part.unlink(missing_ok=True)
        raise
    return _verified(part, dest, progress, shown)


async def _one_try(
    client: httpx.AsyncClient,
    url: str,
    part: Path,
    progress: _Progress,
    token: str,
    heartbeat: Callable[[], Awaitable[None]],
) -> None:
    shown = _shown(url)
    if progress.total is not None and progress.written == progress.total:
        return
    # Each try keeps the claim too: tries that time out without a byte still take minutes.
    await heartbeat()
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"}
    if progress.written:
        headers["Range"] = f"bytes={progress.written}-"
    try:
        async with client.stream("GET", url, headers=headers) as answer:
            if answer.status_code in _RETRY_STATUSES:
                raise _Broken(f"HTTP {answer.status_code}")
            if answer.status_code == 416 and progress.written:
                # Past the end: what we have may be all of it; the checks below will tell.
                progress.total = progress.total or progress.written
                return
            if answer.status_code not in (200, 206):
                raise ProviderError(_refusal(shown, answer.status_code), provider="replicate")
            _read_promises(answer, progress)
            mode = "ab"
            if answer.status_code == 200 or _range_start(answer) != progress.written:
                progress.restart()  # the whole file (or a range we did not ask): start over
                mode = "wb"
            beat = time.monotonic()
            with open(part, mode) as out:
                async for chunk in answer.aiter_raw():
                    out.write(chunk)
                    progress.written += len(chunk)
                    for h in progress.hashes:
                        h.update(chunk)
                    if time.monotonic() - beat >= HEARTBEAT_SECONDS:
                        out.flush()
                        await heartbeat()
                        beat = time.monotonic()
                out.flush()
                os.fsync(out.fileno())
    except httpx.TransportError as exc:  # a connection refused, cut or timed out
        raise _Broken(type(exc).__name__) from exc
    if progress.total is not None and progress.written < progress.total:
        raise _Broken(f"connection ended at {progress.written} of {progress.total} bytes")


def _read_promises(answer: httpx.Response, progress: _Progress) -> None:
    """The whole file's length and digests, as the server states them (first seen wins)."""
    if answer.status_code == 206:
        _, _, total = answer.headers.get("content-range", "").rpartition("/")
        size = int(total) if total.isdigit() else None
    else:
        length = answer.headers.get("content-length", "")
        size = int(length) if length.isdigit() else None
    if size is not None:
        progress.total = size
    etag = _MD5_ETAG.match(answer.headers.get("etag", "").strip())
    if etag and progress.md5 is None:
        progress.md5 = etag.group(1).lower()
    # Repr-Digest is of the whole file; Content-Digest only of this answer's body.
    digests = answer.headers.get("repr-digest", "")
    if answer.status_code == 200:
        digests += "," + answer.headers.get("content-digest", "")
    for algorithm, value in _DIGEST.findall(digests):
        try:
            hexed = base64.b64decode(value, validate=True).hex()
        except ValueError:
            continue
        if algorithm.lower() == "sha-256":
            progress.sha256 = progress.sha256 or hexed
        else:
            progress.md5 = progress.md5 or hexed


def _range_start(answer: httpx.Response) -> int | None:
    match = re.match(r"bytes (\d+)-", answer.headers.get("content-range", ""))
    return int(match.group(1)) if match else None


def _verified(part: Path, dest: Path, progress: _Progress, shown: str) -> FetchedFile:
    sha256, md5 = (h.hexdigest() for h in progress.hashes)
    problem = None
    if progress.total is not None and progress.written != progress.total:
        problem = f"{progress.written} bytes written, the server said {progress.total}"
    elif progress.sha256 is not None and progress.sha256 != sha256:
        problem = "SHA-256 differs from the server's digest"
    elif progress.md5 is not None and progress.md5 != md5:
        problem = "MD5 differs from the server's ETag"
    if problem is not None:
        part.unlink(missing_ok=True)  # a corrupt copy is never resumed
        raise ProviderError(f"{shown}: {problem}; nothing kept", provider="replicate")
    os.replace(part, dest)
    return FetchedFile(size=progress.written, sha256=sha256)


def _refusal(shown: str, status: int) -> str:
    if status in (403, 404, 410):
        return (
            f"{shown}: HTTP {status}; the provider removes output files some time after the "
            "job ends, so they may be gone"
        )
    return f"{shown}: HTTP {status}"


def _shown(url: str) -> str:
    """A link as errors show it: no query string (signed links carry credentials there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"[:300]
