"""Who is calling: users and roles, passwords, sessions, scoped API keys.

Rules:
- With no users and a loopback bind, a request without credentials is the local admin.
- Once any user exists, every protected route needs a session or an API key.
- A credential that is presented and wrong is refused in every mode (never ignored).
- Only SHA-256 hashes of session tokens and API keys are stored; passwords use argon2.
- Every credential is resolved from the database on every request (one indexed read), so a
  revocation, a new user or a deactivation made by any replica counts at once everywhere.
- A login spends a token of two database-held budgets (the account, the peer address) before
  its password is checked, so concurrent guesses cannot outrun the limit.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError

from cloudtune.domain.jobs import utcnow
from cloudtune.domain.principal import (
    ALL_PERMISSIONS,
    LOCAL_ADMIN,
    ROLE_PERMISSIONS,
    ROLES,
    Principal,
)
from cloudtune.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
)
from cloudtune.services.context import Context
from cloudtune.settings import Settings
from cloudtune.store import users as user_store
from cloudtune.store.db import Database
from cloudtune.store.tables import ApiKeyModel, SessionModel, UserModel

API_KEY_PREFIX = "stk_"
SESSION_PREFIX = "sts_"
SESSION_LIFETIME = timedelta(days=7)
KEY_TOUCH_EVERY = timedelta(minutes=1)
_USERNAME = re.compile(r"^[A-Za-z0-9_-]{3,50}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_hasher = PasswordHasher()
# Verifying against this keeps a login for an unknown user as slow as one for a known user.
_DUMMY_HASH = _hasher.hash("not a real password")
SETUP_TOKEN_HEADER = "X-Setup-Token"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoginBudget:
    """A token bucket: `capacity` attempts at once, refilled at `refill_per_second`."""

    prefix: str
    capacity: float
    refill_per_second: float


# Per account (username and e-mail are one account): 5 attempts per 5 minutes.
ACCOUNT_BUDGET = LoginBudget("account:", capacity=5, refill_per_second=5 / 300)
# Per peer address: 20 attempts per minute.
ADDRESS_BUDGET = LoginBudget("address:", capacity=20, refill_per_second=20 / 60)
# Both budgets are full again after this long untouched; such rows are dropped.
_BUDGET_IDLE_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    csrf_token: str
    user: UserModel
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token_for(ctx: Context, session_token: str) -> str:
    return ctx.tokens.sign(f"csrf:{session_token}")[:43]


def check_csrf(ctx: Context, session_token: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token_for(ctx, session_token), presented)


# -- resolving a request's caller -----------------------------------------------------------


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


def _resolve(
    ctx: Context, *, token: str | None, from_cookie: bool
) -> tuple[Principal, datetime | None]:
    if not token:
        if users_exist(ctx):
            raise _auth_required()
        return LOCAL_ADMIN, None
    if token.startswith(API_KEY_PREFIX):
        return _principal_for_key(ctx, token)
    return _principal_for_session(ctx, token, from_cookie)


def _cache_key(token: str | None, from_cookie: bool) -> str:
    if not token:
        return "anonymous"
    return ("c:" if from_cookie else "t:") + token_hash(token)


def _auth_required() -> AuthenticationError:
    return AuthenticationError("Authentication required", code="authentication_required")


def users_exist(ctx: Context) -> bool:
    with ctx.db.read() as session:
        return user_store.any_user(session)


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


# -- users, login, sessions -----------------------------------------------------------------


def create_user(
    ctx: Context, *, username: str, email: str, password: str, role: str, first_admin: bool = False
) -> UserModel:
    """Create a user. With `first_admin`, only if no user exists yet (exactly once, even
    under concurrent calls: the setup marker's primary key decides)."""
    _check_new_user(username, email, password, role)
    now = utcnow()
    user = UserModel(
        id=uuid.uuid4().hex,
        username=username,
        email=email.strip().lower(),
        password_hash=_hasher.hash(password),
        role=role,
        is_active=True,
        created_at=now,
    )
    try:
        with ctx.db.write() as session:
            if first_admin:
                if user_store.count_users(session) > 0:
                    raise _setup_done()
                user_store.mark_setup(session, "first_admin", now)
            user_store.add_user(session, user)
    except IntegrityError:
        if first_admin:
            raise _setup_done() from None
        raise ConflictError(
            f"a user named {username!r} or with e-mail {email!r} already exists",
            code="user_exists",
        ) from None
    return user


def setup_token(ctx: Context) -> str:
    """The one-time token that lets a non-loopback caller create the first admin. Derived from
    the server key, so every replica sharing the key accepts the same token; it stops mattering
    once a user exists."""
    return ctx.tokens.sign("first-admin-setup")


def check_first_admin_caller(ctx: Context, *, peer: str, presented_token: str | None) -> None:
    """First-admin setup is open to a loopback peer (the OS user at the machine), or to a
    caller holding the setup token from the server log; anyone else is refused."""
    if is_loopback(peer):
        return
    if presented_token and hmac.compare_digest(
        presented_token.encode(), setup_token(ctx).encode()
    ):
        return
    raise PermissionDeniedError(
        f"first-admin setup from another machine needs the {SETUP_TOKEN_HEADER} header with the "
        "token printed in the server log at startup (or run it from the server's own machine, "
        "or use `cloudtune users create-admin` there)",
        code="setup_token_required",
    )


def announce_setup_token(ctx: Context) -> None:
    """At startup with no user yet, print the setup token once in the server log (by design
    the one secret that is logged: whoever reads the server's log already runs it)."""
    if users_exist(ctx):
        return
    log.warning(
        "No user exists yet. To create the first admin from another machine, POST "
        "/api/auth/setup/first-admin with the header %s: %s",
        SETUP_TOKEN_HEADER,
        setup_token(ctx),
    )


def _setup_done() -> ConflictError:
    return ConflictError(
        "Setup already completed: an admin exists. Log in instead.", code="setup_completed"
    )


def _check_new_user(username: str, email: str, password: str, role: str) -> None:
    if not _USERNAME.match(username):
        raise InvalidInputError(
            "username must be 3-50 letters, digits, '_' or '-'", code="invalid_username"
        )
    if not _EMAIL.match(email.strip()):
        raise InvalidInputError("email is not an e-mail address", code="invalid_email")
    if len(password) < 8:
        raise InvalidInputError("password must have at least 8 characters", code="weak_password")
    if role not in ROLE_PERMISSIONS:
        raise InvalidInputError(
            f"unknown role {role!r}; roles: {', '.join(ROLES)}", code="invalid_role"
        )


def login(ctx: Context, *, login_name: str, password: str, client: str) -> LoginResult:
    """A session for `login_name` (username or e-mail) and `password`, tried from the peer
    address `client`."""
    with ctx.db.read() as session:
        user = user_store.find_user(session, login_name)
    # Keyed by user id, so the username and the e-mail spend from one budget.
    account = user.id if user is not None else "name:" + login_name.strip().lower()[:255]
    epoch = ctx.clock().timestamp()
    _take_login_tokens(ctx, account=account, address=_address_key(client), now=epoch)
    if not _password_matches(ctx, user, password):
        # So an admin can see who keeps an account rate-limited (docs/security.md); bounded by
        # the budgets. An unknown name is not logged: it may be a password in the wrong field.
        log.warning(
            "failed login for %s from %s",
            user.username if user is not None else "an unknown name",
            client,
        )
        raise AuthenticationError("Invalid username or password", code="invalid_credentials")
    assert user is not None
    if _hasher.check_needs_rehash(user.password_hash):
        with ctx.db.write() as session:
            user_store.set_password_hash(session, user.id, _hasher.hash(password))
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    expires = now + SESSION_LIFETIME
    with ctx.db.write() as session:
        # The owner proved who they are: their account's budget is full again.
        user_store.refill_login_budget(session, ACCOUNT_BUDGET.prefix + account)
        user_store.delete_idle_login_budgets(session, epoch - _BUDGET_IDLE_SECONDS)
        user_store.delete_expired_sessions(session, now)
        user_store.add_session(
            session,
            SessionModel(
                token_hash=token_hash(token), user_id=user.id, created_at=now, expires_at=expires
            ),
        )
    return LoginResult(token, csrf_token_for(ctx, token), user, expires)


def _take_login_tokens(ctx: Context, *, account: str, address: str, now: float) -> None:
    """Spend one attempt of the address's budget, then of the account's, before any password
    is checked; refused → RateLimitedError. An attempt the account refuses still counts
    against its address."""
    wait: int | None = None
    with ctx.db.write() as session:
        for budget, name in ((ADDRESS_BUDGET, address), (ACCOUNT_BUDGET, account)):
            key = budget.prefix + name
            if not user_store.take_login_token(
                session, key, budget.capacity, budget.refill_per_second, now
            ):
                wait = user_store.login_token_wait(
                    session, key, budget.capacity, budget.refill_per_second, now
                )
                break
    if wait is not None:
        raise RateLimitedError(
            f"Too many login attempts; try again in {wait} s", retry_after_seconds=wait
        )


def _address_key(client: str) -> str:
    """The budget key of a peer address. One IPv6 host usually holds a whole /64, so the /64
    is the address; anything unparsable is used as it is."""
    try:
        address = ipaddress.ip_address(client.strip("[]"))
    except ValueError:
        return client[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


def _password_matches(ctx: Context, user: UserModel | None, password: str) -> bool:
    # Counted, so an operator (and a test) can see how many guesses reached argon2.
    ctx.metrics.password_checks.inc()
    try:
        if user is None or not user.is_active:
            _hasher.verify(_DUMMY_HASH, password)
            return False
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def logout(ctx: Context, token: str | None) -> None:
    if token and not token.startswith(API_KEY_PREFIX):
        with ctx.db.write() as session:
            user_store.delete_session(session, token_hash(token))


def current_user(ctx: Context, caller: Principal) -> dict[str, Any]:
    user = None
    if caller.user_id is not None:
        with ctx.db.read() as session:
            user = user_store.get_user(session, caller.user_id)
    data = (
        user_to_dict(user)
        if user
        else {"id": None, "username": "local", "email": None, "role": "admin", "created_at": None}
    )
    data["permissions"] = sorted(caller.permissions)
    data["auth_method"] = caller.via
    return data


def user_to_dict(user: UserModel) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "role": user.role,
        "created_at": user.created_at.isoformat(),
    }


# -- API keys -------------------------------------------------------------------------------


def create_api_key(
    ctx: Context,
    caller: Principal,
    *,
    name: str,
    expires_days: int | None,
    scoped_permissions: list[str] | None,
) -> tuple[str, ApiKeyModel]:
    """Returns the full key (shown once) and its stored record.

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
    if not name.strip():
        raise InvalidInputError("name must not be empty", code="invalid_input")
    if expires_days is not None and not 1 <= expires_days <= 3650:
        raise InvalidInputError("expires_days must be between 1 and 3650", code="invalid_input")
    scopes = None
    if scoped_permissions is not None:
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
        scopes = sorted(set(scoped_permissions))
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
    return key, row


def list_api_keys(ctx: Context, caller: Principal, *, everyone: bool) -> list[ApiKeyModel]:
    caller.require("api.keys.all" if everyone else "api.keys.own")
    with ctx.db.read() as session:
        return user_store.list_api_keys(session, user_id=caller.user_id, everyone=everyone)


def revoke_api_key(ctx: Context, caller: Principal, key_id: str) -> None:
    with ctx.db.read() as session:
        row = user_store.get_api_key(session, key_id)
    mine = row is not None and row.user_id == caller.user_id
    if row is None or not (caller.has("api.keys.all") or (mine and caller.has("api.keys.own"))):
        raise NotFoundError(f"API key not found: {key_id}", code="api_key_not_found")
    with ctx.db.write() as session:
        user_store.revoke_api_key(session, key_id, utcnow())


def api_key_to_dict(row: ApiKeyModel) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": row.id,
        "name": row.name,
        "key_prefix": row.key_prefix,
        "user_id": row.user_id,
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "last_used_at": iso(row.last_used_at),
        "revoked_at": iso(row.revoked_at),
        "scoped_permissions": row.scoped_permissions,
    }


def list_users(ctx: Context, caller: Principal) -> list[dict[str, Any]]:
    caller.require("user.manage")
    with ctx.db.read() as session:
        return [user_to_dict(u) for u in user_store.list_users(session)]


def add_user(
    ctx: Context, caller: Principal, *, username: str, email: str, password: str, role: str
) -> dict[str, Any]:
    caller.require("user.manage")
    return user_to_dict(
        create_user(ctx, username=username, email=email, password=password, role=role)
    )


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def refuse_open_bind_without_admin(settings: Settings, db: Database) -> None:
    """A server reachable from other machines must not start in no-users (everyone is admin)
    mode."""
    if is_loopback(settings.host):
        return
    with db.read() as session:
        admins = user_store.count_admins(session)
    if admins == 0:
        raise SystemExit(
            f"refusing to listen on {settings.host}: there is no admin user, so anyone who "
            "can reach this address would be admin. Create one first:\n"
            "  cloudtune users create-admin --username admin --email you@example.com"
        )
