"""Objects on disk: streamed in with constant memory, kept with a small metadata file.

An upload is written to a temp file in the object's own folder while its MD5 (and, when the
client signed the payload, its SHA-256) is computed, then fsynced and renamed into place, so a
reader sees the old object or the new one, never half of one; an upload that fails or whose
client goes away removes its temp file. The metadata file (`<bucket>/.ct~meta/<key>`, outside
the objects' own folders) holds the ETag, size, type and the data file's mtime: when the mtime
no longer matches (a file put there by other means, or two uploads racing), the ETag is
computed again from the bytes. The data tree is the truth: metadata left by an object removed
by other means is cleared when a new key needs its place."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread

from cloudtune.services.storage import errors
from cloudtune.services.storage.names import (
    DIR_MARKER,
    META_DIR,
    RESERVED,
    ObjectPath,
    check_bucket,
    object_path,
)

WRITE_BATCH = 512 * 1024
DEFAULT_TYPE = "binary/octet-stream"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # quoted, as S3 answers it
    content_type: str
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class Written:
    """A temp file fully written and fsynced, not yet in place."""

    temp: Path
    size: int
    md5: bytes
    sha256: str | None


@dataclass(frozen=True, slots=True)
class BucketInfo:
    name: str
    created: datetime


def temp_in(folder: Path) -> Path:
    return folder / f"{RESERVED}tmp-{secrets.token_hex(8)}"


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise errors.key_conflict() from exc


async def receive_to_temp(
    body: AsyncIterator[bytes],
    folder: Path,
    *,
    max_bytes: int,
    want_sha256: bool,
    durable: bool = True,
) -> Written:
    """Stream `body` into a new temp file in `folder`; the caller renames or removes it.
    Over `max_bytes`, a failure or a disconnect (the iterator raising) removes the temp file.
    `durable`: on disk (fsync) before this returns; a multipart part is not, as its object is
    when the upload completes, and completion checks each part's size first."""
    await anyio.to_thread.run_sync(_make_folder, folder)
    temp = temp_in(folder)
    handle = await anyio.to_thread.run_sync(lambda: open(temp, "xb"))  # noqa: SIM115
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha256() if want_sha256 else None
    size = 0
    pending: list[bytes] = []
    pending_size = 0

    # Hashing happens with the write, off the event loop: hashlib lets go of the GIL for
    # buffers this size, so concurrent uploads hash on every core while the loop receives.
    def flush(chunks: list[bytes], final: bool) -> None:
        for chunk in chunks:
            md5.update(chunk)
            if sha is not None:
                sha.update(chunk)
            handle.write(chunk)
        if final:
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
            handle.close()

    try:
        async for chunk in body:
            size += len(chunk)
            if size > max_bytes:
                raise errors.too_large(max_bytes)
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= WRITE_BATCH:
                batch, pending, pending_size = pending, [], 0
                await anyio.to_thread.run_sync(flush, batch, False)
        await anyio.to_thread.run_sync(flush, pending, True)
    except BaseException:
        # Also a cancelled task (the client went away): nothing of this upload stays.
        handle.close()
        temp.unlink(missing_ok=True)
        raise
    return Written(temp, size, md5.digest(), sha.hexdigest() if sha is not None else None)


def discard(written: Written) -> None:
    written.temp.unlink(missing_ok=True)


def commit(
    root: Path, bucket: str, key: str, written: Written, *, content_type: str | None, etag: str
) -> ObjectInfo:
    """Put a written temp file in place as the object `key`, with its metadata."""
    where = object_path(root, bucket, key)
    try:
        if where.is_folder:
            if written.size:
                raise errors.invalid_argument("a key ending in '/' names a folder: no body")
            written.temp.unlink()
            _make_folder(where.data)
            stat_size, mtime_ns = 0, where.data.stat().st_mtime_ns
        else:
            if where.data.is_dir():
                raise errors.key_conflict()
            stat = written.temp.stat()
            stat_size, mtime_ns = stat.st_size, stat.st_mtime_ns
        info = ObjectInfo(
            key=key,
            size=stat_size,
            etag=etag,
            content_type=content_type or DEFAULT_TYPE,
            last_modified=datetime.fromtimestamp(mtime_ns / 1e9, UTC),
        )
        _write_meta(where, info, mtime_ns)
        if not where.is_folder:
            os.replace(written.temp, where.data)
            _fsync_dir(where.data.parent)
    except BaseException:
        written.temp.unlink(missing_ok=True)
        raise
    return info


def place_file(root: Path, bucket: str, key: str, source: Path) -> None:
    """Put a file of this server's as the object `key`: a hard link where the folders share a
    file system (a staged dataset archive costs no copy), else a copy; atomically either way.
    Its ETag is worked out from the bytes when first asked for."""
    where = object_path(root, bucket, key)
    if where.is_folder:
        raise errors.invalid_argument("a key ending in '/' names a folder")
    _make_folder(where.folder)
    temp = temp_in(where.folder)
    try:
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
        _clear_stale_meta(where)
        os.replace(temp, where.data)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _write_meta(where: ObjectPath, info: ObjectInfo, mtime_ns: int) -> None:
    _clear_stale_meta(where)
    where.meta.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "etag": info.etag,
        "size": info.size,
        "content_type": info.content_type,
        "mtime_ns": mtime_ns,
    }
    temp = temp_in(where.meta.parent)
    temp.write_text(json.dumps(doc))
    os.replace(temp, where.meta)


def _clear_stale_meta(where: ObjectPath) -> None:
    """Metadata of an object since removed by other means may stand where this key's must go
    (a file where a folder of the mirror is needed, or the reverse): the data tree allowed
    this key, so what stands there is stale."""
    meta_root = where.bucket_dir / META_DIR
    probe = meta_root
    for part in where.meta.parent.relative_to(meta_root).parts:
        probe = probe / part
        if probe.is_symlink() or (probe.exists() and not probe.is_dir()):
            probe.unlink()
            break
    if where.meta.is_dir() and not where.meta.is_symlink():
        shutil.rmtree(where.meta, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def md5_etag(digest: bytes) -> str:
    return f'"{digest.hex()}"'


def head(root: Path, bucket: str, key: str) -> ObjectInfo:
    where = object_path(root, bucket, key)
    if not where.bucket_dir.is_dir():
        raise errors.no_such_bucket()
    return _info(where, key)


def _info(where: ObjectPath, key: str) -> ObjectInfo:
    try:
        stat = where.data.stat()
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise errors.no_such_key() from exc
    if where.is_folder != os.path.isdir(where.data) or (
        where.is_folder and not where.meta.exists()
    ):
        raise errors.no_such_key()
    modified = datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC)
    try:
        doc = json.loads(where.meta.read_text())
        # A folder's mtime moves with its entries: a folder marker's metadata stays true.
        if where.is_folder or (
            doc["mtime_ns"] == stat.st_mtime_ns and doc["size"] == stat.st_size
        ):
            return ObjectInfo(
                key, int(doc["size"]), str(doc["etag"]), str(doc["content_type"]), modified
            )
        content_type = str(doc["content_type"])
    except (OSError, ValueError, KeyError, TypeError):
        content_type = DEFAULT_TYPE
    # Not written by this store, or changed since: the ETag from the bytes, kept for next time.
    info = ObjectInfo(key, stat.st_size, md5_etag(_file_md5(where.data)), content_type, modified)
    with contextlib.suppress(OSError):
        _write_meta(where, info, stat.st_mtime_ns)
    return info


def _file_md5(path: Path) -> bytes:
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(WRITE_BATCH):
            md5.update(chunk)
    return md5.digest()


def delete(root: Path, bucket: str, key: str) -> None:
    """S3 answers a delete of a missing key as done; so do we. Folders left empty go."""
    where = object_path(root, bucket, key)
    if not where.bucket_dir.is_dir():
        raise errors.no_such_bucket()
    with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
        where.meta.unlink()
    if not where.is_folder:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            where.data.unlink()
    _prune(where.meta.parent, where.bucket_dir, None)
    _prune(where.folder, where.bucket_dir, where.bucket_dir / META_DIR)


def _prune(folder: Path, stop: Path, meta_root: Path | None) -> None:
    """Remove `folder` and its parents below `stop` while they are empty; with `meta_root`
    (the data tree), not a folder that a folder marker keeps."""
    while folder != stop and stop in folder.parents:
        if meta_root is not None:
            rel = folder.relative_to(stop)
            if (meta_root / rel / DIR_MARKER).exists():
                return
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def buckets(root: Path) -> list[BucketInfo]:
    if not root.is_dir():
        return []
    found = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            check_bucket(entry.name)
        except errors.InvalidInputError:
            continue
        found.append(BucketInfo(entry.name, datetime.fromtimestamp(entry.stat().st_mtime, UTC)))
    return found


def walk_keys(bucket_dir: Path, *, prefix: str, after: str) -> Iterator[str]:
    """The keys under `prefix`, greater than `after`, in S3's order (UTF-8 bytes, which for
    str is code point order): each folder's entries sorted as `name/` for folders, `name` for
    files, which orders the whole tree as its keys."""
    # Start in the deepest folder every key under the prefix shares.
    base = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    folder = bucket_dir / base.rstrip("/") if base else bucket_dir
    meta = bucket_dir / META_DIR / base.rstrip("/") if base else bucket_dir / META_DIR
    yield from _walk(folder, meta, base, prefix, after)


def _walk(folder: Path, meta: Path, rel: str, prefix: str, after: str) -> Iterator[str]:
    """`meta`: the folder's mirror in the metadata tree, where its folder marker is."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    named = []
    for entry in entries:
        if entry.name == META_DIR and rel and entry.is_dir(follow_symlinks=False):
            _adopt_legacy_meta(Path(entry.path), meta)
        if entry.name.startswith(RESERVED):
            continue
        is_dir = entry.is_dir(follow_symlinks=False)
        if not is_dir and not entry.is_file(follow_symlinks=False):
            continue  # links and devices are not objects
        named.append((rel + entry.name + ("/" if is_dir else ""), is_dir))
    if rel and (meta / DIR_MARKER).exists():
        named.append((rel, False))  # the folder marker, first in its folder's order
    for key, is_dir in sorted(named):
        if is_dir:
            # Skip a subtree whose keys all sort at or before `after`, or miss the prefix.
            if not (key.startswith(prefix) or prefix.startswith(key)):
                continue
            if key < after and not after.startswith(key):
                continue
            name = key[len(rel) : -1]
            yield from _walk(folder / name, meta / name, key, prefix, after)
        elif key > after and key.startswith(prefix):
            yield key


def _adopt_legacy_meta(legacy: Path, mirror: Path) -> None:
    """Metadata of the earlier layout, a `.ct~meta` folder beside the objects (which a trainer
    reading a dataset's folder tripped on), moves to the mirror tree when its folder is listed;
    its entries keep their names (an object's name, or the folder marker's)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(legacy):
            source = Path(entry.path)
            target = mirror / entry.name
            if entry.name.startswith(f"{RESERVED}tmp-") or target.exists():
                source.unlink()
                continue
            mirror.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        legacy.rmdir()


def info_of(root: Path, bucket: str, key: str) -> ObjectInfo | None:
    """For listings: None when the key went away since it was walked."""
    try:
        return _info(object_path(root, bucket, key), key)
    except (errors.NotFoundError, OSError):
        return None
