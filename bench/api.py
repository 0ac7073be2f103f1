"""API benchmark: job list and job detail against the ceiling of this stack.

Fills a fresh store with N jobs and starts two server processes with the uvicorn options of
`cloudtune server`: cloudtune's app, and the ceiling, a bare Starlette app in a process of its
own answering the same bytes from memory (same server and protocol, no framework work, no
middleware, no database). Drives both with wrk at 32 connections, interleaved. Then measures
first-page latency at 1 000 and 1 000 000 jobs.

    python bench/api.py [--jobs 10000] [--duration 5] [--rounds 2] [--big 1000000]

About three minutes with the defaults (a third of it seeding the million jobs).

Needs wrk (Debian package `wrk`; installed here when missing and running as root).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

CONNECTIONS = 32
_STORED = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a datetime in SQLite


def seed(database_url: str, count: int) -> str:
    """Insert `count` jobs in bulk (with matching counts rows) into a fresh SQLite store, through
    the driver (values stored as SQLAlchemy stores them: naive UTC ISO text, JSON text);
    returns one job id."""
    import json
    import sqlite3

    from sqlalchemy.engine import make_url

    from cloudtune.store.db import Database
    from cloudtune.store.tables import JobModel

    db = Database(database_url)
    db.migrate()
    db.dispose()
    columns = [c.name for c in JobModel.__table__.c]
    start = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=count)
    statuses = ["completed"] * 8 + ["failed", "cancelled"]
    constant = {
        "job_type": "local",
        "provider": "local",
        "config_name": "bench-config",
        "user_id": None,
        "priority": 0,
        "hardware_type": "CPU (2 cores)",
        "hardware_profile": "local",
        "price_per_hour_micros": 0,
        "estimated_cost_micros": 0,
        "progress": json.dumps({"step": 30, "total_steps": 30, "loss": 0.91, "lr": 0.001}),
        "outputs": "[]",
        "metadata": json.dumps({"model_family": "reference"}),
        "config_snapshot": json.dumps({"config": {"--max_train_steps": 30}}),
        "provider_data": "{}",
        "publishes": 0,  # none publishes: the common case (a publishing job's page reads more)
    }
    some_id = ""

    def rows(base: int, end: int) -> Any:
        nonlocal some_id
        for i in range(base, end):
            created = start + timedelta(seconds=i)
            at = created.strftime(_STORED)
            job_id = some_id = uuid.uuid4().hex
            values = {
                **constant,
                "job_id": job_id,
                "status": statuses[i % len(statuses)],
                "tracker_run_name": f"run-{i}",
                "created_at": at,
                "updated_at": at,
                "queued_at": at,
                "started_at": (created + timedelta(seconds=5)).strftime(_STORED),
                "completed_at": (created + timedelta(minutes=9)).strftime(_STORED),
                "output_url": f"/data/outputs/run-{i}",
                "provider_ref": job_id,
            }
            yield tuple(values.get(name) for name in columns)

    marks = ", ".join("?" for _ in columns)
    connection = sqlite3.connect(str(make_url(database_url).database))
    connection.execute("PRAGMA cache_size = -262144")  # 256 MiB: the indexes stay in memory
    with connection:
        for base in range(0, count, 50_000):
            connection.executemany(
                f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({marks})",
                rows(base, min(count, base + 50_000)),
            )
        connection.execute(
            "INSERT INTO job_counts (user_key, provider, job_type, status, count) "
            "SELECT '', provider, job_type, status, count(*) FROM jobs "
            "GROUP BY provider, job_type, status"
        )
    connection.close()
    return some_id


def serve(home: str, port: int, cache_ttl: float) -> None:
    """The server process: cloudtune's app, as `cloudtune server` runs it."""
    import uvicorn

    from cloudtune.api.app import create_app
    from cloudtune.cli.server import UVICORN_OPTIONS
    from cloudtune.settings import Settings

    settings = Settings(
        home=Path(home), port=port, log_level="warning", response_cache_ttl_seconds=cache_ttl
    )
    app = create_app(settings)
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, **UVICORN_OPTIONS
    )


def serve_ceiling(port: int) -> None:
    """The ceiling process: a bare Starlette app on the same uvicorn options, answering bodies
    put into it from memory."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from cloudtune.cli.server import UVICORN_OPTIONS

    bodies: dict[str, bytes] = {}

    async def ceiling(request: Request) -> Response:
        if request.method == "PUT":
            bodies[request.path_params["name"]] = await request.body()
            return Response(b"{}", media_type="application/json")
        return Response(bodies[request.path_params["name"]], media_type="application/json")

    async def health(_request: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    app = Starlette(
        routes=[
            Route("/bench/ceiling/{name}", ceiling, methods=["GET", "PUT"]),
            Route("/health", health),
        ]
    )
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, **UVICORN_OPTIONS
    )


def wrk(url: str, duration: int, connections: int = CONNECTIONS) -> dict[str, float]:
    threads = 2 if connections > 1 else 1
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    percentiles = {p: _ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} error responses\n{out}")
    return {"rps": rps, "p50_ms": percentiles["50"], "p99_ms": percentiles["99"]}


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


class Server:
    def __init__(self, *args: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, __file__, *args, "--port", str(self.port)],
            env={**os.environ, "CLOUDTUNE_LOG_LEVEL": "warning"},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    @classmethod
    def cloudtune(cls, home: Path, *, cache_ttl: float = 1.0) -> Server:
        return cls("--serve", str(home), "--cache-ttl", str(cache_ttl))

    @classmethod
    def ceiling(cls) -> Server:
        return cls("--serve-ceiling")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def mirror(server: Server, ceiling: Server, name: str, path: str) -> int:
    """Make the ceiling's endpoint `name` answer the bytes of `path`; returns the size."""
    body = httpx.get(server.url + path).content
    httpx.put(f"{ceiling.url}/bench/ceiling/{name}", content=body)
    assert httpx.get(f"{ceiling.url}/bench/ceiling/{name}").content == body
    return len(body)


def side_by_side(
    server: Server, bare: Server, name: str, path: str, duration: int, rounds: int
) -> dict[str, Any]:
    size = mirror(server, bare, name, path)
    ours, ceiling = [], []
    wrk(server.url + path, 1)  # warm up both
    wrk(f"{bare.url}/bench/ceiling/{name}", 1)
    for _ in range(rounds):
        ceiling.append(wrk(f"{bare.url}/bench/ceiling/{name}", duration))
        ours.append(wrk(server.url + path, duration))
    best = max(ours, key=lambda r: r["rps"])
    top = max(ceiling, key=lambda r: r["rps"])
    mean = sum(r["rps"] for r in ours) / rounds
    mean_ceiling = sum(r["rps"] for r in ceiling) / rounds
    return {
        "endpoint": path,
        "body_bytes": size,
        "rps": mean,
        "ceiling_rps": mean_ceiling,
        "ratio": mean / mean_ceiling,
        "p50_ms": best["p50_ms"],
        "p99_ms": max(r["p99_ms"] for r in ours),
        "ceiling_p99_ms": max(r["p99_ms"] for r in ceiling),
        "ceiling_best_rps": top["rps"],
    }


def first_page_latency(count: int, duration: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="cloudtune-bench-") as tmp:
        home = Path(tmp)
        started = time.monotonic()
        seed(f"sqlite:///{home / 'cloudtune.db'}", count)
        seeded = time.monotonic() - started
        # The response cache is off here: this measures the database query behind a page.
        server = Server.cloudtune(home, cache_ttl=0)
        try:
            wrk(f"{server.url}/api/cloud/jobs?limit=10", 1, connections=1)
            single = wrk(f"{server.url}/api/cloud/jobs?limit=10", duration, connections=1)
            total = httpx.get(f"{server.url}/api/cloud/jobs?limit=10").json()["total"]
            assert total == count, (total, count)
        finally:
            server.stop()
    return {
        "jobs": count,
        "p50_ms": single["p50_ms"],
        "p99_ms": single["p99_ms"],
        "seed_seconds": seeded,
    }


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False)
    if not shutil.which("wrk"):
        raise SystemExit("this benchmark needs wrk: apt-get install wrk")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--serve")
    parser.add_argument("--serve-ceiling", action="store_true")
    parser.add_argument("--port", type=int)
    parser.add_argument("--cache-ttl", type=float, default=1.0)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.cache_ttl)
        return
    if args.serve_ceiling:
        serve_ceiling(args.port)
        return
    ensure_wrk()
    print(f"# cloudtune API benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite, {CONNECTIONS} connections (wrk)"
    )
    with tempfile.TemporaryDirectory(prefix="cloudtune-bench-") as tmp:
        home = Path(tmp)
        job_id = seed(f"sqlite:///{home / 'cloudtune.db'}", args.jobs)
        rows = []
        bare = Server.ceiling()
        try:
            for ttl, label in ((1.0, "on (default)"), (0.0, "off")):
                server = Server.cloudtune(home, cache_ttl=ttl)
                try:
                    for name, path in (
                        ("list", "/api/cloud/jobs?limit=10"),
                        ("job", f"/api/cloud/jobs/{job_id}"),
                    ):
                        row = side_by_side(server, bare, name, path, args.duration, args.rounds)
                        rows.append({**row, "cache": label})
                finally:
                    server.stop()
        finally:
            bare.stop()
    print(f"\n{args.jobs} jobs in the store")
    print(
        "| endpoint | response cache | body | req/s | ceiling req/s | ratio | p50 ms | p99 ms "
        "| ceiling p99 ms |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        endpoint = r["endpoint"].replace(job_id, "{id}")
        print(
            f"| `GET {endpoint}` | {r['cache']} | {r['body_bytes']} B | {r['rps']:.0f} | "
            f"{r['ceiling_rps']:.0f} | {r['ratio']:.2f} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['ceiling_p99_ms']:.1f} |"
        )
    small = first_page_latency(args.small, args.duration)
    big = first_page_latency(args.big, args.duration)
    print("\nfirst page (`limit=10`), one connection")
    print("| jobs | p50 ms | p99 ms | seeding s |")
    print("| --- | --- | --- | --- |")
    for r in (small, big):
        print(f"| {r['jobs']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['seed_seconds']:.0f} |")
    print(
        f"\nratio of first-page p50 at {args.big} vs {args.small} jobs: "
        f"{big['p50_ms'] / small['p50_ms']:.2f}"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    main()
