"""Multipart uploads: parts stream to `<root>/.ct~uploads/<upload id>/`, and completing one
joins the named parts into the object in one temp file, renamed into place like any upload.

The ETag is S3's: the MD5 of the parts' binary MD5s, then `-<count>`. Every part but the last
must be at least 5 MiB, as S3 requires (clients size their parts by it)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from xml.etree import ElementTree

from cloudtune.services.storage import errors
from cloudtune.services.storage.names import RESERVED, object_path
from cloudtune.services.storage.objects import (
    ObjectInfo,
    Written,
    commit,
    md5_etag,
    receive_to_temp,
    temp_in,
)

UPLOADS = f"{RESERVED}uploads"
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10000
MAX_COMPLETE_XML_BYTES = 2 * 1024 * 1024
_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
COPY_BUFFER = 1024 * 1024
# An upload neither completed nor aborted this long after its last part is removed (S3 keeps
# them until a lifecycle rule says otherwise; a disk has no such rule).
ABANDONED_AFTER_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    content_type: str | None
    folder: Path


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    etag: str  # quoted
    size: int


def create(root: Path, bucket: str, key: str, content_type: str | None) -> Upload:
    object_path(root, bucket, key)  # the key's checks, before anything is made
    _sweep(root / UPLOADS)
    upload_id = secrets.token_urlsafe(24)
    folder = root / UPLOADS / upload_id
    folder.mkdir(parents=True)
    doc = {"bucket": bucket, "key": key, "content_type": content_type}
    (folder / "upload.json").write_text(json.dumps(doc))
    return Upload(upload_id, bucket, key, content_type, folder)


def find(root: Path, bucket: str, key: str, upload_id: str) -> Upload:
    """The upload, only for the bucket and key it was made for."""
    if not _UPLOAD_ID.match(upload_id):
        raise errors.no_such_upload()
    folder = root / UPLOADS / upload_id
    try:
        doc = json.loads((folder / "upload.json").read_text())
    except (OSError, ValueError) as exc:
        raise errors.no_such_upload() from exc
    if doc.get("bucket") != bucket or doc.get("key") != key:
        raise errors.no_such_upload()
    return Upload(upload_id, bucket, key, doc.get("content_type"), folder)


def part_number(raw: str) -> int:
    # ASCII digits only: str.isdigit and int() also take other scripts' digits.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 5) or not 1 <= int(raw) <= MAX_PARTS:
        raise errors.invalid_argument(f"Part number must be an integer between 1 and {MAX_PARTS}")
    return int(raw)


async def receive_part(
    upload: Upload, number: int, body: AsyncIterator[bytes], *, max_bytes: int, want_sha256: bool
) -> Written:
    return await receive_to_temp(
        body, upload.folder, max_bytes=max_bytes, want_sha256=want_sha256, durable=False
    )


def room(upload: Upload, number: int, max_object_bytes: int) -> int:
    """The most bytes part `number` may hold: the object limit less the upload's other parts,
    so parts never pile up past what completing them could make (a part sent again replaces
    its earlier self)."""
    others = sum(part.size for part in parts(upload) if part.number != number)
    if others >= max_object_bytes:
        raise errors.too_large(max_object_bytes)
    return max_object_bytes - others


def keep_part(upload: Upload, number: int, written: Written, *, max_object_bytes: int) -> Part:
    if not upload.folder.is_dir():  # aborted while the part streamed in
        written.temp.unlink(missing_ok=True)
        raise errors.no_such_upload()
    if written.size > room(upload, number, max_object_bytes):  # parts that raced this one
        written.temp.unlink(missing_ok=True)
        raise errors.too_large(max_object_bytes)
    part = Part(number, md5_etag(written.md5), written.size)
    meta = temp_in(upload.folder)
    meta.write_text(json.dumps({"etag": part.etag, "size": part.size}))
    written.temp.replace(upload.folder / f"part-{number:05d}")
    meta.replace(upload.folder / f"part-{number:05d}.json")
    return part


def parts(upload: Upload) -> list[Part]:
    found = []
    for meta in sorted(upload.folder.glob("part-?????.json")):
        doc = json.loads(meta.read_text())
        found.append(Part(int(meta.name[5:10]), str(doc["etag"]), int(doc["size"])))
    return found


def parse_complete(body: bytes) -> list[tuple[int, str]]:
    """(part number, ETag) pairs of a CompleteMultipartUpload document. Checksum elements a
    client adds are not checked here: the parts' MD5 ETags are."""
    try:
        doc = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise errors.malformed_xml() from exc
    if _local(doc.tag) != "CompleteMultipartUpload":
        raise errors.malformed_xml()
    wanted = []
    for element in doc:
        if _local(element.tag) != "Part":
            raise errors.malformed_xml(f"unexpected element {_local(element.tag)!r}")
        fields = {_local(child.tag): (child.text or "").strip() for child in element}
        if "PartNumber" not in fields or "ETag" not in fields:
            raise errors.malformed_xml("each Part needs PartNumber and ETag")
        etag = fields["ETag"].strip('"')
        wanted.append((part_number(fields["PartNumber"]), f'"{etag}"'))
    if not wanted:
        raise errors.malformed_xml("the part list is empty")
    numbers = [number for number, _ in wanted]
    if numbers != sorted(set(numbers)):
        raise errors.InvalidInputError(
            "The list of parts was not in ascending order.", code="InvalidPartOrder"
        )
    return wanted


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def complete(root: Path, upload: Upload, wanted: list[tuple[int, str]]) -> ObjectInfo:
    have = {part.number: part for part in parts(upload)}
    chosen = []
    for index, (number, etag) in enumerate(wanted):
        part = have.get(number)
        if part is None or part.etag != etag:
            raise errors.invalid_part(f"part {number} was not uploaded or its ETag differs")
        if index < len(wanted) - 1 and part.size < MIN_PART_BYTES:
            raise errors.InvalidInputError(
                "Your proposed upload is smaller than the minimum allowed size",
                code="EntityTooSmall",
            )
        chosen.append(part)
    where = object_path(root, upload.bucket, upload.key)
    where.folder.mkdir(parents=True, exist_ok=True)
    temp = temp_in(where.folder)
    joined = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with open(temp, "xb") as out:
            for part in chosen:
                joined.update(bytes.fromhex(part.etag.strip('"')))
                with open(upload.folder / f"part-{part.number:05d}", "rb") as src:
                    # A part is not synced when received (the object is, below): after a
                    # crash its file may be short, which its recorded size tells.
                    if os.fstat(src.fileno()).st_size != part.size:
                        raise errors.invalid_part(f"part {part.number} was lost; upload it again")
                    _append(src, out, part.size)
                size += part.size
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    written = Written(temp, size, joined.digest(), None)
    etag = f'"{joined.hexdigest()}-{len(chosen)}"'
    info = commit(
        root, upload.bucket, upload.key, written, content_type=upload.content_type, etag=etag
    )
    abort(upload)
    return info


def _append(src: BinaryIO, out: BinaryIO, size: int) -> None:
    """Copy a part to the end of the object in the kernel (copy_file_range: no pass through
    this process's memory, and a reflink where the filesystem has them), or by reading and
    writing where the kernel cannot."""
    left = size
    try:
        while left > 0:
            copied = os.copy_file_range(src.fileno(), out.fileno(), left)
            if copied == 0:
                break
            left -= copied
    except OSError:
        pass  # another filesystem, or no such call: copy the rest by hand
    if left > 0:
        src.seek(size - left)
        shutil.copyfileobj(src, out, COPY_BUFFER)


def _sweep(uploads: Path) -> None:
    if not uploads.is_dir():
        return
    cutoff = time.time() - ABANDONED_AFTER_SECONDS
    for folder in uploads.iterdir():
        try:
            newest = max(p.stat().st_mtime for p in [folder, *folder.iterdir()])
        except (OSError, ValueError):
            continue
        if newest < cutoff:
            shutil.rmtree(folder, ignore_errors=True)


def abort(upload: Upload) -> None:
    shutil.rmtree(upload.folder, ignore_errors=True)
