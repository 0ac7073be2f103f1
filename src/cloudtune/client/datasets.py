"""Datasets through the built-in S3 endpoint, with this API's own credential (no signature):
`datasets/<your prefix><name>/<file>`, which a dataloader names as `"dataset": "<name>"`."""

from __future__ import annotations

import asyncio
import os
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from cloudtune.client.calls import Call

BUCKET = "datasets"
_S3 = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_CHUNK = 1024 * 1024


def files_of(folder: Path) -> Iterator[tuple[str, Path]]:
    """Every regular file under the folder, by its relative path with `/`; hidden files and
    folders (`.git`, `.env`) and links are left out, as the server's packaging leaves them."""
    folder = folder.expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            yield path.relative_to(folder).as_posix(), path


def counted(body: BinaryIO, on_bytes: Callable[[int], None] | None) -> Iterator[bytes]:
    while chunk := body.read(_CHUNK):
        if on_bytes is not None:
            on_bytes(len(chunk))
        yield chunk


async def read_async(path: Path, on_bytes: Callable[[int], None] | None) -> AsyncIterator[bytes]:
    """The file's bytes for the async client, each chunk read off the event loop."""
    with open(path, "rb") as body:
        while chunk := await asyncio.to_thread(body.read, _CHUNK):
            if on_bytes is not None:
                on_bytes(len(chunk))
            yield chunk


def put_object(key: str, content: Iterator[bytes] | AsyncIterator[bytes]) -> Call[None]:
    return Call(
        "PUT",
        f"/api/cloud/storage/{BUCKET}/{quote(key)}",
        lambda _b: None,
        content=content,
        headers={"Content-Type": "application/octet-stream"},
    )


@dataclass(frozen=True, slots=True)
class NamesPage:
    names: list[str]
    next_token: str | None


def list_page(prefix: str, token: str | None) -> Call[NamesPage]:
    params = {"list-type": "2", "prefix": prefix, "delimiter": "/"}
    if token:
        params["continuation-token"] = token
    return Call(
        "GET",
        f"/api/cloud/storage/{BUCKET}",
        lambda answer: _names(answer, prefix),
        params=params,
    )


def _names(answer: object, prefix: str) -> NamesPage:
    """From the JSON this API's own callers get, or S3's XML."""
    if isinstance(answer, dict):
        found = [str(p).removeprefix(prefix).rstrip("/") for p in answer.get("CommonPrefixes", [])]
        token = answer.get("NextContinuationToken") if answer.get("IsTruncated") else None
        return NamesPage(sorted({n for n in found if n}), str(token) if token else None)
    root = ElementTree.fromstring(str(answer))
    names = [
        (element.text or "").removeprefix(prefix).rstrip("/")
        for element in root.iter(f"{_S3}Prefix")
        if element.text and element.text != prefix
    ]
    truncated = (root.findtext(f"{_S3}IsTruncated") or "").lower() == "true"
    token = root.findtext(f"{_S3}NextContinuationToken") if truncated else None
    return NamesPage(sorted(set(names)), token or None)
