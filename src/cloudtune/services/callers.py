"""Who is calling: the principal behind a request's credential.

Rules:
- With no users and a loopback bind, a request without credentials is the local admin.
- Once any user exists, every protected route needs a session or an API key.
- A credential that is presented and wrong is refused in every mode (never ignored).
- Only SHA-256 hashes of session tokens and API keys are stored.
- A credential is resolved from the database and kept by this process only while the
  database's auth epoch stands, so a revocation, a new user or a deactivation made by any
  replica counts on the next request everywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from datetime import datetime, timedelta

from cloudtune.domain.jobs import utcnow
from cloudtune.domain.principal import ALL_PERMISSIONS, LOCAL_ADMIN, ROLE_PERMISSIONS, Principal
from cloudtune.errors import AuthenticationError
from cloudtune.services.context import Context
from cloudtune.store import users as user_store

API_KEY_PREFIX = "stk_"
SESSION_PREFIX = "sts_"
KEY_TOUCH_EVERY = timedelta(minutes=1)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token_for(ctx: Context, session_token: str) -> str:
    return ctx.tokens.sign(f"csrf:{session_token}")[:43]


def check_csrf(ctx: Context, session_token: str, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(csrf_token_for(ctx, session_token), presented)


def cached_principal(ctx: Context, *, token: str | None, from_cookie: bool) -> Principal | None:
    """The caller as this process resolved it before, if nothing about users, keys or sessions
    changed anywhere since (the auth epoch); None: call `authenticate`."""
    epoch = user_store.peek_auth_epoch(ctx.db)
    if epoch is None:
        return None
    return ctx.credentials.get(epoch, _cache_key(token, from_cookie), utcnow())


def authenticate(ctx: Context, *, token: str | None, from_cookie: bool) -> Principal:
    """The caller for a request carrying `token` (bearer, X-API-Key or session cookie), read
    from the database. The answer is kept only until the auth epoch moves (any replica adding
    a user, revoking a key, ending a session) or the credential expires."""
    epoch = user_store.peek_auth_epoch(ctx.db)  # before the reads: a change during them wins
    principal, valid_until = _resolve(ctx, token=token, from_cookie=from_cookie)
    if epoch is not None:
        ctx.credentials.put(epoch, _cache_key(token, from_cookie), principal, valid_until)
    return principal


def users_exist(ctx: Context) -> bool:
    with ctx.db.read() as session:
        return user_store.any_user(session)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _resolve(
    ctx: Context, *, token: str | None, from_cookie: bool
) -> tuple[Principal, datetime | None]:
    if not token:
        if users_exist(ctx):
            raise AuthenticationError("Authentication required", code="authentication_required")
        return LOCAL_ADMIN, None
    if token.startswith(API_KEY_PREFIX):
        return _principal_for_key(ctx, token)
    return _principal_for_session(ctx, token, from_cookie)


def _cache_key(token: str | None, from_cookie: bool) -> str:
    if not token:
        return "anonymous"
    return ("c:" if from_cookie else "t:") + token_hash(token)


def _principal_for_key(ctx: Context, key: str) -> tuple[Principal, datetime | None]:
    now = utcnow()
    with ctx.db.read() as session:
        row = user_store.find_api_key(session, token_hash(key))
        user = user_store.get_user(session, row.user_id) if row and row.user_id else None
        users = user_store.any_user(session) if row and row.user_id is None else False
    if row is None or row.revoked_at is not None:
        raise AuthenticationError("Invalid or revoked API key", code="invalid_api_key")
    if row.expires_at is not None and row.expires_at <= now:
        raise AuthenticationError("API key expired", code="api_key_expired")
    if row.user_id is None:
        if users:
            raise AuthenticationError(
                "API keys made before user accounts existed no longer work; create a new one",
                code="invalid_api_key",
            )
        base, name = ALL_PERMISSIONS, "local"
    else:
        if user is None or not user.is_active:
            raise AuthenticationError("Invalid or revoked API key", code="invalid_api_key")
        base, name = ROLE_PERMISSIONS[user.role], user.username
    if row.last_used_at is None or now - row.last_used_at > KEY_TOUCH_EVERY:
        with ctx.db.write() as session:
            user_store.touch_api_key(session, row.id, now)
    scopes = frozenset(row.scoped_permissions) if row.scoped_permissions else base
    principal = Principal(
        user_id=row.user_id, permissions=base & scopes, name=name, via="api_key", key_id=row.id
    )
    # Resolved again within a minute at most, so `last_used_at` keeps being recorded.
    return principal, _earliest(row.expires_at, now + KEY_TOUCH_EVERY)


def _principal_for_session(
    ctx: Context, token: str, from_cookie: bool
) -> tuple[Principal, datetime | None]:
    with ctx.db.read() as session:
        row = user_store.get_session(session, token_hash(token))
        user = user_store.get_user(session, row.user_id) if row else None
    if row is None or user is None or not user.is_active or row.expires_at <= utcnow():
        raise AuthenticationError("Invalid or expired session", code="invalid_session")
    principal = Principal(
        user_id=user.id,
        permissions=ROLE_PERMISSIONS[user.role],
        name=user.username,
        via="cookie" if from_cookie else "session",
    )
    return principal, row.expires_at


def _earliest(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None
