"""Finding: a key minted by another key dropped the parent's expiry and survived the parent's
revocation (a 1-day key with `api.keys.own` made a key with `expires_at: null`). Creating a key
now needs a login session; a key gets 403 `session_required`. The local admin of no-users mode,
who has no session, still creates keys."""

from __future__ import annotations

from datetime import datetime, timedelta

from cloudtune.domain.jobs import utcnow
from cloudtune.settings import Settings
from tests.api.routes.test_jobs import assert_envelope
from tests.security.auth_support import add_user, bearer, first_admin, peer, running_app

URL = "/api/cloud/auth/api-keys"


async def test_a_key_cannot_mint_a_key_that_outlives_it(settings: Settings) -> None:
    async with running_app(settings) as app:
        admin = await first_admin(app)
        viewer = await add_user(app, admin, "vera", "viewer")
        async with peer(app, "10.1.0.1") as client:
            parent = await client.post(
                URL,
                json={
                    "name": "one-day",
                    "expires_days": 1,
                    "scoped_permissions": ["api.keys.own"],
                },
                headers=bearer(viewer),
            )
            assert parent.status_code == 200, parent.text
            key, key_id = parent.json()["key"], parent.json()["key_info"]["id"]
            expires = parent.json()["key_info"]["expires_at"]
            assert expires is not None

            # The probe's request, through both paths and both ways of sending a key.
            for path in (URL, "/api/auth/api-keys"):
                for headers in (bearer(key), {"X-API-Key": key}):
                    child = await client.post(path, json={"name": "child"}, headers=headers)
                    assert_envelope(child, 403, "session_required")
                    assert "log in" in child.json()["detail"]
            # Not with a longer expiry or narrower scopes either: no key makes keys.
            for body in (
                {"name": "c", "expires_days": 365},
                {"name": "c", "scoped_permissions": ["api.keys.own"]},
            ):
                assert_envelope(
                    await client.post(URL, json=body, headers=bearer(key)), 403, "session_required"
                )

            listing = (await client.get(URL, headers=bearer(viewer))).json()["keys"]
            assert [k["id"] for k in listing] == [key_id]
            # Revoking the parent leaves nothing working behind it.
            revoked = await client.delete(f"{URL}/{key_id}", headers=bearer(viewer))
            assert revoked.status_code == 200, revoked.text
            assert_envelope(await client.get(URL, headers=bearer(key)), 401, "invalid_api_key")


async def test_sessions_create_keys_with_their_expiry(settings: Settings) -> None:
    async with running_app(settings) as app:
        admin = await first_admin(app)
        await add_user(app, admin, "rita", "researcher")
        async with peer(app, "10.1.0.2") as client:
            # A cookie session (the web UI) with its CSRF header.
            login = await client.post(
                "/api/auth/login", json={"username": "rita", "password": "password-rita"}
            )
            assert login.status_code == 200, login.text
            csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
            made = await client.post(URL, json={"name": "web", "expires_days": 7}, headers=csrf)
            assert made.status_code == 200, made.text
            expires = datetime.fromisoformat(made.json()["key_info"]["expires_at"])
            assert abs(expires - (utcnow() + timedelta(days=7))) < timedelta(minutes=1)
            # The same session as a bearer token.
            client.cookies.clear()
            token = login.json()["token"]
            made = await client.post(URL, json={"name": "cli"}, headers=bearer(token))
            assert made.status_code == 200, made.text


async def test_the_local_admin_creates_keys_without_a_session(settings: Settings) -> None:
    async with running_app(settings) as app, peer(app, "127.0.0.1") as local:
        made = await local.post(URL, json={"name": "ci", "scoped_permissions": ["job.submit"]})
        assert made.status_code == 200, made.text
        key = made.json()["key"]
        # Its key makes no keys either; the answer says how to make one instead.
        refused = await local.post(URL, json={"name": "child"}, headers=bearer(key))
        assert_envelope(refused, 403, "session_required")
        assert "without a key" in refused.json()["detail"]
