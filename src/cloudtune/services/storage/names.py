"""Bucket names and object keys, and where they live on disk.

Objects live at `<root>/<bucket>/<key>`, so a job's outputs can be browsed as plain files and an
uploaded dataset's folder holds its files and nothing else (a trainer reads every file there).
What the store keeps beside them is under names that start with `.ct~`: each object's metadata
in a tree mirroring the keys at the bucket's root (`<bucket>/.ct~meta/<key>`; a folder marker's
`<bucket>/.ct~meta/<key>.ct~dir`), multipart parts under `<root>/.ct~uploads`, and the temp file
of an upload in flight in its object's folder. A key with a segment starting `.ct~` is refused,
so no key can name or overwrite them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cloudtune.errors import InvalidInputError

RESERVED = ".ct~"
META_DIR = ".ct~meta"
# The metadata of a key that ends in "/" (a folder marker), in that folder's mirror under
# META_DIR.
DIR_MARKER = ".ct~dir"
MAX_KEY_BYTES = 1024
# A file name's limit on common filesystems (ext4, xfs, btrfs: 255 bytes).
MAX_SEGMENT_BYTES = 255
# Paths of this API under the endpoint (/api/cloud/storage/credentials), never buckets.
RESERVED_BUCKETS = frozenset({"credentials"})

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


class InvalidNameError(InvalidInputError):
    """400, in S3's words: InvalidBucketName or InvalidArgument (a key)."""


def check_bucket(bucket: str) -> str:
    """S3's rules: 3-63 of lowercase letters, digits, hyphens and dots; a letter or digit at
    both ends; no `..`, no IPv4 address."""
    if (
        not _BUCKET.match(bucket)
        or ".." in bucket
        or _IPV4.match(bucket)
        or bucket in RESERVED_BUCKETS
    ):
        raise InvalidNameError(
            "bucket names are 3-63 lowercase letters, digits, hyphens and dots "
            "('credentials' is reserved)",
            code="InvalidBucketName",
        )
    return bucket


def check_key(key: str) -> str:
    """A key that names one file under its bucket: no empty, `.` or `..` segments, no
    backslash, NUL or leading slash, at most 1024 bytes; a trailing slash names a folder."""
    if not key:
        raise InvalidNameError("an object key must not be empty", code="InvalidArgument")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidNameError(
            f"an object key is at most {MAX_KEY_BYTES} bytes", code="KeyTooLongError"
        )
    if "\\" in key or "\x00" in key or key.startswith("/"):
        raise InvalidNameError(
            "an object key must not hold a backslash or NUL, nor start with '/'",
            code="InvalidArgument",
        )
    segments = key[:-1].split("/") if key.endswith("/") else key.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise InvalidNameError(
                "an object key must not hold empty, '.' or '..' segments", code="InvalidArgument"
            )
        if segment.startswith(RESERVED):
            raise InvalidNameError(
                f"key segments starting {RESERVED!r} are reserved", code="InvalidArgument"
            )
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            # Each segment is a file or folder name on disk, which the filesystem bounds.
            raise InvalidNameError(
                f"each '/'-separated part of a key is at most {MAX_SEGMENT_BYTES} bytes here",
                code="KeyTooLongError",
            )
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidNameError("an object key must be UTF-8", code="InvalidArgument") from exc
    return key


def check_prefix(prefix: str, what: str = "prefix") -> str:
    """A listing's prefix (or the key it starts after): a key's rules for each whole segment,
    the last (partial) one excepted, so that no prefix walks a folder outside its own keys
    (`olga/../bob/` would list bob's with a key for olga's)."""
    if not prefix:
        return prefix
    if len(prefix.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidNameError(
            f"the {what} is at most {MAX_KEY_BYTES} bytes", code="InvalidArgument"
        )
    if "\\" in prefix or "\x00" in prefix or prefix.startswith("/"):
        raise InvalidNameError(
            f"the {what} must not hold a backslash or NUL, nor start with '/'",
            code="InvalidArgument",
        )
    for segment in prefix.split("/")[:-1]:
        if segment in ("", ".", "..") or segment.startswith(RESERVED):
            raise InvalidNameError(
                f"the {what} must not hold empty, '.', '..' or {RESERVED!r} segments",
                code="InvalidArgument",
            )
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            raise InvalidNameError(
                f"each '/'-separated part of the {what} is at most {MAX_SEGMENT_BYTES} bytes",
                code="KeyTooLongError",
            )
    return prefix


@dataclass(frozen=True, slots=True)
class ObjectPath:
    """Where one key's bytes and metadata sit."""

    bucket_dir: Path
    data: Path  # a file, or for a folder marker the folder
    meta: Path
    is_folder: bool

    @property
    def folder(self) -> Path:
        """The folder that holds the data (where its temp file is written)."""
        return self.data if self.is_folder else self.data.parent


def object_path(root: Path, bucket: str, key: str) -> ObjectPath:
    """The key's place under the root; the checks above keep it inside its bucket, and the
    final check makes sure no symlink in between leads out."""
    bucket_dir = root / check_bucket(bucket)
    check_key(key)
    if key.endswith("/"):
        data = bucket_dir / key.rstrip("/")
        meta = bucket_dir / META_DIR / key.rstrip("/") / DIR_MARKER
        path = ObjectPath(bucket_dir, data, meta, True)
    else:
        data = bucket_dir / key
        path = ObjectPath(bucket_dir, data, bucket_dir / META_DIR / key, False)
    ensure_inside(root, path.folder)
    return path


def ensure_inside(root: Path, path: Path) -> None:
    """The nearest existing folder of `path`, symlinks followed, is under the root."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    real_root = root.resolve()
    real = probe.resolve()
    if real in real_root.parents:
        return  # the root itself is not made yet: nothing between can lead elsewhere
    if real != real_root and real_root not in real.parents:
        raise InvalidNameError("the key leads outside its bucket", code="InvalidArgument")
