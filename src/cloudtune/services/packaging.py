"""Packaging local datasets for a remote provider: one zip, streamed from disk with constant
memory. Images and other compressed files are stored, text is deflated; secrets, junk, the
server's own state folder and symlinks that leave their dataset are left out and listed.
Packaging the same unchanged files again reuses the archive made before.

The zip is written with the standard library's `zipfile`, which streams each member through a
fixed buffer; its CRC-32s double as the content hash that names the archive.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import queue
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any

from cloudtune.errors import InvalidInputError, PayloadTooLargeError
from cloudtune.services.file_access import FileAccessPolicy
from cloudtune.services.storage.names import META_DIR

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
EXCLUDED_DIRS = frozenset({".git", ".aws", ".ssh", "__pycache__", ".gnupg", ".azure"})
EXCLUDED_FILES = (".env*", "*credentials*", "*.pem", "*.key", ".DS_Store")
STORED_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".png",
        ".webp",
        ".gif",
        ".avif",
        ".heic",
        ".zip",
        ".gz",
        ".bz2",
        ".xz",
        ".zst",
        ".7z",
        ".mp4",
        ".webm",
        ".mov",
        ".mkv",
        ".mp3",
        ".flac",
        ".ogg",
        ".safetensors",
        ".parquet",
    }
)
_BUFFER = 1024 * 1024
_QUEUED_CHUNKS = 16
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@dataclass(frozen=True, slots=True)
class PackedFile:
    source: Path
    arcname: str
    size: int
    mtime_ns: int


PREVIEW_FILES = 100  # files listed by name in a preview; the rest are counted
EXAMPLES_PER_RULE = 20


@dataclass(slots=True)
class ExcludedGroup:
    """Files left out for one reason: how many, and the first few of them by name."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, name: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES_PER_RULE:
            self.examples.append(name)


@dataclass(slots=True)
class DatasetStats:
    id: str
    path: str
    archive_folder: str
    files: int = 0
    images: int = 0
    bytes: int = 0


@dataclass(slots=True)
class DatasetScan:
    files: list[PackedFile] = field(default_factory=list)
    excluded: dict[str, ExcludedGroup] = field(default_factory=dict)
    datasets: list[DatasetStats] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def exclude(self, rule: str, name: str) -> None:
        self.excluded.setdefault(rule, ExcludedGroup()).add(name)

    def excluded_names(self, limit: int = PREVIEW_FILES) -> list[str]:
        names = [f"{n} ({rule})" for rule, g in self.excluded.items() for n in g.examples]
        return names[:limit]

    def manifest_key(self) -> str:
        listing = [(f.arcname, f.size, f.mtime_ns) for f in self.files]
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()

    def first_files(self, limit: int = PREVIEW_FILES) -> list[PackedFile]:
        return self.files[:limit]


@dataclass(frozen=True, slots=True)
class Package:
    path: Path
    size: int
    content_hash: str
    reused: bool
    files: int


def scan_datasets(
    datasets: list[dict[str, Any]], policy: FileAccessPolicy, *, max_files: int
) -> DatasetScan:
    """List what would leave the machine. Each dataset folder has passed the file access
    policy already; inside it, whatever the policy would refuse is skipped and listed as
    excluded: the server's home, symlinks that leave the dataset, files the policy may not
    read, and anything that is not a regular file (a FIFO would block the reader)."""
    scan = DatasetScan()
    used_folders: set[str] = set()
    for index, entry in enumerate(datasets):
        dataset_id = str(entry.get("id") or f"dataset-{index}")
        folder = f"datasets/{_safe_name(dataset_id)}"
        if folder in used_folders:
            folder = f"{folder}-{index}"
        used_folders.add(folder)
        root = Path(entry["instance_data_dir"])
        stats = DatasetStats(dataset_id, str(root), folder)
        scan.datasets.append(stats)
        for directory, dirnames, filenames in os.walk(root, followlinks=False):
            here = Path(directory)
            if META_DIR in dirnames:
                # The built-in S3 endpoint's metadata beside the objects of an uploaded
                # dataset: the server's own bookkeeping, not a file of the dataset.
                dirnames.remove(META_DIR)
            for name in sorted(dirnames):
                path = here / name
                label = f"{dataset_id}/{printable(path.relative_to(root).as_posix())}/"
                rule = _excluded_dir_rule(name, path, policy)
                if rule is None and printable(name) != name:
                    rule = "name not valid UTF-8"
                if rule:
                    scan.exclude(rule, label)
                    dirnames.remove(name)
            dirnames.sort()
            for name in sorted(filenames):
                path = here / name
                relative = path.relative_to(root).as_posix()
                if printable(relative) != relative:
                    # Not valid UTF-8: no archive entry or answer could carry the name.
                    scan.exclude("name not valid UTF-8", f"{dataset_id}/{printable(relative)}")
                    continue
                rule, source, stat = _excluded_file_rule(name, path, root, policy)
                if rule or stat is None:
                    scan.exclude(rule or "unreadable", f"{dataset_id}/{relative}")
                    continue
                if len(scan.files) >= max_files:
                    raise PayloadTooLargeError(
                        f"the datasets hold more than {max_files} files "
                        "(CLOUDTUNE_MAX_DATASET_FILES); name a smaller folder",
                        code="dataset_too_many_files",
                        limit_files=max_files,
                    )
                scan.files.append(
                    PackedFile(source, f"{folder}/{relative}", stat.st_size, stat.st_mtime_ns)
                )
                stats.files += 1
                stats.bytes += stat.st_size
                stats.images += path.suffix.lower() in IMAGE_SUFFIXES
    return scan


def _excluded_dir_rule(name: str, path: Path, policy: FileAccessPolicy) -> str | None:
    if name in EXCLUDED_DIRS:
        return "secrets and junk"
    if path.is_symlink():
        return "symlinked folder"
    if policy.is_protected(path):
        return "server state folder"
    return None


def _excluded_file_rule(
    name: str, path: Path, root: Path, policy: FileAccessPolicy
) -> tuple[str | None, Path, os.stat_result | None]:
    """(the rule that leaves the file out, the file to read, its stat); the file to read is
    the symlink's resolved target, so the reader never follows a link itself."""
    if any(fnmatch.fnmatch(name, pattern) for pattern in EXCLUDED_FILES):
        return "secrets and junk", path, None
    target = path
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if not target.is_relative_to(root):
            return "symlink leaving the dataset", path, None
    if not policy.may_read(target):
        return "not allowed by the file access policy", path, None
    try:
        stat = target.stat()
    except OSError:
        return "unreadable", path, None
    if not S_ISREG(stat.st_mode):
        return "not a regular file", path, None
    return None, target, stat


def package(scan: DatasetScan, packages_dir: Path) -> Package:
    """Write (or reuse) the zip of a scan; one writer per dataset at a time."""
    key = scan.manifest_key()
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:
        return _package(scan, packages_dir)


def _package(scan: DatasetScan, packages_dir: Path) -> Package:
    packages_dir.mkdir(parents=True, exist_ok=True)
    index_path = packages_dir / f"{scan.manifest_key()}.json"
    index = _read_index(index_path)
    if index is not None:
        archive = packages_dir / index.archive
        if archive.is_file() and archive.stat().st_size == index.size:
            return Package(archive, index.size, index.content_hash, True, len(scan.files))
    tmp = packages_dir / f".{scan.manifest_key()}.{os.getpid()}.{threading.get_ident()}.partial"
    digest = hashlib.sha256()
    reader = _ChunkReader(scan.files)
    try:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
            for item in scan.files:
                info = zipfile.ZipInfo.from_file(item.source, item.arcname)
                stored = item.source.suffix.lower() in STORED_SUFFIXES
                info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
                with zf.open(info, "w", force_zip64=True) as dst:
                    for chunk in reader.chunks_of(item):
                        dst.write(chunk)
                digest.update(f"{item.arcname}\0{info.CRC}\0{info.file_size}\n".encode())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidInputError(
            f"could not package the dataset: {exc.strerror or exc} ({exc.filename or ''})",
            code="packaging_failed",
        ) from None
    finally:
        reader.stop()
    content_hash = digest.hexdigest()
    archive = packages_dir / f"{content_hash}.zip"
    tmp.replace(archive)
    size = archive.stat().st_size
    index_path.write_text(
        json.dumps({"archive": archive.name, "size": size, "content_hash": content_hash})
    )
    return Package(archive, size, content_hash, False, len(scan.files))


class _ChunkReader:
    """Reads the files in order on a second thread, a bounded queue of chunks ahead of the
    writer: the disk keeps streaming while the zip checksums and writes (file reads, CRC-32
    and writes all release the GIL). Memory stays at most `_QUEUED_CHUNKS` × 1 MiB."""

    def __init__(self, files: list[PackedFile]) -> None:
        self._queue: queue.Queue[bytes | None | OSError] = queue.Queue(maxsize=_QUEUED_CHUNKS)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(files,), daemon=True)
        self._thread.start()

    def chunks_of(self, item: PackedFile) -> Iterator[bytes]:
        while True:
            chunk = self._queue.get()
            if isinstance(chunk, OSError):
                raise chunk
            if chunk is None:  # end of this file
                return
            yield chunk

    def stop(self) -> None:
        self._stopped.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.1)

    def _read(self, files: list[PackedFile]) -> None:
        try:
            for item in files:
                # O_NOFOLLOW: the scan resolved every link; a file swapped for a link since
                # then is refused rather than followed.
                fd = os.open(item.source, os.O_RDONLY | os.O_NOFOLLOW)
                with open(fd, "rb", buffering=0) as src:
                    while not self._stopped.is_set():
                        chunk = src.read(_BUFFER)
                        if not chunk:
                            break
                        self._queue.put(chunk)
                self._queue.put(None)
        except OSError as exc:
            self._queue.put(exc)


def remote_dataloader(
    dataloader: list[dict[str, Any]], scan: DatasetScan, local: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The dataloader as the remote trainer sees it: local folders become archive folders.
    `local` is the list the scan was made from, so its n-th entry is the scan's n-th dataset
    (matched by position: two datasets may share an id)."""
    out = []
    for entry in dataloader:
        copy = dict(entry)
        position = next((i for i, d in enumerate(local) if d is entry), None)
        if position is not None:
            copy["instance_data_dir"] = scan.datasets[position].archive_folder
        out.append(copy)
    return out


def printable(text: str) -> str:
    """`text` as valid Unicode: undecodable bytes of a file name (or lone surrogates of a JSON
    escape) shown as backslash escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "dataset"


@dataclass(frozen=True, slots=True)
class _Index:
    """What a manifest's index file says: the archive made from it before."""

    archive: str
    size: int
    content_hash: str


def _read_index(path: Path) -> _Index | None:
    try:
        data = json.loads(path.read_text())
        index = _Index(str(data["archive"]), int(data["size"]), str(data["content_hash"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # Only a plain file name: an index edited to point elsewhere is ignored.
    return index if Path(index.archive).name == index.archive else None
