"""Logging in and out. A login spends a token of two database-held budgets (the account, the
peer address) before its password is checked, so concurrent guesses cannot outrun the limit."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from argon2.exceptions import InvalidHashError, VerificationError

from cloudtune.domain.accounts import Session
from cloudtune.domain.jobs import utcnow
from cloudtune.errors import AuthenticationError, RateLimitedError
from cloudtune.services.callers import (
    API_KEY_PREFIX,
    SESSION_PREFIX,
    csrf_token_for,
    token_hash,
)
from cloudtune.services.context import Context
from cloudtune.services.users import hasher, refuse_unknown_fields, user_model_to_user
from cloudtune.store import users as user_store
from cloudtune.store.tables import SessionModel, UserModel

SESSION_LIFETIME = timedelta(days=7)
# With `remember_me` (as the reference server's login offers).
REMEMBERED_SESSION_LIFETIME = timedelta(days=30)
# Verifying against this keeps a login for an unknown user as slow as one for a known user.
_DUMMY_HASH = hasher.hash("not a real password")

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


def login(
    ctx: Context,
    *,
    login_name: str,
    password: str,
    client: str,
    remember_me: bool = False,
    unknown_fields: Iterable[str] = (),
) -> Session:
    """A session for `login_name` (username or e-mail) and `password`, tried from the peer
    address `client`; it lasts 30 days with `remember_me`, else 7."""
    refuse_unknown_fields(unknown_fields)
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
    assert user is not None  # _password_matches is False without one
    if hasher.check_needs_rehash(user.password_hash):
        with ctx.db.write() as session:
            user_store.set_password_hash(session, user.id, hasher.hash(password))
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    expires = now + (REMEMBERED_SESSION_LIFETIME if remember_me else SESSION_LIFETIME)
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
        user_store.set_last_login(session, user.id, now)
    account_now = dataclasses.replace(user_model_to_user(user), last_login_at=now)
    return Session(token, csrf_token_for(ctx, token), account_now, expires)


def logout(ctx: Context, token: str | None) -> None:
    if token and not token.startswith(API_KEY_PREFIX):
        with ctx.db.write() as session:
            user_store.delete_session(session, token_hash(token))


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
            hasher.verify(_DUMMY_HASH, password)
            return False
        return hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
