"""Shared fixtures: databases on SQLite and PostgreSQL, settings, the app with its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cloudtune.api.app import create_app
from cloudtune.domain.jobs import JobStatus
from cloudtune.providers.local.processes import PROCESS_FILE
from cloudtune.settings import LocalProviderSettings, Settings
from cloudtune.store.db import Database
from tests.pg import PostgresCluster
from tests.ray_cluster import shared_ray_head


@pytest.fixture(autouse=True)
def _no_trainer_left_behind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """Trainers outlive their server by design (re-adoption); a test, failed or not, must not
    leave its own running. A test that started one must say so with the `trainer` marker,
    which `make test-fast` leaves out: the marker cannot silently go stale."""
    yield
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if "cloudtune.trainer.launch" in cmdline and any(str(tmp_path) in a for a in cmdline):
            with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    if request.node.get_closest_marker("trainer") is None:
        started = next(tmp_path.rglob(f"runs/*/{PROCESS_FILE}"), None)
        if started is not None:
            pytest.fail(f"this test started a trainer ({started.parent.name}): mark it `trainer`")


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    url = os.environ.get("CLOUDTUNE_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster.admin_url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard address of one Ray head shared by the whole run, xdist workers included
    (they share the parent of their base temp dirs); CLOUDTUNE_TEST_RAY_ADDRESS names yours."""
    address = os.environ.get("CLOUDTUNE_TEST_RAY_ADDRESS")
    if address:
        yield address
        return
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with shared_ray_head(shared) as address:
        yield address


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    name = "t_" + uuid.uuid4().hex[:16]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        port=8001,
        reconcile_interval_seconds=0.2,
        local=LocalProviderSettings(cancel_grace_seconds=2.0, poll_interval_seconds=0.05),
        # The suite's jobs run on the local trainer unless a test names another provider; the
        # product's default (replicate) is tested in tests/api/routes/test_compat.py.
        default_provider="local",
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app on a real uvicorn server on a loopback port (trainers post progress to it),
    with an HTTP client pointed at it; `client.app` is the app, for reaching its state."""
    settings.port = free_port()
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=settings.port, log_level="warning", proxy_headers=False
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    base_url = f"http://127.0.0.1:{settings.port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        http.app = app  # type: ignore[attr-defined]
        try:
            yield http
        finally:
            await _cancel_active_jobs(http)
            server.should_exit = True
            await task


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _cancel_active_jobs(http: httpx.AsyncClient) -> None:
    """Trainer processes outlive the app by design (re-adoption); tests must not leak them."""
    listing = await http.get(
        "/api/cloud/jobs", params={"limit": 500, "status": "pending,queued,running"}
    )
    for job in listing.json().get("jobs", []):
        await http.post(f"/api/cloud/jobs/{job['job_id']}/cancel")
    provider = http.app.state.ctx.providers.get("local")  # type: ignore[attr-defined]
    for _ in range(200):
        if not provider.has_running_processes():
            return
        await asyncio.sleep(0.05)


TERMINAL = {s.value for s in JobStatus if s.is_terminal}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers that `make test-fast` selects on: the PostgreSQL half of every test run on both
    databases, and everything under tests/e2e and tests/web (real server processes; the web
    UI's also drive a browser)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("database_url") == "postgres":
            item.add_marker(pytest.mark.postgres)
        if item.path.is_relative_to(E2E_TESTS) or item.path.is_relative_to(WEB_TESTS):
            item.add_marker(pytest.mark.e2e)


E2E_TESTS = Path(__file__).parent / "e2e"
WEB_TESTS = Path(__file__).parent / "web"
