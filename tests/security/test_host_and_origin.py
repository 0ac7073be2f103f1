"""Finding 5: DNS rebinding and cross-origin pages. With no users every loopback request acts as
the local admin, so a page on a rebinding domain (Host: evil.example) or any other web origin
must be refused before it reaches a route. Real server on a loopback port, real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudtune.settings import Settings
from tests.api.routes.test_jobs import assert_envelope
from tests.factories import job_body, make_dataset

FIRST_ADMIN = "/api/auth/setup/first-admin"
ADMIN = {"email": "admin@example.com", "username": "admin", "password": "correct horse"}
SUBMIT = "/api/cloud/jobs/submit?provider=local"
COST_LIMIT = "/api/cloud/metrics/cost-limit"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """No storage in these checks: SQLite only."""
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def edge() -> dict[str, Any]:
    """Settings a test changes before its server starts (parametrize `edge` to set them)."""
    return {}


@pytest.fixture
def settings(settings: Settings, edge: dict[str, Any]) -> Settings:
    for name, value in edge.items():
        setattr(settings, name, value)
    return settings


@pytest.fixture
def submit_body(tmp_path: Path) -> dict[str, Any]:
    return job_body(make_dataset(tmp_path / "dataset", 2, size=16), tmp_path / "out", steps=1)


def own_origin(client: httpx.AsyncClient) -> str:
    return str(client.base_url).rstrip("/")


async def no_admin_yet(client: httpx.AsyncClient) -> bool:
    status = await client.get("/api/auth/setup/status")
    assert status.status_code == 200, status.text
    return status.json()["needs_setup"] is True


class TestHost:
    @pytest.mark.parametrize("host", ["evil.example", "evil.example:8001", "127.0.0.1.nip.io"])
    async def test_a_rebinding_host_is_refused_before_any_route(
        self, client: httpx.AsyncClient, host: str
    ) -> None:
        headers = {"Host": host}
        assert_envelope(
            await client.get("/api/cloud/jobs", headers=headers), 400, "host_not_allowed"
        )
        claimed = await client.post(FIRST_ADMIN, json=ADMIN, headers=headers)
        assert_envelope(claimed, 400, "host_not_allowed")
        assert await no_admin_yet(client)

    @pytest.mark.parametrize("host", ["bad host", "x:notaport", "[::1", "x:70000"])
    async def test_a_malformed_host_is_refused(self, client: httpx.AsyncClient, host: str) -> None:
        response = await client.get("/health", headers={"Host": host})
        assert_envelope(response, 400, "host_not_allowed")

    @pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"])
    async def test_loopback_names_are_served(self, client: httpx.AsyncClient, name: str) -> None:
        port = client.base_url.port
        for host in (name, f"{name}:{port}"):
            response = await client.get("/api/cloud/jobs", headers={"Host": host})
            assert response.status_code == 200, (host, response.text)

    @pytest.mark.parametrize("edge", [{"allowed_hosts": ["tune.example.com"]}])
    async def test_configured_hosts_replace_the_defaults(self, client: httpx.AsyncClient) -> None:
        served = await client.get("/health", headers={"Host": "Tune.Example.com."})
        assert served.status_code == 200, served.text
        refused = await client.get("/health", headers={"Host": "localhost"})
        assert_envelope(refused, 400, "host_not_allowed")

    @pytest.mark.parametrize("edge", [{"public_url": "https://tune.example.com"}])
    async def test_the_public_url_host_is_served(self, client: httpx.AsyncClient) -> None:
        for host in ("tune.example.com", "127.0.0.1"):
            response = await client.get("/health", headers={"Host": host})
            assert response.status_code == 200, (host, response.text)


class TestOrigin:
    @pytest.mark.parametrize(
        "origin",
        [
            "http://evil.example",
            "http://evil.example:8001",
            "null",  # sandboxed frames and file: pages
            "http://localhost:3000",  # another origin on this machine, even if "same-site"
        ],
    )
    async def test_a_cross_origin_page_cannot_claim_the_first_admin(
        self, client: httpx.AsyncClient, origin: str
    ) -> None:
        response = await client.post(FIRST_ADMIN, json=ADMIN, headers={"Origin": origin})
        assert_envelope(response, 403, "cross_origin_refused")
        assert await no_admin_yet(client)

    async def test_a_cross_origin_page_cannot_submit_a_job(
        self, client: httpx.AsyncClient, submit_body: dict[str, Any]
    ) -> None:
        for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            response = await client.post(SUBMIT, json=submit_body, headers=headers)
            assert_envelope(response, 403, "cross_origin_refused")
        assert (await client.get("/api/cloud/jobs")).json()["total"] == 0

    async def test_the_same_origin_and_scripts_without_origin_are_served(
        self, client: httpx.AsyncClient
    ) -> None:
        same = {"Origin": own_origin(client), "Sec-Fetch-Site": "same-origin"}
        for headers in (same, {}):  # a page of this server; curl or the SDK (no Origin)
            response = await client.put(COST_LIMIT, json={"limit_usd": 5}, headers=headers)
            assert response.status_code == 200, response.text
        claimed = await client.post(FIRST_ADMIN, json=ADMIN, headers=same)
        assert claimed.status_code == 200, claimed.text

    @pytest.mark.parametrize("edge", [{"allowed_hosts": ["*"]}])
    async def test_any_host_allowed_still_refuses_other_origins(
        self, client: httpx.AsyncClient
    ) -> None:
        served = await client.get("/health", headers={"Host": "whatever.example"})
        assert served.status_code == 200, served.text
        response = await client.post(
            FIRST_ADMIN,
            json=ADMIN,
            headers={"Host": "whatever.example", "Origin": "http://evil.example"},
        )
        assert_envelope(response, 403, "cross_origin_refused")
        assert await no_admin_yet(client)

    @pytest.mark.parametrize("edge", [{"public_url": "https://tune.example.com"}])
    async def test_the_public_url_origin_is_this_server(self, client: httpx.AsyncClient) -> None:
        """Behind a reverse proxy that rewrites Host, the browser's origin is the public URL."""
        response = await client.post(
            FIRST_ADMIN, json=ADMIN, headers={"Origin": "https://tune.example.com"}
        )
        assert response.status_code == 200, response.text
