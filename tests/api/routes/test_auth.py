"""Users, sessions, API keys, CSRF and rate limits, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update

from cloudtune.domain.jobs import utcnow
from cloudtune.store.tables import ApiKeyModel
from tests.api.routes.test_jobs import assert_envelope

ADMIN = {"email": "admin@example.com", "username": "admin", "password": "correct horse"}


async def setup_admin(client: httpx.AsyncClient) -> str:
    response = await client.post("/api/auth/setup/first-admin", json=ADMIN)
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return str(response.json()["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def add_user(client: httpx.AsyncClient, admin: str, username: str, role: str) -> str:
    body = {
        "email": f"{username}@example.com",
        "username": username,
        "password": "password-" + username,
        "role": role,
    }
    response = await client.post("/api/users", json=body, headers=bearer(admin))
    assert response.status_code == 201, response.text
    login = await client.post(
        "/api/auth/login", json={"username": username, "password": "password-" + username}
    )
    assert login.status_code == 200, login.text
    client.cookies.clear()
    return str(login.json()["token"])


class TestModes:
    async def test_local_mode_without_credentials_is_admin(
        self, client: httpx.AsyncClient
    ) -> None:
        me = (await client.get("/api/auth/me")).json()
        assert me["role"] == "admin" and me["auth_method"] == "local"
        assert (await client.get("/api/auth/setup/status")).json()["needs_setup"] is True

    async def test_a_wrong_credential_is_refused_even_in_local_mode(
        self, client: httpx.AsyncClient
    ) -> None:
        for headers in (
            bearer("stk_not_a_real_key"),
            {"X-API-Key": "stk_nope"},
            bearer("sts_nope"),
            {"Authorization": "Basic eDp5"},
        ):
            assert_envelope(await client.get("/api/cloud/jobs", headers=headers), 401)

    async def test_once_a_user_exists_credentials_are_required(
        self, client: httpx.AsyncClient
    ) -> None:
        token = await setup_admin(client)
        assert_envelope(await client.get("/api/cloud/jobs"), 401, "authentication_required")
        assert_envelope(await client.get("/api/configs"), 401)
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/api/cloud/jobs", headers=bearer(token))).status_code == 200
        me = (await client.get("/api/auth/me", headers=bearer(token))).json()
        assert me["username"] == "admin" and "user.manage" in me["permissions"]

    async def test_first_admin_happens_once_under_concurrency(
        self, client: httpx.AsyncClient
    ) -> None:
        bodies = [
            {"email": f"a{i}@example.com", "username": f"admin{i}", "password": "password123"}
            for i in range(20)
        ]
        responses = await asyncio.gather(
            *(client.post("/api/auth/setup/first-admin", json=b) for b in bodies)
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] + [409] * 19, [r.text for r in responses]
        client.cookies.clear()
        winner = next(r for r in responses if r.status_code == 200).json()["token"]
        users = (await client.get("/api/users", headers=bearer(winner))).json()
        assert len(users) == 1 and users[0]["role"] == "admin"


class TestSessions:
    async def test_login_token_works_as_bearer_and_cookie_with_csrf(
        self, client: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        await setup_admin(client)
        login = await client.post(
            "/api/auth/login", json={"username": "admin", "password": ADMIN["password"]}
        )
        assert login.status_code == 200
        cookie_header = login.headers.get_list("set-cookie")
        session_cookie = next(c for c in cookie_header if c.startswith("cloudtune_session="))
        assert "HttpOnly" in session_cookie and "samesite=lax" in session_cookie.lower()
        data = login.json()
        token, csrf = data["token"], data["csrf_token"]
        # bearer
        assert (await client.get("/api/auth/me", headers=bearer(token))).status_code == 200
        # cookie: reads work, writes need the CSRF header
        assert (await client.get("/api/configs")).status_code == 200
        body = {"config": {"--model_family": "reference"}, "dataloader_config": []}
        assert_envelope(await client.put("/api/configs/x", json=body), 403, "csrf_failed")
        assert_envelope(
            await client.put("/api/configs/x", json=body, headers={"X-CSRF-Token": "forged"}),
            403,
            "csrf_failed",
        )
        ok = await client.put("/api/configs/x", json=body, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 201, ok.text
        # logout ends the session for both forms
        assert (await client.post("/api/auth/logout", headers=bearer(token))).status_code == 200
        client.cookies.clear()
        assert_envelope(await client.get("/api/auth/me", headers=bearer(token)), 401)

    async def test_wrong_password_and_rate_limit(self, client: httpx.AsyncClient) -> None:
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        frozen = ctx.clock()
        ctx.clock = lambda: frozen  # budgets refill with the server's clock: none during the test
        await setup_admin(client)
        bad = {"username": "admin", "password": "wrong password"}
        for _ in range(5):
            assert_envelope(await client.post("/api/auth/login", json=bad), 401)
        limited = await client.post("/api/auth/login", json=bad)
        assert_envelope(limited, 429, "rate_limited")
        assert int(limited.headers["Retry-After"]) > 0
        good = {"username": "admin", "password": ADMIN["password"]}
        assert_envelope(await client.post("/api/auth/login", json=good), 429)
        # the e-mail is the same account, not a fresh budget
        by_email = {"username": ADMIN["email"], "password": "wrong password"}
        assert_envelope(await client.post("/api/auth/login", json=by_email), 429)
        # another account from the same address is not locked by this one's failures
        unknown = await client.post("/api/auth/login", json={"username": "x", "password": "y"})
        assert_envelope(unknown, 401, "invalid_credentials")


class TestApiKeys:
    async def create_key(
        self, client: httpx.AsyncClient, headers: dict[str, str], **body: Any
    ) -> dict[str, Any]:
        response = await client.post(
            "/api/cloud/auth/api-keys", json={"name": "ci", **body}, headers=headers
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def test_key_shown_once_hashed_at_rest_and_last_used(
        self, client: httpx.AsyncClient, database_url: str
    ) -> None:
        admin = await setup_admin(client)
        created = await self.create_key(client, bearer(admin), expires_days=90)
        key = created["key"]
        assert key.startswith("stk_") and len(key) >= 40
        assert created["key_info"]["key_prefix"] == key[:12]
        listing = await client.get("/api/cloud/auth/api-keys", headers=bearer(admin))
        assert key not in listing.text and created["key_info"]["id"] in listing.text
        alias = await client.get("/api/auth/api-keys", headers=bearer(admin))
        # the reference server's path: the same keys, as a bare array
        assert alias.status_code == 200 and alias.json() == listing.json()["keys"]
        assert (await client.get("/api/cloud/jobs", headers={"X-API-Key": key})).status_code == 200
        info = (await client.get("/api/cloud/auth/api-keys", headers=bearer(admin))).json()
        assert info["keys"][0]["last_used_at"] is not None
        db = client.app.state.ctx.db  # type: ignore[attr-defined]
        if db.is_sqlite:
            raw = b"".join(
                p.read_bytes() for p in Path(db.engine.url.database).parent.glob("*.db*")
            )
        else:
            with db.read() as session:
                raw = str(session.execute(text("SELECT * FROM api_keys")).all()).encode()
        assert key.encode() not in raw and key[4:].encode() not in raw
        assert admin.encode() not in raw

    async def test_expired_and_revoked_keys_are_refused(self, client: httpx.AsyncClient) -> None:
        admin = await setup_admin(client)
        expiring = await self.create_key(client, bearer(admin), expires_days=1)
        revoked = await self.create_key(client, bearer(admin))
        db = client.app.state.ctx.db  # type: ignore[attr-defined]
        with db.write() as session:
            session.execute(
                update(ApiKeyModel)
                .where(ApiKeyModel.id == expiring["key_info"]["id"])
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        assert_envelope(
            await client.get("/api/cloud/jobs", headers=bearer(expiring["key"])),
            401,
            "api_key_expired",
        )
        assert (
            await client.get("/api/cloud/jobs", headers=bearer(revoked["key"]))
        ).status_code == 200
        deleted = await client.delete(
            f"/api/cloud/auth/api-keys/{revoked['key_info']['id']}", headers=bearer(admin)
        )
        assert deleted.status_code == 200
        assert_envelope(await client.get("/api/cloud/jobs", headers=bearer(revoked["key"])), 401)

    async def test_scopes_must_be_a_subset_and_are_enforced(
        self, client: httpx.AsyncClient
    ) -> None:
        admin = await setup_admin(client)
        viewer = await add_user(client, admin, "vera", "viewer")
        refused = await client.post(
            "/api/cloud/auth/api-keys",
            json={"name": "x", "scoped_permissions": ["job.submit"]},
            headers=bearer(viewer),
        )
        assert_envelope(refused, 403, "permission_denied")
        unknown = await client.post(
            "/api/cloud/auth/api-keys",
            json={"name": "x", "scoped_permissions": ["job.fly"]},
            headers=bearer(admin),
        )
        assert_envelope(unknown, 400, "invalid_permissions")
        empty = await client.post(
            "/api/cloud/auth/api-keys",
            json={"name": "x", "scoped_permissions": []},
            headers=bearer(admin),
        )
        assert_envelope(empty, 400, "invalid_permissions")
        narrow = await self.create_key(client, bearer(admin), scoped_permissions=["job.view.own"])
        assert_envelope(
            await client.get("/api/configs", headers=bearer(narrow["key"])),
            403,
            "permission_denied",
        )
        # a key cannot mint a stronger key
        stronger = await client.post(
            "/api/cloud/auth/api-keys",
            json={"name": "y", "scoped_permissions": ["job.view.own", "job.submit"]},
            headers=bearer(narrow["key"]),
        )
        assert_envelope(stronger, 403)

    async def test_local_mode_keys_stop_when_users_appear(self, client: httpx.AsyncClient) -> None:
        local = await self.create_key(client, {}, scoped_permissions=["job.view.own"])
        assert (
            await client.get("/api/cloud/jobs", headers=bearer(local["key"]))
        ).status_code == 200
        await setup_admin(client)
        assert_envelope(await client.get("/api/cloud/jobs", headers=bearer(local["key"])), 401)

    async def test_others_keys_read_as_unknown(self, client: httpx.AsyncClient) -> None:
        admin = await setup_admin(client)
        ann = await add_user(client, admin, "ann", "researcher")
        bob = await add_user(client, admin, "bob", "researcher")
        anns = await self.create_key(client, bearer(ann))
        response = await client.delete(
            f"/api/cloud/auth/api-keys/{anns['key_info']['id']}", headers=bearer(bob)
        )
        assert_envelope(response, 404, "api_key_not_found")
        mine = (await client.get("/api/cloud/auth/api-keys", headers=bearer(bob))).json()
        assert mine["keys"] == []
        assert_envelope(
            await client.get("/api/cloud/auth/api-keys?all=true", headers=bearer(bob)), 403
        )
        everyone = await client.get("/api/cloud/auth/api-keys?all=true", headers=bearer(admin))
        assert len(everyone.json()["keys"]) == 1


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    from tests.factories import make_dataset

    return make_dataset(tmp_path / "dataset", 2, size=16)
