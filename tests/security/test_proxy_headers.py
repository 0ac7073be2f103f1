"""Finding 4 (last part): `X-Forwarded-For` must not let a client pick its address (a fresh login
budget, a place on the Replicate `webhook_allowed_ips`). It counts only from a trusted proxy.

The address the server believes is observed through the webhook allowlist: the Replicate
webhook answers 403 `ip_not_allowed` unless the resolved client is in 10.0.0.0/8 (signatures are
turned off here, so an allowed delivery for an unknown prediction is "ignored", 200). Real
server on a loopback port, real HTTP; the test client's own address is 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudtune.settings import Settings
from tests.api.routes.test_jobs import assert_envelope
from tests.e2e.test_server import ServerProcess

WEBHOOK = "/api/webhooks/replicate"
DELIVERY = {"id": "no-such-prediction", "status": "processing"}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """No storage in these checks: SQLite only."""
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def trusted_proxies() -> list[str] | None:
    return None


@pytest.fixture
def settings(settings: Settings, trusted_proxies: list[str] | None) -> Settings:
    settings.trusted_proxies = trusted_proxies
    return settings


@pytest.fixture
async def allowlisted(client: httpx.AsyncClient) -> httpx.AsyncClient:
    response = await client.put(
        "/api/cloud/providers/replicate",
        json={"webhook_allowed_ips": ["10.0.0.0/8"], "require_signature": False},
    )
    assert response.status_code == 200, response.text
    return client


async def deliver(client: httpx.AsyncClient, forwarded_for: str | None) -> httpx.Response:
    headers: dict[str, Any] = {}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return await client.post(WEBHOOK, json=DELIVERY, headers=headers)


def assert_allowed(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ignored"


async def test_forwarded_for_from_an_untrusted_loopback_peer_is_ignored(
    allowlisted: httpx.AsyncClient,
) -> None:
    for forged in ("10.1.2.3", "10.1.2.3, 10.4.5.6", "6.6.6.6, 10.1.2.3"):
        assert_envelope(await deliver(allowlisted, forged), 403, "ip_not_allowed")
    assert_envelope(await deliver(allowlisted, None), 403, "ip_not_allowed")


@pytest.mark.parametrize("trusted_proxies", [["127.0.0.1"]])
async def test_forwarded_for_from_a_trusted_proxy_counts(allowlisted: httpx.AsyncClient) -> None:
    assert_allowed(await deliver(allowlisted, "10.1.2.3"))
    # The proxy appends the peer it saw; whatever the client wrote to its left proves nothing.
    assert_allowed(await deliver(allowlisted, "6.6.6.6, 10.1.2.3"))
    assert_envelope(await deliver(allowlisted, "10.1.2.3, 6.6.6.6"), 403, "ip_not_allowed")
    # Without the header, or with nonsense in it, the peer itself is the client.
    assert_envelope(await deliver(allowlisted, None), 403, "ip_not_allowed")
    assert_envelope(await deliver(allowlisted, "not-an-address"), 403, "ip_not_allowed")


@pytest.mark.parametrize("trusted_proxies", [["127.0.0.0/8", "10.9.0.0/16"]])
async def test_the_right_most_address_that_is_not_a_trusted_proxy_is_the_client(
    allowlisted: httpx.AsyncClient,
) -> None:
    # Two trusted hops (10.9.0.5, then this machine) in front of the client 10.1.2.3.
    assert_allowed(await deliver(allowlisted, "6.6.6.6, 10.1.2.3, 10.9.0.5"))
    # A client inside a trusted network is still a client when nothing else is left.
    assert_allowed(await deliver(allowlisted, "10.9.0.7"))
    assert_envelope(await deliver(allowlisted, "10.1.2.3, 6.6.6.6, 10.9.0.5"), 403)


@pytest.mark.parametrize("trusted_proxies", [["10.9.0.1"]])
async def test_a_trusted_proxy_elsewhere_does_not_make_loopback_trusted(
    allowlisted: httpx.AsyncClient,
) -> None:
    assert_envelope(await deliver(allowlisted, "10.1.2.3"), 403, "ip_not_allowed")


def test_a_bad_trusted_proxy_entry_stops_start_up(settings: Settings) -> None:
    from cloudtune.api.app import create_app

    settings.trusted_proxies = ["10.0.0.0/33"]
    with pytest.raises(ValueError, match="CLOUDTUNE_TRUSTED_PROXIES"):
        create_app(settings)


@pytest.mark.e2e
def test_forwarded_for_from_loopback_is_ignored_by_the_cli_server(
    tmp_path: Path, database_url: str
) -> None:
    """`cloudtune server` turns uvicorn's own proxy headers off: they believe any loopback
    peer."""
    server = ServerProcess(tmp_path / "home", database_url)
    server.start()
    try:
        settings = {"webhook_allowed_ips": ["10.0.0.0/8"], "require_signature": False}
        response = httpx.put(f"{server.url}/api/cloud/providers/replicate", json=settings)
        assert response.status_code == 200, response.text
        forged = {"X-Forwarded-For": "10.1.2.3"}
        assert_envelope(server.post(WEBHOOK, json=DELIVERY, headers=forged), 403, "ip_not_allowed")
    finally:
        server.stop()
