"""The auth answers scripts written for the reference server read: the user fields of `me`,
login and first-admin, setup status, the bare key list under /api/auth/api-keys, `is_active`
of keys, the 1-365 day expiry, and unknown body fields refused by name; SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from cloudtune.domain.jobs import utcnow
from cloudtune.domain.principal import ALL_PERMISSIONS
from cloudtune.store.tables import ApiKeyModel, UserModel
from tests.api.routes.test_auth import ADMIN, add_user, bearer, setup_admin
from tests.api.routes.test_jobs import assert_envelope

# The keys of the reference server's recorded answers (me.json, first-admin.json,
# setup-status.json, key-create-Apath.json), less those we do not have on purpose: levels
# (we have roles), avatar_url (no avatars), email_verified (no e-mail verification),
# resource_rules, org_id, organization, teams (no organisations or teams).
REFERENCE_ME = {
    "id",
    "email",
    "username",
    "display_name",
    "auth_provider",
    "is_active",
    "is_admin",
    "created_at",
    "last_login_at",
    "permissions",
}
REFERENCE_SETUP = {"needs_setup", "has_admin", "user_count", "registration_enabled"}
REFERENCE_KEY = {
    "id",
    "name",
    "key_prefix",
    "created_at",
    "last_used_at",
    "expires_at",
    "is_active",
    "scoped_permissions",
}
KEY_PATHS = ("/api/auth/api-keys", "/api/cloud/auth/api-keys")


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def db_of(client: httpx.AsyncClient) -> Any:
    return client.app.state.ctx.db  # type: ignore[attr-defined]


class TestMe:
    async def test_no_users_mode_is_the_local_admin(self, client: httpx.AsyncClient) -> None:
        me = (await client.get("/api/auth/me")).json()
        assert REFERENCE_ME <= me.keys()
        assert me["is_admin"] is True and me["is_active"] is True
        assert me["auth_provider"] == "local" and me["display_name"] == "local"
        assert me["last_login_at"] is None and me["id"] is None
        assert me["role"] == "admin" and me["auth_method"] == "local"

    async def test_a_user_with_their_stored_fields(self, client: httpx.AsyncClient) -> None:
        body = ADMIN | {"display_name": "The Admin"}
        created = await client.post("/api/auth/setup/first-admin", json=body)
        assert created.status_code == 200, created.text
        client.cookies.clear()
        token, user = created.json()["token"], created.json()["user"]
        me = (await client.get("/api/auth/me", headers=bearer(token))).json()
        assert REFERENCE_ME <= me.keys()
        assert me["display_name"] == "The Admin" and me["is_admin"] is True
        assert me["is_active"] is True and me["auth_provider"] == "local"
        # first-admin logs the admin in: that login is the last one
        assert me["last_login_at"] == user["last_login_at"] is not None
        assert when(me["created_at"]) <= when(me["last_login_at"]) <= utcnow()
        assert me["permissions"] == sorted(ALL_PERMISSIONS)

    async def test_a_researcher_is_no_admin_and_a_narrow_key_keeps_its_users_role(
        self, client: httpx.AsyncClient
    ) -> None:
        admin = await setup_admin(client)
        rita = await add_user(client, admin, "rita", "researcher")
        me = (await client.get("/api/auth/me", headers=bearer(rita))).json()
        assert me["is_admin"] is False and me["display_name"] == "rita"
        key = await client.post(
            "/api/cloud/auth/api-keys",
            json={"name": "narrow", "scoped_permissions": ["job.view.own"]},
            headers=bearer(admin),
        )
        by_key = (await client.get("/api/auth/me", headers=bearer(key.json()["key"]))).json()
        assert by_key["is_admin"] is True and by_key["permissions"] == ["job.view.own"]

    async def test_last_login_is_stored_not_read_from_sessions(
        self, client: httpx.AsyncClient
    ) -> None:
        admin = await setup_admin(client)
        created = await client.post(
            "/api/users",
            json={"email": "o@example.com", "username": "olga", "password": "password-olga"},
            headers=bearer(admin),
        )
        assert created.status_code == 201 and created.json()["last_login_at"] is None
        login = await client.post(
            "/api/auth/login", json={"username": "olga", "password": "password-olga"}
        )
        client.cookies.clear()
        logged_in_at = login.json()["user"]["last_login_at"]
        assert logged_in_at is not None
        logout = await client.post("/api/auth/logout", headers=bearer(login.json()["token"]))
        assert logout.status_code == 200
        listed = (await client.get("/api/users", headers=bearer(admin))).json()
        olga = next(u for u in listed if u["username"] == "olga")
        assert olga["last_login_at"] == logged_in_at


class TestFirstAdminAndUsers:
    async def test_first_admin_answer_has_the_user_fields_and_message(
        self, client: httpx.AsyncClient
    ) -> None:
        body = {
            "email": "admin@example.com",
            "username": "admin",
            "password": "hunter2hunter2",
            "display_name": "Admin",
        }  # the reference server's recorded first-admin body
        answer = await client.post("/api/auth/setup/first-admin", json=body)
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data["success"] is True and data["message"] == "Admin account created successfully"
        assert data["token"] and data["csrf_token"]
        user = data["user"]
        assert REFERENCE_ME <= user.keys()
        assert user["display_name"] == "Admin" and user["is_admin"] is True
        assert user["role"] == "admin" and user["permissions"] == sorted(ALL_PERMISSIONS)
        with db_of(client).read() as session:
            row = session.get(UserModel, user["id"])
            assert row.display_name == "Admin" and row.last_login_at is not None

    async def test_without_display_name_the_username_is_shown_and_nothing_stored(
        self, client: httpx.AsyncClient
    ) -> None:
        answer = await client.post("/api/auth/setup/first-admin", json=ADMIN)
        assert answer.json()["user"]["display_name"] == "admin"
        with db_of(client).read() as session:
            assert session.get(UserModel, answer.json()["user"]["id"]).display_name is None

    async def test_unknown_fields_are_refused_and_nothing_is_made(
        self, client: httpx.AsyncClient
    ) -> None:
        refused = await client.post(
            "/api/auth/setup/first-admin", json=ADMIN | {"avatar_url": "http://x/a.png"}
        )
        assert_envelope(refused, 400, "unsupported_field")
        assert refused.json()["fields"] == ["avatar_url"]
        assert (await client.get("/api/auth/setup/status")).json()["user_count"] == 0
        admin = await setup_admin(client)
        new = {"email": "n@example.com", "username": "nina", "password": "password-nina"}
        for body in (new | {"levels": ["admin"]}, new | {"team": "x"}):
            assert_envelope(
                await client.post("/api/users", json=body, headers=bearer(admin)),
                400,
                "unsupported_field",
            )
        users = (await client.get("/api/users", headers=bearer(admin))).json()
        assert [u["username"] for u in users] == ["admin"]
        login = {"username": "admin", "password": ADMIN["password"], "otp": "123456"}
        assert_envelope(await client.post("/api/auth/login", json=login), 400, "unsupported_field")

    async def test_display_name_on_new_users_is_bounded(self, client: httpx.AsyncClient) -> None:
        admin = await setup_admin(client)
        new = {"email": "n@example.com", "username": "nina", "password": "password-nina"}
        too_long = await client.post(
            "/api/users", json=new | {"display_name": "x" * 101}, headers=bearer(admin)
        )
        assert_envelope(too_long, 422, "validation_error")
        blank = await client.post(
            "/api/users", json=new | {"display_name": "   "}, headers=bearer(admin)
        )
        assert_envelope(blank, 400, "invalid_display_name")
        made = await client.post(
            "/api/users", json=new | {"display_name": " Nina N. "}, headers=bearer(admin)
        )
        assert made.status_code == 201, made.text
        assert made.json()["display_name"] == "Nina N." and made.json()["is_admin"] is False
        listed = (await client.get("/api/users", headers=bearer(admin))).json()
        assert {u["username"]: u["display_name"] for u in listed} == {
            "admin": "admin",
            "nina": "Nina N.",
        }

    async def test_remember_me_makes_a_longer_session(self, client: httpx.AsyncClient) -> None:
        await setup_admin(client)
        lifetimes = {}
        for remember in (False, True):
            login = await client.post(
                "/api/auth/login",
                json={"username": "admin", "password": ADMIN["password"], "remember_me": remember},
            )
            assert login.status_code == 200, login.text
            lifetimes[remember] = when(login.json()["expires_at"]) - utcnow()
        assert timedelta(days=6) < lifetimes[False] <= timedelta(days=7)
        assert timedelta(days=29) < lifetimes[True] <= timedelta(days=30)


class TestSetupStatus:
    async def test_counts_users_and_says_there_is_no_registration(
        self, client: httpx.AsyncClient
    ) -> None:
        before = (await client.get("/api/auth/setup/status")).json()
        assert before == {
            "needs_setup": True,
            "has_admin": False,
            "user_count": 0,
            "registration_enabled": False,
        }
        admin = await setup_admin(client)
        await add_user(client, admin, "rita", "researcher")
        after = (await client.get("/api/auth/setup/status")).json()
        assert after.keys() == REFERENCE_SETUP
        assert after["needs_setup"] is False and after["has_admin"] is True
        assert after["user_count"] == 2 and after["registration_enabled"] is False


class TestApiKeys:
    async def test_reference_path_lists_a_bare_array_ours_wraps_it(
        self, client: httpx.AsyncClient
    ) -> None:
        admin = await setup_admin(client)
        body = {"name": "ci", "expires_days": 30, "scoped_permissions": ["job.submit"]}
        made = await client.post("/api/auth/api-keys", json=body, headers=bearer(admin))
        assert made.status_code == 200, made.text
        info = made.json()["key_info"]
        assert REFERENCE_KEY <= info.keys() and info["is_active"] is True
        assert timedelta(days=29) < when(info["expires_at"]) - utcnow() <= timedelta(days=30)
        bare = (await client.get("/api/auth/api-keys", headers=bearer(admin))).json()
        ours = (await client.get("/api/cloud/auth/api-keys", headers=bearer(admin))).json()
        assert isinstance(bare, list) and bare == ours["keys"] == [info]

    async def test_is_active_is_false_once_revoked_or_expired(
        self, client: httpx.AsyncClient
    ) -> None:
        admin = await setup_admin(client)
        ids = []
        for name in ("revoked", "expired", "live"):
            made = await client.post(
                "/api/cloud/auth/api-keys", json={"name": name}, headers=bearer(admin)
            )
            ids.append(made.json()["key_info"]["id"])
        revoked, expired, _ = ids
        deleted = await client.delete(f"/api/auth/api-keys/{revoked}", headers=bearer(admin))
        assert deleted.status_code == 200 and deleted.json()["success"] is True
        with db_of(client).write() as session:
            session.execute(
                update(ApiKeyModel)
                .where(ApiKeyModel.id == expired)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        for path in KEY_PATHS:
            answer = (await client.get(path, headers=bearer(admin))).json()
            listed = answer if isinstance(answer, list) else answer["keys"]
            assert {k["name"]: k["is_active"] for k in listed} == {
                "revoked": False,
                "expired": False,
                "live": True,
            }

    async def test_a_local_admin_key_is_inactive_once_users_exist(
        self, client: httpx.AsyncClient
    ) -> None:
        made = await client.post("/api/auth/api-keys", json={"name": "local"})
        assert made.json()["key_info"]["is_active"] is True
        admin = await setup_admin(client)
        everyone = await client.get("/api/auth/api-keys?all=true", headers=bearer(admin))
        assert [(k["name"], k["is_active"]) for k in everyone.json()] == [("local", False)]

    @pytest.mark.parametrize("path", KEY_PATHS)
    async def test_expiry_is_one_to_365_days_on_both_paths(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        for days in (0, 366, 1000):
            refused = await client.post(path, json={"name": "y", "expires_days": days})
            assert_envelope(refused, 422, "validation_error")
            assert refused.json()["detail"][0]["loc"] == ["body", "expires_days"]
        made = await client.post(path, json={"name": "y", "expires_days": 365})
        assert made.status_code == 200, made.text
        expires = when(made.json()["key_info"]["expires_at"]) - utcnow()
        assert timedelta(days=364) < expires <= timedelta(days=365)
        unknown = await client.post(path, json={"name": "y", "never_expires": True})
        assert_envelope(unknown, 400, "unsupported_field")
