"""Ray submit → running latency: our API against the bare Ray Jobs API on the same test cluster.

Starts a throwaway single-node Ray head (tests/ray_cluster.py) and, per reconcile interval
measured, a `cloudtune server` process with the ray provider configured for that head. Each
round, one job at a time:

- the ceiling, a client in a process of its own: `POST /api/jobs/` of a trivial entrypoint
  (`python -c "import time; time.sleep(3)"`, the same entrypoint resources as ours), then
  `GET /api/jobs/<id>` every 20 ms; time from before the POST to the first RUNNING, and to
  SUCCEEDED;
- ours: `POST /api/cloud/jobs/submit?provider=ray` of a small reference job (4 images of 32 px,
  20 steps), then `GET /api/cloud/jobs/<id>` every 20 ms; time from before the POST to the first
  `running`, and to `completed`. Meanwhile a thread lists Ray's jobs every 20 ms (our job id is
  only known once the submit answers), which dates when Ray had our job and when it ran it.
  Those split our latency into the submit call, Ray's scheduling, and the time until our API
  says running.

    python bench/ray_latency.py [--rounds 5] [--intervals default,1]

About five minutes with the defaults. Leaves no process behind (the head and the servers are
stopped, and checked for, at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
POLL_SECONDS = 0.02
ROUND_TIMEOUT = 300.0
CEILING_ENTRYPOINT = 'python -c "import time; time.sleep(3)"'
# The test cluster has no GPU; the same entrypoint resources for the ceiling and ours.
RESOURCES = {"entrypoint_num_gpus": 0, "entrypoint_num_cpus": 0.5}
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


# -- the ceiling, run in a process of its own ---------------------------------------------------


def ceiling_round(address: str) -> dict[str, float]:
    """One bare Ray job: seconds from before the POST to RUNNING and to SUCCEEDED."""
    submission_id = f"ceiling-{uuid.uuid4().hex[:12]}"
    body = {"entrypoint": CEILING_ENTRYPOINT, "submission_id": submission_id, **RESOURCES}
    with httpx.Client(base_url=address, timeout=30) as http:
        began = time.monotonic()
        http.post("/api/jobs/", json=body).raise_for_status()
        posted = time.monotonic() - began
        running = None
        deadline = began + ROUND_TIMEOUT
        while time.monotonic() < deadline:
            status = http.get(f"/api/jobs/{submission_id}").json()["status"]
            now = time.monotonic() - began
            if status == "RUNNING" and running is None:
                running = now
            if status in TERMINAL:
                if status != "SUCCEEDED":
                    raise RuntimeError(f"the ceiling's job ended {status}")
                http.delete(f"/api/jobs/{submission_id}")
                return {"post": posted, "running": running or now, "done": now}
            time.sleep(POLL_SECONDS)
    raise RuntimeError(f"the ceiling's job did not end in {ROUND_TIMEOUT:.0f} s")


def run_ceiling(address: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--ceiling-round", address],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


# -- ours ---------------------------------------------------------------------------------------


class Server:
    """`cloudtune server` in a process of its own, as an operator starts it."""

    def __init__(self, home: Path, ray_address: str, interval: float | None) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "CLOUDTUNE_HOME": str(home),
            "CLOUDTUNE_DATABASE_URL": f"sqlite:///{home / 'cloudtune.db'}",
            "CLOUDTUNE_RAY_ADDRESS": ray_address,
            "CLOUDTUNE_LOG_LEVEL": "warning",
        }
        env.pop("CLOUDTUNE_RECONCILE_INTERVAL_SECONDS", None)
        if interval is not None:
            env["CLOUDTUNE_RECONCILE_INTERVAL_SECONDS"] = str(interval)
        home.mkdir(parents=True, exist_ok=True)
        self.log = home.parent / f"server-{port}.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cloudtune.cli.main", "server", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start; see {self.log}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError("the server did not answer /health")
        settings = {**RESOURCES, "python": sys.executable}
        saved = httpx.put(f"{self.url}/api/cloud/providers/ray", json=settings, timeout=30)
        saved.raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


class RayWatch(threading.Thread):
    """Lists Ray's jobs every 20 ms and dates (monotonic) each new job's first sight, RUNNING and
    end, and keeps Ray's own `start_time` (epoch ms: when Ray took the submit)."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self._http = httpx.Client(base_url=address, timeout=30)
        self._known = {j["submission_id"] for j in self._list()}
        self.seen: dict[str, dict[str, float]] = {}
        self._done = threading.Event()

    def _list(self) -> list[dict[str, Any]]:
        return self._http.get("/api/jobs/").json()  # type: ignore[no-any-return]

    def run(self) -> None:
        while not self._done.is_set():
            now = time.monotonic()
            for job in self._list():
                sid = job.get("submission_id")
                if sid is None or sid in self._known:
                    continue
                times = self.seen.setdefault(sid, {"seen": now, "start_ms": job["start_time"]})
                if job["status"] in ("RUNNING", *TERMINAL):
                    times.setdefault("running", now)
                if job["status"] in TERMINAL:
                    times.setdefault("done", now)
            time.sleep(POLL_SECONDS)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)
        self._http.close()


def our_round(server: Server, ray_address: str, body: dict[str, Any]) -> dict[str, float]:
    """One job through our API; seconds from before the submit's POST to each milestone."""
    watch = RayWatch(ray_address)
    watch.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            began, began_wall = time.monotonic(), time.time()
            answer = http.post("/api/cloud/jobs/submit?provider=ray", json=body)
            submitted = time.monotonic() - began
            answer.raise_for_status()
            job_id = answer.json()["job_id"]
            running = progress = None
            deadline = began + ROUND_TIMEOUT
            while time.monotonic() < deadline:
                job = http.get(f"/api/cloud/jobs/{job_id}").json()["job"]
                now = time.monotonic() - began
                if job["status"] in ("running", "completed") and running is None:
                    running = now
                if (job.get("progress") or {}).get("step") and progress is None:
                    progress = now
                if job["status"] in ("completed", "failed", "cancelled"):
                    if job["status"] != "completed":
                        raise RuntimeError(f"job {job_id} {job['status']}: {job}")
                    break
                time.sleep(POLL_SECONDS)
            else:
                raise RuntimeError(f"job {job_id} did not end in {ROUND_TIMEOUT:.0f} s")
    finally:
        watch.stop()
    ray = watch.seen[job_id]
    httpx.delete(f"{ray_address}/api/jobs/{job_id}", timeout=30)
    return {
        "submit_call": submitted,
        # Ray's clock and ours are the same machine's.
        "ray_accepted": ray["start_ms"] / 1000 - began_wall,
        "ray_running": ray["running"] - began,
        "running": running or now,
        "first_progress": progress or now,
        "ray_done": ray["done"] - began,
        "done": now,
    }


# -- the run ------------------------------------------------------------------------------------


def measure(
    ray_address: str, intervals: list[float | None], rounds: int, tmp: Path
) -> list[dict[str, Any]]:
    """Every interval's server is started first; then each round runs the ceiling and ours for
    one interval after another, so load from others on the machine falls on all of them."""
    from tests.factories import job_body, make_dataset

    dataset = make_dataset(tmp / "dataset", 4, size=32)
    body = job_body(dataset, tmp / "unused-output", steps=20)
    servers: list[Server] = []
    try:
        for interval in intervals:
            servers.append(Server(tmp / f"home-{_label(interval)}", ray_address, interval))
        results: list[dict[str, Any]] = [
            {"interval": interval, "ours": [], "ceiling": []} for interval in intervals
        ]
        run_ceiling(ray_address)  # warm-ups: Ray's worker pool, each server's first submit
        for server in servers:
            our_round(server, ray_address, body)
        for n in range(rounds):
            for server, result in zip(servers, results, strict=True):
                ceiling = run_ceiling(ray_address)
                ours = our_round(server, ray_address, body)
                result["ceiling"].append(ceiling)
                result["ours"].append(ours)
                print(
                    f"  round {n + 1}, interval {_label(result['interval'])}: ceiling running "
                    f"{ceiling['running']:.2f} s, done {ceiling['done']:.2f} s; ours running "
                    f"{ours['running']:.2f} s (Ray: {ours['ray_running']:.2f} s), done "
                    f"{ours['done']:.2f} s (Ray: {ours['ray_done']:.2f} s)",
                    file=sys.stderr,
                )
    finally:
        for server in servers:
            server.stop()
    return results


def _label(interval: float | None) -> str:
    return "5 s (default)" if interval is None else f"{interval:g} s"


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def report(results: list[dict[str, Any]]) -> None:
    print(
        "\n| reconcile interval | to running: ours median / max | ceiling median / max "
        "| ratio of medians | ours after Ray's RUNNING median / max | to completed: ours median "
        "| ceiling to SUCCEEDED (a 3 s job) median |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        ours, ceiling = r["ours"], r["ceiling"]
        lag = [o["running"] - o["ray_running"] for o in ours]
        print(
            f"| {_label(r['interval'])} "
            f"| {median(ours, 'running'):.2f} / {_max(ours, 'running'):.2f} s "
            f"| {median(ceiling, 'running'):.2f} / {_max(ceiling, 'running'):.2f} s "
            f"| {median(ours, 'running') / median(ceiling, 'running'):.2f} "
            f"| {statistics.median(lag):.2f} / {max(lag):.2f} s "
            f"| {median(ours, 'done'):.2f} s | {median(ceiling, 'done'):.2f} s |"
        )
    keys = (
        "ray_accepted",
        "submit_call",
        "ray_running",
        "running",
        "first_progress",
        "ray_done",
        "done",
    )
    print(
        "\nwhere our time goes (medians, seconds from before the submit's POST)\n"
        "| reconcile interval | Ray has the job | submit call answered | Ray: RUNNING "
        "| our API: running | first progress webhook | Ray: SUCCEEDED | our API: completed |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        cells = " | ".join(f"{median(r['ours'], k):.2f}" for k in keys)
        print(f"| {_label(r['interval'])} | {cells} |")
    posts = [c["post"] for r in results for c in r["ceiling"]]
    print(
        f"\nceiling: the bare POST answered in {statistics.median(posts) * 1000:.0f} ms (median)"
    )


def _max(rows: list[dict[str, float]], key: str) -> float:
    return max(r[key] for r in rows)


def leftovers(head_dir: str, bench_dir: str) -> list[str]:
    """Processes naming this run's head or folder (not other people's heads and trainers)."""
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [line for line in ps.stdout.splitlines() if head_dir in line or bench_dir in line]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--intervals",
        default="default,1",
        help="reconcile intervals in seconds, comma-separated; `default` leaves it unset",
    )
    parser.add_argument("--ceiling-round", metavar="RAY_ADDRESS")
    args = parser.parse_args()
    if args.ceiling_round:
        print(json.dumps(ceiling_round(args.ceiling_round)))
        return
    from tests.ray_cluster import RayHead

    intervals = [None if i == "default" else float(i) for i in args.intervals.split(",")]
    print(f"# cloudtune Ray submit → running, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite, {args.rounds} rounds per interval, "
        "single-node Ray test head (4 CPUs declared, no GPU)"
    )
    head = RayHead()
    head.start()
    bench_dir = ""
    try:
        print(f"# Ray head started in {head.startup_seconds:.1f} s", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="cloudtune-bench-") as tmp:
            bench_dir = tmp
            results = measure(head.address, intervals, args.rounds, Path(tmp))
    finally:
        head_dir = str(head.temp_dir)
        head.stop()
    report(results)
    left = leftovers(head_dir, bench_dir)
    if left:
        raise SystemExit("processes left behind:\n" + "\n".join(left))
    print("\nno process left behind (ps)")


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
    main()
