"""Scoped API keys (`stk_…`): made by a login session, shown once, stored as a hash, and
worth at most their owner's permissions."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from cloudtune.domain.accounts import ApiKey, NewApiKey
from cloudtune.domain.jobs import utcnow
from cloudtune.domain.principal import ALL_PERMISSIONS, Principal
from cloudtune.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from cloudtune.services.callers import API_KEY_PREFIX, token_hash
from cloudtune.services.context import Context
from cloudtune.services.users import refuse_unknown_fields
from cloudtune.store import users as user_store
from cloudtune.store.tables import ApiKeyModel

# A key lives at most a year (as on the reference server); it can always be made again.
MAX_EXPIRES_DAYS = 365


def create_api_key(
    ctx: Context,
    caller: Principal,
    *,
    name: str,
    expires_days: int | None,
    scoped_permissions: list[str] | None,
    unknown_fields: Iterable[str] = (),
) -> NewApiKey:
    """The full key (shown once) and what is stored about it.

    Only a login session (or the local admin of no-users mode, who has none) creates keys: a
    key made with a key would not expire with it nor be revoked with it, so one leaked key
    could mint others that outlive it."""
    if caller.via == "api_key":
        raise PermissionDeniedError(
            "an API key cannot create API keys: "
            + (
                "log in (POST /api/auth/login) and create the key with your session"
                if caller.user_id is not None
                else "send the request without a key (no users exist, so this machine "
                "is the local admin)"
            ),
            code="session_required",
        )
    caller.require("api.keys.own")
    refuse_unknown_fields(unknown_fields)
    if not name.strip():
        raise InvalidInputError("name must not be empty", code="invalid_input")
    if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRES_DAYS:
        raise InvalidInputError(
            f"expires_days must be between 1 and {MAX_EXPIRES_DAYS}", code="invalid_input"
        )
    scopes = _scopes(caller, scoped_permissions)
    key = API_KEY_PREFIX + secrets.token_urlsafe(30)
    now = utcnow()
    row = ApiKeyModel(
        id=uuid.uuid4().hex,
        user_id=caller.user_id,
        name=name.strip(),
        key_prefix=key[:12],
        key_hash=token_hash(key),
        scoped_permissions=scopes,
        created_at=now,
        expires_at=now + timedelta(days=expires_days) if expires_days else None,
    )
    with ctx.db.write() as session:
        user_store.add_api_key(session, row)
    # Made by a user, or by the local admin while no user exists: valid either way.
    return NewApiKey(key=key, info=api_key_model_to_api_key(row, now, users_exist=False))


def list_api_keys(ctx: Context, caller: Principal, *, everyone: bool) -> list[ApiKey]:
    caller.require("api.keys.all" if everyone else "api.keys.own")
    with ctx.db.read() as session:
        rows = user_store.list_api_keys(session, user_id=caller.user_id, everyone=everyone)
        users_exist = user_store.any_user(session)
    now = utcnow()
    return [api_key_model_to_api_key(r, now, users_exist=users_exist) for r in rows]


def revoke_api_key(ctx: Context, caller: Principal, key_id: str) -> None:
    with ctx.db.read() as session:
        row = user_store.get_api_key(session, key_id)
    mine = row is not None and row.user_id == caller.user_id
    if row is None or not (caller.has("api.keys.all") or (mine and caller.has("api.keys.own"))):
        raise NotFoundError(f"API key not found: {key_id}", code="api_key_not_found")
    with ctx.db.write() as session:
        user_store.revoke_api_key(session, key_id, utcnow())


def api_key_model_to_api_key(row: ApiKeyModel, now: datetime, *, users_exist: bool) -> ApiKey:
    """The key as of `now`. `is_active` makes the tests authentication makes of the key
    itself: not revoked, not expired, and not a local-admin key once users exist."""
    expired = row.expires_at is not None and row.expires_at <= now
    orphaned = row.user_id is None and users_exist
    return ApiKey(
        id=row.id,
        name=row.name,
        key_prefix=row.key_prefix,
        user_id=row.user_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        scoped_permissions=tuple(row.scoped_permissions)
        if row.scoped_permissions is not None
        else None,
        is_active=row.revoked_at is None and not expired and not orphaned,
    )


def _scopes(caller: Principal, scoped_permissions: list[str] | None) -> list[str] | None:
    if scoped_permissions is None:
        return None
    if not scoped_permissions:
        # An empty list once meant "no scope, so everything": the opposite of what it says.
        raise InvalidInputError(
            "scoped_permissions must not be empty: omit the field for a key with all of "
            "your permissions, or list at least one permission",
            code="invalid_permissions",
        )
    unknown = sorted(set(scoped_permissions) - ALL_PERMISSIONS)
    if unknown:
        raise InvalidInputError(
            f"unknown permissions: {', '.join(unknown)}", code="invalid_permissions"
        )
    beyond = sorted(set(scoped_permissions) - caller.permissions)
    if beyond:
        raise PermissionDeniedError(
            "a key cannot have permissions its creator lacks: " + ", ".join(beyond),
            required_permission=beyond[0],
        )
    return sorted(set(scoped_permissions))
