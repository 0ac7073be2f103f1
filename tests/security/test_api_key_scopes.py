"""Finding 8: `scoped_permissions: []` made a key with all of its owner's permissions; it is a
400 now. Keys do not mint keys at all (tests/security/test_key_minting.py)."""

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
            # A key is refused before its body is looked at: keys make no keys.
            for path in (url, "/api/auth/api-keys"):
                refused = await client.post(path, json=empty, headers=bearer(key))
                assert_envelope(refused, 403, "session_required")
            # No key was made by the refused calls; omitting the field still works.
            listing = await client.get(url, headers=bearer(viewer))
            assert [k["name"] for k in listing.json()["keys"]] == ["narrow"]
            whole = await client.post(url, json={"name": "all"}, headers=bearer(viewer))
            assert whole.status_code == 200, whole.text
            assert whole.json()["key_info"]["scoped_permissions"] is None
