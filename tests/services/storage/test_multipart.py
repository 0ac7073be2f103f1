"""Multipart uploads on disk: parts joined in order into one object, a lost part refused."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloudtune.errors import CloudtuneError
from cloudtune.services.storage import multipart
from cloudtune.services.storage.multipart import MIN_PART_BYTES

MIB = 1024 * 1024


async def chunks(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def upload(root: Path, parts: list[bytes]) -> tuple[multipart.Upload, list[tuple[int, str]]]:
    made = multipart.create(root, "bucket", "folder/object.bin", None)
    wanted = []
    for number, data in enumerate(parts, start=1):
        written = await multipart.receive_part(
            made, number, chunks(data), max_bytes=10 * MIB, want_sha256=False
        )
        part = multipart.keep_part(made, number, written, max_object_bytes=100 * MIB)
        wanted.append((number, part.etag))
    return made, wanted


async def test_parts_are_joined_in_order_with_s3s_etag(tmp_path: Path) -> None:
    parts = [bytes([n]) * MIN_PART_BYTES for n in (1, 2)] + [b"tail"]
    made, wanted = await upload(tmp_path, parts)
    info = multipart.complete(tmp_path, made, wanted)
    data = (tmp_path / "bucket" / "folder" / "object.bin").read_bytes()
    assert data == b"".join(parts) and info.size == len(data)
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    assert info.etag == f'"{hashlib.md5(digests).hexdigest()}-3"'
    assert not made.folder.exists()


async def test_a_part_lost_since_it_was_received_is_refused(tmp_path: Path) -> None:
    made, wanted = await upload(tmp_path, [b"x" * MIN_PART_BYTES, b"end"])
    # What a crash can leave of a part not yet synced: a shorter file.
    with open(made.folder / "part-00001", "r+b") as part:
        part.truncate(1000)
    with pytest.raises(CloudtuneError) as refused:
        multipart.complete(tmp_path, made, wanted)
    assert "part 1" in str(refused.value)
    assert not (tmp_path / "bucket" / "folder" / "object.bin").exists()


async def test_a_part_that_would_take_the_parts_over_the_object_limit_is_not_kept(
    tmp_path: Path,
) -> None:
    made = multipart.create(tmp_path, "bucket", "big.bin", None)
    for number in (1, 2):
        written = await multipart.receive_part(
            made, number, chunks(b"p" * 900), max_bytes=1000, want_sha256=False
        )
        multipart.keep_part(made, number, written, max_object_bytes=2000)
    assert multipart.room(made, 2, 2000) == 1100  # part 2 sent again replaces itself
    assert multipart.room(made, 3, 2000) == 200
    # Received while another part came in: checked again before it is kept.
    late = await multipart.receive_part(
        made, 3, chunks(b"p" * 300), max_bytes=1000, want_sha256=False
    )
    with pytest.raises(CloudtuneError) as refused:
        multipart.keep_part(made, 3, late, max_object_bytes=2000)
    assert refused.value.code == "EntityTooLarge"
    assert not late.temp.exists() and [p.number for p in multipart.parts(made)] == [1, 2]
