"""Finding 11 (auth cache): a revocation, a new user or a new admin made by one process counts
at once in every other process sharing the database (no per-process credential cache)."""

from __future__ import annotations

from cloudtune.settings import Settings
from tests.api.routes.test_jobs import assert_envelope
from tests.security.auth_support import add_user, bearer, peer, running_app


async def test_a_key_revoked_in_one_process_is_refused_by_the_other(settings: Settings) -> None:
    # Two apps, each with its own Database (engine, pool, write counter): two server processes.
    async with running_app(settings) as one, running_app(settings) as two:
        async with peer(one, "127.0.0.1") as first, peer(two, "127.0.0.1") as second:
            setup = await first.post(
                "/api/auth/setup/first-admin",
                json={"email": "a@example.com", "username": "admin", "password": "password123"},
            )
            admin = setup.json()["token"]
            first.cookies.clear()
            viewer = await add_user(one, admin, "vera", "viewer")
            created = await first.post(
                "/api/cloud/auth/api-keys",
                json={"name": "laptop", "scoped_permissions": ["job.view.own"]},
                headers=bearer(viewer),
            )
            key, key_id = created.json()["key"], created.json()["key_info"]["id"]
            # The second process has seen the key work (twice: a cache would now hold it).
            for _ in range(2):
                assert (
                    await second.get("/api/cloud/jobs", headers=bearer(key))
                ).status_code == 200
            revoked = await first.delete(
                f"/api/cloud/auth/api-keys/{key_id}", headers=bearer(viewer)
            )
            assert revoked.status_code == 200, revoked.text
            assert_envelope(
                await second.get("/api/cloud/jobs", headers=bearer(key)), 401, "invalid_api_key"
            )
            # The same for a session that ends in one process.
            for _ in range(2):
                assert (
                    await second.get("/api/auth/me", headers=bearer(viewer))
                ).status_code == 200
            await first.post("/api/auth/logout", headers=bearer(viewer))
            assert_envelope(
                await second.get("/api/auth/me", headers=bearer(viewer)), 401, "invalid_session"
            )


async def test_the_first_user_ends_local_admin_mode_in_every_process(settings: Settings) -> None:
    async with running_app(settings) as one, running_app(settings) as two:
        async with peer(one, "127.0.0.1") as first, peer(two, "127.0.0.1") as second:
            for _ in range(2):
                me = await second.get("/api/auth/me")
                assert me.status_code == 200 and me.json()["auth_method"] == "local"
            setup = await first.post(
                "/api/auth/setup/first-admin",
                json={"email": "a@example.com", "username": "admin", "password": "password123"},
            )
            assert setup.status_code == 200, setup.text
            assert_envelope(await second.get("/api/auth/me"), 401, "authentication_required")
            assert_envelope(await second.get("/api/cloud/jobs"), 401, "authentication_required")
            assert (await second.get("/api/auth/setup/status")).json()["needs_setup"] is False
