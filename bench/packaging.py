"""Packaging benchmark: zip 1 GiB of generated JPEG-like files, side by side with a plain
sequential read of the same files in the same run, and the packager's peak RSS.

Both passes start from cold files (their pages are dropped from the page cache with
posix_fadvise first), because datasets are read from disk, not from memory. Each pass runs in
its own child process so that its peak RSS is its own.

    python bench/packaging.py [--gib 1] [--file-mib 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

CHUNK = 1024 * 1024


def make_files(folder: Path, total: int, size: int) -> int:
    """JPEG-like files: a JPEG header, then incompressible bytes (as real JPEG data is)."""
    folder.mkdir(parents=True)
    count = max(1, total // size)
    header = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    for i in range(count):
        path = folder / f"img{i:05d}.jpg"
        with open(path, "wb") as f:
            f.write(header + os.urandom(size - len(header) - 2) + b"\xff\xd9")
            f.flush()
            os.fsync(f.fileno())
        (folder / f"img{i:05d}.txt").write_text(f"a photo number {i} of a red square")
    return count


def drop_cache(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def child_read(folder: Path) -> None:
    buffer = bytearray(CHUNK)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb", buffering=0) as f:
                while f.readinto(buffer):
                    pass


def child_zip(folder: Path, out: Path) -> None:
    from cloudtune.domain.principal import LOCAL_ADMIN
    from cloudtune.services.file_access import FileAccessPolicy
    from cloudtune.services.packaging import package, scan_datasets
    from cloudtune.settings import Settings

    policy = FileAccessPolicy.for_caller(Settings(home=out / "home"), LOCAL_ADMIN)
    dataset = {"id": "bench", "instance_data_dir": str(folder)}
    scan = scan_datasets([dataset], policy, max_files=10_000_000)
    result = package(scan, out)
    print(result.size, flush=True)


def run_child(*args: str) -> tuple[float, int, str]:
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    del before  # ru_maxrss of children is the largest child so far; passes are run cheapest first
    return seconds, peak_kib, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--file-mib", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "read":
            child_read(Path(rest[0]))
        else:
            child_zip(Path(rest[0]), Path(rest[1]))
        return

    total = int(args.gib * 1024**3)
    with tempfile.TemporaryDirectory(prefix="cloudtune-pack-", dir="/tmp") as tmp:
        folder = Path(tmp) / "dataset"
        count = make_files(folder, total, int(args.file_mib * CHUNK))
        data_bytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        rows = []
        for round_ in range(args.rounds):
            drop_cache(folder)
            read_s, read_kib, _ = run_child("read", str(folder))
            drop_cache(folder)
            out = Path(tmp) / f"packages-{round_}"
            zip_s, zip_kib, size = run_child("zip", str(folder), str(out))
            rows.append((read_s, zip_s, zip_kib, int(size)))
            shutil.rmtree(out)
    mib = 1024 * 1024
    print(f"# cloudtune packaging benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"{count} JPEG-like files of {args.file_mib} MiB (+ captions), {data_bytes / mib:.0f} MiB"
    )
    print("| round | sequential read MB/s | zip MB/s | ratio | zip peak RSS MB | archive MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for i, (read_s, zip_s, zip_kib, size) in enumerate(rows, 1):
        print(
            f"| {i} | {data_bytes / 1e6 / read_s:.0f} | {data_bytes / 1e6 / zip_s:.0f} | "
            f"{read_s / zip_s:.2f} | {zip_kib / 1024:.0f} | {size / mib:.0f} |"
        )
    total_read, total_zip = sum(r[0] for r in rows), sum(r[1] for r in rows)
    print(f"\nall rounds: ratio {total_read / total_zip:.2f} (zip time vs read time, summed)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    main()
