"""Finding 8: `scoped_permissions: []` made a key with all of its owner's permissions; it is a
400 now, for users and for keys minting keys."""

from __future__ import annotations

from cloudtune.settings import Settings
from tests.api.routes.test_jobs import assert_envelope
from tests.security.auth_support import add_user, bearer, first_admin, peer, running_app


async def test_empty_scopes_are_refused(settings: Settings) -> None:
    async with running_app(settings) as app:
        admin = await first_admin(app)
        viewer = await add_user(app, admin, "vera", "viewer")
        async with peer(app, "10.1.0.1") as client:
            url = "/api/cloud/auth/api-keys"
            empty = {"name": "ci", "scoped_permissions": []}
            refused = await client.post(url, json=empty, headers=bearer(viewer))
            assert_envelope(refused, 400, "invalid_permissions")
            assert "omit" in refused.json()["detail"]
            # The least-privileged credential: a key scoped to one permission.
            narrow = await client.post(
                url,
                json={"name": "narrow", "scoped_permissions": ["api.keys.own"]},
                headers=bearer(viewer),
            )
            assert narrow.status_code == 200, narrow.text
            key = narrow.json()["key"]
            assert_envelope(
                await client.post(url, json=empty, headers=bearer(key)), 400, "invalid_permissions"
            )
            assert_envelope(
                await client.post("/api/auth/api-keys", json=empty, headers=bearer(key)),
                400,
                "invalid_permissions",
            )
            # No key was made by the refused calls; omitting the field still works.
            listing = await client.get(url, headers=bearer(viewer))
            assert [k["name"] for k in listing.json()["keys"]] == ["narrow"]
            whole = await client.post(url, json={"name": "all"}, headers=bearer(viewer))
            assert whole.status_code == 200, whole.text
            assert whole.json()["key_info"]["scoped_permissions"] is None
            # A key made by the narrow key is no stronger than it.
            child = await client.post(url, json={"name": "child"}, headers=bearer(key))
            assert child.json()["key_info"]["scoped_permissions"] == ["api.keys.own"]
