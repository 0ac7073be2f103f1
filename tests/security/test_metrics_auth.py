"""Finding 11 (metrics): GET /metrics needs cost.manage or CLOUDTUNE_METRICS_TOKEN once users
exist; the local admin reads it in no-users loopback mode."""

from __future__ import annotations

from pydantic import SecretStr

from cloudtune.settings import Settings
from tests.api.routes.test_jobs import assert_envelope
from tests.security.auth_support import add_user, bearer, first_admin, peer, running_app

METRICS_TOKEN = "scraper-" + "s3cret" * 6


async def test_metrics_need_a_permission_or_the_metrics_token(settings: Settings) -> None:
    settings.metrics_token = SecretStr(METRICS_TOKEN)
    async with running_app(settings) as app:
        async with peer(app, "127.0.0.1") as local:
            # No users, loopback: the local admin reads it as before.
            assert (await local.get("/metrics")).status_code == 200
        admin = await first_admin(app)
        viewer = await add_user(app, admin, "vera", "viewer")
        lead = await add_user(app, admin, "lena", "lead")
        async with peer(app, "10.2.0.1") as client:
            assert_envelope(await client.get("/metrics"), 401, "authentication_required")
            assert_envelope(await client.get("/metrics", headers=bearer(viewer)), 403)
            key = await client.post(
                "/api/cloud/auth/api-keys",
                json={"name": "k", "scoped_permissions": ["job.view.own"]},
                headers=bearer(lead),
            )
            narrow = key.json()["key"]
            assert_envelope(await client.get("/metrics", headers=bearer(narrow)), 403)
            assert_envelope(await client.get("/metrics", headers=bearer("wrong-token")), 401)
            scraped = await client.get("/metrics", headers=bearer(METRICS_TOKEN))
            assert scraped.status_code == 200
            assert "cloudtune_password_checks_total" in scraped.text
            assert METRICS_TOKEN not in scraped.text
            assert (await client.get("/metrics", headers=bearer(lead))).status_code == 200
            assert (await client.get("/metrics", headers=bearer(admin))).status_code == 200


async def test_without_a_metrics_token_a_bearer_is_just_a_credential(settings: Settings) -> None:
    async with running_app(settings) as app:
        await first_admin(app)
        async with peer(app, "10.2.0.2") as client:
            assert_envelope(await client.get("/metrics", headers=bearer("")), 401)
            assert_envelope(await client.get("/metrics", headers=bearer("anything")), 401)
