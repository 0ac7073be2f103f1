"""Users and API keys as services: they hand out domain objects (no password or key hash can
reach a route), and the open-bind guard refuses a network address until an admin exists."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from cloudtune.api.app import refuse_open_bind_without_admin
from cloudtune.domain.accounts import ApiKey, User
from cloudtune.domain.principal import ROLE_PERMISSIONS, Principal
from cloudtune.errors import ConflictError, NotFoundError, PermissionDeniedError
from cloudtune.services import api_keys, callers, users
from cloudtune.services.context import Context
from cloudtune.settings import Settings
from cloudtune.store.db import Database
from tests.factories import make_context


@pytest.fixture
def ctx(settings: Settings, db: Database) -> Iterator[Context]:
    yield make_context(settings, db)


def session_of(user: User) -> Principal:
    return Principal(
        user_id=user.id, permissions=ROLE_PERMISSIONS[user.role], name=user.username, via="session"
    )


def test_users_are_domain_objects_without_their_password(ctx: Context) -> None:
    user = users.create_user(
        ctx, username="rita", email="Rita@Example.com", password="long enough", role="researcher"
    )
    assert isinstance(user, User) and user.email == "rita@example.com"
    assert "password_hash" not in {f.name for f in dataclasses.fields(User)}
    admin = users.create_user(
        ctx, username="root", email="root@example.com", password="long enough", role="admin"
    )
    assert [u.username for u in users.list_users(ctx, session_of(admin))] == ["rita", "root"]
    with pytest.raises(PermissionDeniedError):
        users.list_users(ctx, session_of(user))
    me = users.current_user(ctx, session_of(user))
    assert me.id == user.id and me.auth_method == "session" and "job.submit" in me.permissions


def test_a_key_is_shown_once_and_stored_as_a_hash(ctx: Context) -> None:
    owner = session_of(
        users.create_user(
            ctx, username="rita", email="r@example.com", password="long enough", role="researcher"
        )
    )
    made = api_keys.create_api_key(
        ctx, owner, name="ci", expires_days=None, scoped_permissions=["job.submit"]
    )
    assert made.key.startswith("stk_") and made.info.key_prefix == made.key[:12]
    assert isinstance(made.info, ApiKey) and made.info.scoped_permissions == ("job.submit",)
    assert made.key not in repr(made.info)
    assert api_keys.list_api_keys(ctx, owner, everyone=False) == [made.info]
    caller = callers.authenticate(ctx, token=made.key, from_cookie=False)
    assert caller.permissions == frozenset({"job.submit"}) and caller.via == "api_key"
    with pytest.raises(PermissionDeniedError):
        api_keys.create_api_key(
            ctx, caller, name="minted", expires_days=1, scoped_permissions=None
        )


def test_someone_elses_key_reads_as_unknown(ctx: Context) -> None:
    rita, bob = (
        session_of(
            users.create_user(
                ctx,
                username=n,
                email=f"{n}@example.com",
                password="long enough",
                role="researcher",
            )
        )
        for n in ("rita", "bob")
    )
    key = api_keys.create_api_key(ctx, rita, name="k", expires_days=1, scoped_permissions=None)
    with pytest.raises(NotFoundError):
        api_keys.revoke_api_key(ctx, bob, key.info.id)
    api_keys.revoke_api_key(ctx, rita, key.info.id)
    assert api_keys.list_api_keys(ctx, rita, everyone=False)[0].revoked_at is not None


def test_a_network_bind_needs_an_admin(ctx: Context, settings: Settings) -> None:
    settings.host = "127.0.0.1"
    refuse_open_bind_without_admin(settings, ctx.db)  # loopback: no-users mode is fine
    settings.host = "0.0.0.0"
    with pytest.raises(ConflictError, match="cloudtune users create-admin") as refused:
        refuse_open_bind_without_admin(settings, ctx.db)
    assert refused.value.code == "admin_required"
    users.create_user(
        ctx, username="root", email="root@example.com", password="long enough", role="admin"
    )
    refuse_open_bind_without_admin(settings, ctx.db)
