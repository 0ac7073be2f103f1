"""Finding 5 (last part): first-admin setup only from a loopback peer, or with the one-time
setup token the server prints in its log at startup while no user exists."""

from __future__ import annotations

import logging
import re

import pytest

from cloudtune.settings import Settings
from tests.api.routes.test_jobs import assert_envelope
from tests.security.auth_support import ADMIN, peer, running_app

_TOKEN_LINE = re.compile(r"X-Setup-Token: ([0-9a-f]{64})")


def _setup_tokens(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m.group(1) for r in caplog.records for m in [_TOKEN_LINE.search(r.getMessage())] if m]


async def test_a_remote_peer_needs_the_setup_token_from_the_log(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cloudtune")
    async with running_app(settings) as app:
        [token] = _setup_tokens(caplog)
        async with peer(app, "203.0.113.5") as remote:
            url = "/api/auth/setup/first-admin"
            assert_envelope(await remote.post(url, json=ADMIN), 403, "setup_token_required")
            forged = await remote.post(url, json=ADMIN, headers={"X-Setup-Token": "0" * 64})
            assert_envelope(forged, 403, "setup_token_required")
            assert token not in forged.text
            # Nobody became admin through the refused calls.
            status = await remote.get("/api/auth/setup/status")
            assert status.json()["needs_setup"] is True
            ok = await remote.post(url, json=ADMIN, headers={"X-Setup-Token": token})
            assert ok.status_code == 200, ok.text
            assert ok.json()["user"]["role"] == "admin" and token not in ok.text
            # One-time: once an admin exists the token opens nothing.
            again = ADMIN | {"username": "mallory", "email": "m@example.com"}
            replay = await remote.post(url, json=again, headers={"X-Setup-Token": token})
            assert_envelope(replay, 409, "setup_completed")
    # A restart with a user in the database prints no token.
    caplog.clear()
    async with running_app(settings):
        assert _setup_tokens(caplog) == []


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
async def test_a_loopback_peer_needs_no_token(settings: Settings, address: str) -> None:
    async with running_app(settings) as app, peer(app, address) as local:
        ok = await local.post("/api/auth/setup/first-admin", json=ADMIN)
        assert ok.status_code == 200, ok.text


async def test_every_replica_accepts_the_same_token(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Replicas sharing the home's key agree on the token (it is derived, not stored)."""
    caplog.set_level(logging.WARNING, logger="cloudtune")
    async with running_app(settings), running_app(settings) as second:
        tokens = _setup_tokens(caplog)
        assert len(tokens) == 2 and tokens[0] == tokens[1]
        async with peer(second, "198.51.100.2") as remote:
            ok = await remote.post(
                "/api/auth/setup/first-admin", json=ADMIN, headers={"X-Setup-Token": tokens[0]}
            )
            assert ok.status_code == 200, ok.text
