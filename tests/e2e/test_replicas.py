"""Two real `cloudtune server` processes on one PostgreSQL database (DESIGN §7): local jobs
stay with the replica that started them, remote jobs are polled by one replica at a time, and
a killed replica's remote jobs are finished by the other."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import uvicorn
from sqlalchemy import create_engine, text

from cloudtune.services.key_files import SECRETS_ENCRYPTION_KEY, TOKEN_SIGNING_KEY
from tests.conftest import free_port
from tests.e2e.test_server import ServerProcess
from tests.factories import job_body, make_dataset
from tests.fakes.replicate import FakeReplicate, running_fake

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

INTERVAL = 0.5  # seconds between reconcile passes
LEASE = 3.0  # seconds a lease lasts without renewal


class Replicas:
    """Replica a and b: one database, their own homes and ports, the same key files (a
    trainer's webhook token and the secrets at rest must read the same on both)."""

    def __init__(self, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch):
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.monkeypatch = monkeypatch
        self.servers: dict[str, ServerProcess] = {}
        monkeypatch.setenv("CLOUDTUNE_RECONCILE_LEASE_SECONDS", str(LEASE))
        monkeypatch.setenv("CLOUDTUNE_RECONCILE_BACKOFF_MAX_SECONDS", "1")
        monkeypatch.setenv("CLOUDTUNE_LOCAL__CANCEL_GRACE_SECONDS", "2")

    def start(self, name: str, **env: str) -> ServerProcess:
        home = self.tmp_path / f"home-{name}"
        home.mkdir(exist_ok=True)
        first = next(iter(self.servers.values()), None)
        if first is not None:
            for key in (TOKEN_SIGNING_KEY, SECRETS_ENCRYPTION_KEY):
                shutil.copy2(first.home / key, home / key)
        for key, value in env.items():
            self.monkeypatch.setenv(key, value)
        server = ServerProcess(home, self.database_url)
        server.start()  # it takes the environment as it is now
        self.servers[name] = server
        return server

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def cancel_requests(self) -> int:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                query = "SELECT count(*) FROM jobs WHERE cancel_requested_at IS NOT NULL"
                return int(conn.execute(text(query)).scalar() or 0)
        finally:
            engine.dispose()

    def leases(self) -> dict[str, str]:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT job_id, owner FROM job_leases"))
                return {row.job_id: row.owner for row in rows}
        finally:
            engine.dispose()


@pytest.fixture
def replicas(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Replicas]:
    made = Replicas(tmp_path, database_url, monkeypatch)
    try:
        yield made
    finally:
        made.stop()


def wait_for(check: Any, what: str, timeout: float = 60) -> Any:
    """Poll `check` until it returns something true (e2e: real processes, real time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.trainer
def test_local_jobs_stay_with_their_replica_and_end_when_cancelled_through_the_other(
    replicas: Replicas, tmp_path: Path
) -> None:
    a = replicas.start("a", CLOUDTUNE_RECONCILE_INTERVAL_SECONDS=str(INTERVAL))
    dataset = make_dataset(tmp_path / "dataset", 4, size=32)
    body = job_body(dataset, tmp_path / "output", steps=100_000)
    submitted = a.post("/api/cloud/jobs/submit?provider=local", json=body)
    assert submitted.status_code == 200, submitted.text
    job_id = submitted.json()["job_id"]
    running = a.wait(job_id, {"running"}, timeout=60)
    pid = running["metadata"]["pid"]

    # b starts while a's trainer runs: its restore and its passes must leave the job alone.
    b = replicas.start("b")
    for server in (a, b):
        wait_for(
            lambda server=server: (server.job(job_id)["progress"]["step"] or 0) >= 5,
            f"progress through {server.url}",
        )
    for _ in range(3):  # passes of b over every active job, on top of its own loop's
        synced = b.post("/api/cloud/jobs/sync")
        assert synced.status_code == 200, synced.text
    for server in (a, b):
        job = server.job(job_id)
        assert job["status"] == "running", job["error_message"]
    assert psutil.pid_exists(pid)

    cancelled = b.post(f"/api/cloud/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    # a stops its trainer on its next pass (and the grace of 2 s at most).
    wait_for(lambda: not _alive(pid), "the trainer on a to stop", timeout=INTERVAL + 2 + 10)
    for server in (a, b):
        # A replica may serve its cached page up to a TTL (1 s) after another one's write.
        wait_for(
            lambda server=server: server.job(job_id)["status"] == "cancelled",
            f"cancelled through {server.url}",
            timeout=10,
        )
    engine = create_engine(replicas.database_url)

    def requests_left() -> int:
        with engine.connect() as conn:
            query = text("SELECT count(*) FROM jobs WHERE cancel_requested_at IS NOT NULL")
            return int(conn.execute(query).scalar() or 0)

    try:  # cleared once a's provider says the trainer ended (its next pass)
        wait_for(lambda: requests_left() == 0, "the cancel request to be cleared", timeout=20)
    finally:
        engine.dispose()


class PollLog(threading.Thread):
    """A front to the fake Replicate for one replica: same predictions, its own port, and a
    log of which replica read which prediction when."""

    def __init__(self, fake: FakeReplicate, name: str, log: list[tuple[str, str, float]]):
        super().__init__(daemon=True)
        self.fake, self.replica, self.log = fake, name, log
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                self._app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                interface="asgi3",
            )
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _app(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and scope["method"] == "GET":
            if path.startswith("/v1/predictions/"):
                self.log.append((self.replica, path.rsplit("/", 1)[-1], time.monotonic()))
        await self.fake.app(scope, receive, send)

    def run(self) -> None:
        asyncio.run(self.server.serve())

    def __enter__(self) -> PollLog:
        self.start()
        wait_for(lambda: self.server.started, "the fake's front to start", timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.join(timeout=10)


def test_remote_jobs_are_polled_by_one_replica_at_a_time_and_taken_over(
    replicas: Replicas, tmp_path: Path
) -> None:
    polls: list[tuple[str, str, float]] = []
    with (
        running_fake(start_after=0.3, run_for=30.0) as fake,
        PollLog(fake, "a", polls) as front_a,
        PollLog(fake, "b", polls) as front_b,
    ):
        common = {
            "CLOUDTUNE_RECONCILE_INTERVAL_SECONDS": str(INTERVAL),
            "REPLICATE_API_TOKEN": fake.token,
            "CLOUDTUNE_REPLICATE_OUTPUT_HOSTS": fake.file_origin,
        }
        a = replicas.start(
            "a", CLOUDTUNE_REPLICA_ID="a", CLOUDTUNE_REPLICATE_BASE_URL=front_a.base_url, **common
        )
        b = replicas.start(
            "b", CLOUDTUNE_REPLICA_ID="b", CLOUDTUNE_REPLICATE_BASE_URL=front_b.base_url, **common
        )
        dataset = make_dataset(tmp_path / "dataset", 2, size=16)
        body = job_body(dataset, tmp_path / "output", steps=10)
        body["config"]["--model_family"] = "flux"
        job_ids = []
        for i in range(20):
            server = (a, b)[i % 2]
            submitted = server.post("/api/cloud/jobs/submit?provider=replicate", json=body)
            assert submitted.status_code == 200, submitted.text
            job_ids.append(submitted.json()["job_id"])
        predictions = {job_id: a.job(job_id)["metadata"]["prediction_id"] for job_id in job_ids}
        wait_for(lambda: len(replicas.leases()) == 20, "a lease on every job", timeout=10)

        def read_over_a_lease() -> bool:
            """Every prediction read over more than a lease period: leases were renewed."""
            spans: dict[str, list[float]] = {}
            for _, prediction, at in list(polls):
                spans.setdefault(prediction, []).append(at)
            return len(spans) == 20 and all(max(t) - min(t) > LEASE for t in spans.values())

        wait_for(read_over_a_lease, "reads over more than a lease period", timeout=20)

        # Each prediction was read by one replica only while both lived.
        both_alive = list(polls)
        readers: dict[str, set[str]] = {}
        for replica, prediction, _ in both_alive:
            readers.setdefault(prediction, set()).add(replica)
        assert set(readers) == set(predictions.values())
        assert all(len(names) == 1 for names in readers.values()), readers

        # Kill the replica holding most leases; the other finishes every job.
        held = replicas.leases()
        name = max(("a", "b"), key=lambda o: sum(1 for v in held.values() if v == o))
        survivor_name = "b" if name == "a" else "a"
        survivor = replicas.servers[survivor_name]
        replicas.servers[name].kill()
        killed_at = time.monotonic()
        taken = {predictions[j] for j, owner in held.items() if owner == name}
        assert all(
            fake.predictions[p].status not in ("succeeded", "failed", "canceled") for p in taken
        ), "the jobs to take over must still be running when their replica dies"

        for job_id in job_ids:
            survivor.wait(job_id, {"completed"}, timeout=60)
        first_reads = {
            prediction: min(t for r, p, t in polls if p == prediction and r == survivor_name)
            for prediction in taken
        }
        # Taken over within one lease period (and a pass) of the kill, never read by both.
        assert max(first_reads.values()) - killed_at <= LEASE + 2 * INTERVAL + 1.0, first_reads
        for prediction in taken:
            victim_reads = [t for r, p, t in polls if p == prediction and r == name]
            assert max(victim_reads) < first_reads[prediction]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
