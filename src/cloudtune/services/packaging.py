"""Packaging local datasets for a remote provider: one zip, streamed from disk with constant
memory. Images and other compressed files are stored, text is deflated; secrets and junk are left
out; a symlink that leaves its dataset refuses the whole package. Packaging the same unchanged
files again reuses the archive made before.

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
from typing import Any

from cloudtune.errors import InvalidInputError

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


@dataclass(slots=True)
class DatasetScan:
    files: list[PackedFile] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    roots: dict[str, str] = field(default_factory=dict)  # dataset id -> folder in the archive

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def manifest_key(self) -> str:
        listing = [(f.arcname, f.size, f.mtime_ns) for f in self.files]
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()

    def summary(self) -> list[dict[str, Any]]:
        out = []
        for dataset_id, folder in self.roots.items():
            mine = [f for f in self.files if f.arcname.startswith(folder + "/")]
            out.append(
                {
                    "id": dataset_id,
                    "archive_folder": folder,
                    "files": [{"path": f.arcname, "bytes": f.size} for f in mine],
                    "file_count": len(mine),
                    "bytes": sum(f.size for f in mine),
                }
            )
        return out


@dataclass(frozen=True, slots=True)
class Package:
    path: Path
    size: int
    content_hash: str
    reused: bool
    files: int


def scan_datasets(datasets: list[dict[str, Any]]) -> DatasetScan:
    """List what would leave the machine, refusing symlinks that point outside a dataset."""
    scan = DatasetScan()
    for index, entry in enumerate(datasets):
        dataset_id = str(entry.get("id") or f"dataset-{index}")
        folder = f"datasets/{_safe_name(dataset_id)}"
        if folder in scan.roots.values():
            folder = f"{folder}-{index}"
        scan.roots[dataset_id] = folder
        root = Path(entry["instance_data_dir"]).resolve()
        for directory, dirnames, filenames in os.walk(root, followlinks=False):
            here = Path(directory)
            for name in sorted(dirnames):
                path = here / name
                relative = path.relative_to(root).as_posix()
                if name in EXCLUDED_DIRS:
                    scan.excluded.append(f"{dataset_id}/{relative}/")
                    dirnames.remove(name)
                elif path.is_symlink():
                    _check_link(path, root, dataset_id)
                    scan.excluded.append(f"{dataset_id}/{relative}/ (symlinked folder)")
                    dirnames.remove(name)
            dirnames.sort()
            for name in sorted(filenames):
                path = here / name
                relative = path.relative_to(root).as_posix()
                if any(fnmatch.fnmatch(name, pattern) for pattern in EXCLUDED_FILES):
                    scan.excluded.append(f"{dataset_id}/{relative}")
                    continue
                if path.is_symlink():
                    _check_link(path, root, dataset_id)
                stat = path.stat()
                scan.files.append(
                    PackedFile(path, f"{folder}/{relative}", stat.st_size, stat.st_mtime_ns)
                )
    return scan


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
        archive = packages_dir / index["archive"]
        if archive.is_file() and archive.stat().st_size == index["size"]:
            return Package(archive, index["size"], index["content_hash"], True, len(scan.files))
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
                with open(item.source, "rb", buffering=0) as src:
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
    """The dataloader as the remote trainer sees it: local folders become archive folders."""
    out = []
    for entry in dataloader:
        copy = dict(entry)
        position = next((i for i, d in enumerate(local) if d is entry), None)
        if position is not None:
            dataset_id = str(entry.get("id") or f"dataset-{position}")
            copy["instance_data_dir"] = scan.roots.get(dataset_id, copy["instance_data_dir"])
        out.append(copy)
    return out


def _check_link(path: Path, root: Path, dataset_id: str) -> None:
    target = path.resolve()
    if target != root and root not in target.parents:
        raise InvalidInputError(
            f"dataset '{dataset_id}': {path} is a symlink to {target}, outside the dataset; "
            "it would send files you did not choose, so the package is refused",
            code="symlink_outside_dataset",
            dataset=dataset_id,
        )


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "dataset"


def _read_index(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
