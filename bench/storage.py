"""Storage benchmark: a 1 GiB boto3 multipart upload to the built-in S3 endpoint, to moto's S3
server, and to a bare streaming sink (the ceiling), in one run, interleaved.

Each target runs in a process of its own on loopback:
- cloudtune: `cloudtune server` with a fresh home; credentials from POST
  /api/cloud/storage/credentials. Its peak RSS is sampled while it receives.
- moto: `moto.server` (the S3 server tests use), a peer.
- sink: a bare Starlette app on its own uvicorn that answers the three multipart calls
  boto3 makes and writes each part's bytes to a file as they arrive, nothing else (no
  signature check, no checksum, no rename): what receiving the bytes costs.

    python bench/storage.py [--size-mib 1024] [--rounds 2] [--part-mib 64]

Prints throughput per target and the ratios cloudtune/moto and cloudtune/sink.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import boto3
import httpx
import psutil
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

SINK_APP = textwrap.dedent(
    """
    import itertools, sys, uuid
    from pathlib import Path
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    ROOT = Path(sys.argv[2])
    counter = itertools.count()

    async def handle(request):
        query = request.query_params
        if request.method == "POST" and "uploads" in query:
            body = ("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                    f"<UploadId>{uuid.uuid4().hex}</UploadId></InitiateMultipartUploadResult>")
            return Response(body, media_type="application/xml")
        if request.method == "PUT":
            with open(ROOT / f"part-{next(counter)}", "wb") as sink:
                async for chunk in request.stream():
                    sink.write(chunk)
            return Response(b"", headers={"ETag": '"0"'})
        if request.method == "POST" and "uploadId" in query:
            await request.body()
            body = ("<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                    '<ETag>"0-1"</ETag></CompleteMultipartUploadResult>')
            return Response(body, media_type="application/xml")
        return Response(b"", status_code=200)

    app = Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "PUT", "POST", "HEAD"])])

    import uvicorn
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the server exited at start")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def make_file(path: Path, size: int) -> None:
    block = os.urandom(4 * 1024 * 1024)
    with path.open("wb") as out:
        left = size
        while left > 0:
            out.write(block[: min(left, len(block))])
            left -= len(block)


class PeakRss:
    """Samples a process tree's resident memory every 50 ms; `peak` in bytes."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                tree = [self.process, *self.process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def client(endpoint: str, key: str, secret: str) -> object:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--part-mib", type=int, default=64)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cloudtune-bench-storage-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        source = work / "upload.bin"
        make_file(source, args.size_mib * 1024 * 1024)

        ours_port, moto_port, sink_port = free_port(), free_port(), free_port()
        home = work / "home"
        env = {**os.environ, "CLOUDTUNE_HOME": str(home)}
        ours = subprocess.Popen(
            [sys.executable, "-m", "cloudtune.cli.main", "server", "--port", str(ours_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        moto = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-p", str(moto_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        (work / "sink").mkdir()
        sink = subprocess.Popen(
            [sys.executable, "-c", SINK_APP, str(sink_port), str(work / "sink")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes += [ours, moto, sink]
        wait_for(f"http://127.0.0.1:{ours_port}/health", ours)
        wait_for(f"http://127.0.0.1:{moto_port}/", moto)
        wait_for(f"http://127.0.0.1:{sink_port}/", sink)

        made = httpx.post(
            f"http://127.0.0.1:{ours_port}/api/cloud/storage/credentials",
            json={"bucket": "bench", "expires_days": 1},
        )
        made.raise_for_status()
        keys = made.json()
        targets = {
            "cloudtune": client(
                f"http://127.0.0.1:{ours_port}/api/cloud/storage",
                keys["access_key_id"],
                keys["secret_access_key"],
            ),
            "moto": client(f"http://127.0.0.1:{moto_port}", "bench", "bench"),
            "sink": client(f"http://127.0.0.1:{sink_port}", "bench", "bench"),
        }
        targets["moto"].create_bucket(Bucket="bench")  # type: ignore[attr-defined]
        part = args.part_mib * 1024 * 1024
        transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part)
        seconds: dict[str, list[float]] = {name: [] for name in targets}
        peak = 0
        for round_ in range(args.rounds):
            for name, s3 in targets.items():
                key = f"{args.size_mib}MiB-{round_}.bin"
                started = time.perf_counter()
                if name == "cloudtune":
                    with PeakRss(ours.pid) as rss:
                        s3.upload_file(str(source), "bench", key, Config=transfer)  # type: ignore[attr-defined]
                    peak = max(peak, rss.peak)
                else:
                    s3.upload_file(str(source), "bench", key, Config=transfer)  # type: ignore[attr-defined]
                seconds[name].append(time.perf_counter() - started)
                shutil.rmtree(work / "sink", ignore_errors=True)
                (work / "sink").mkdir(exist_ok=True)
        mib = args.size_mib
        best = {name: min(times) for name, times in seconds.items()}
        for name, times in seconds.items():
            runs = ", ".join(f"{t:.2f} s" for t in times)
            print(f"{name:10s} {mib / best[name]:8.1f} MiB/s (best of {runs})")
        print(f"cloudtune / moto: {best['moto'] / best['cloudtune']:.2f}")
        print(f"cloudtune / sink: {best['sink'] / best['cloudtune']:.2f}")
        print(f"cloudtune server peak RSS while receiving: {peak / 1024 / 1024:.0f} MiB")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
