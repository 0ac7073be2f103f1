"""User accounts: creating them (the first admin exactly once), listing them, and who the
caller is. Passwords are hashed with argon2; the stored rows never leave this layer."""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from collections.abc import Iterable

from argon2 import PasswordHasher
from sqlalchemy.exc import IntegrityError

from cloudtune.domain.accounts import DISPLAY_NAME_MAX, CurrentUser, SetupStatus, User
from cloudtune.domain.jobs import utcnow
from cloudtune.domain.principal import ROLE_PERMISSIONS, ROLES, Principal
from cloudtune.errors import (
    ConflictError,
    InvalidInputError,
    PermissionDeniedError,
    unknown_fields_error,
)
from cloudtune.services.callers import is_loopback, users_exist
from cloudtune.services.context import Context
from cloudtune.store import users as user_store
from cloudtune.store.db import Database
from cloudtune.store.tables import UserModel

SETUP_TOKEN_HEADER = "X-Setup-Token"
_USERNAME = re.compile(r"^[A-Za-z0-9_-]{3,50}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
hasher = PasswordHasher()

log = logging.getLogger(__name__)


def create_user(
    ctx: Context,
    *,
    username: str,
    email: str,
    password: str,
    role: str,
    display_name: str | None = None,
    first_admin: bool = False,
    unknown_fields: Iterable[str] = (),
) -> User:
    """Create a user. With `first_admin`, only if no user exists yet (exactly once, even
    under concurrent calls: the setup marker's primary key decides). `unknown_fields`: what
    else the request carried, refused by name."""
    refuse_unknown_fields(unknown_fields)
    _check_new_user(username, email, password, role)
    now = utcnow()
    row = UserModel(
        id=uuid.uuid4().hex,
        username=username,
        email=email.strip().lower(),
        password_hash=hasher.hash(password),
        role=role,
        is_active=True,
        created_at=now,
        display_name=_display_name(display_name),
    )
    try:
        with ctx.db.write() as session:
            if first_admin:
                if user_store.count_users(session) > 0:
                    raise _setup_done()
                user_store.mark_setup(session, "first_admin", now)
            user_store.add_user(session, row)
    except IntegrityError:
        if first_admin:
            raise _setup_done() from None
        raise ConflictError(
            f"a user named {username!r} or with e-mail {email!r} already exists",
            code="user_exists",
        ) from None
    return user_model_to_user(row)


def add_user(
    ctx: Context,
    caller: Principal,
    *,
    username: str,
    email: str,
    password: str,
    role: str,
    display_name: str | None = None,
    unknown_fields: Iterable[str] = (),
) -> User:
    caller.require("user.manage")
    return create_user(
        ctx,
        username=username,
        email=email,
        password=password,
        role=role,
        display_name=display_name,
        unknown_fields=unknown_fields,
    )


def list_users(ctx: Context, caller: Principal) -> list[User]:
    caller.require("user.manage")
    with ctx.db.read() as session:
        return [user_model_to_user(u) for u in user_store.list_users(session)]


def current_user(ctx: Context, caller: Principal) -> CurrentUser:
    row = None
    if caller.user_id is not None:
        with ctx.db.read() as session:
            row = user_store.get_user(session, caller.user_id)
    permissions = tuple(sorted(caller.permissions))
    if row is None:
        # The local admin of a server with no users: no account behind it, so nothing stored.
        return CurrentUser(
            id=None,
            username="local",
            email=None,
            role="admin",
            created_at=None,
            permissions=permissions,
            auth_method=caller.via,
            display_name=None,
            is_active=True,
            last_login_at=None,
        )
    return CurrentUser(
        id=row.id,
        username=row.username,
        email=row.email,
        role=row.role,
        created_at=row.created_at,
        permissions=permissions,
        auth_method=caller.via,
        display_name=row.display_name,
        is_active=row.is_active,
        last_login_at=row.last_login_at,
    )


def setup_status(ctx: Context) -> SetupStatus:
    """Whether the first admin is still to be made, and how many accounts exist."""
    with ctx.db.read() as session:
        count = user_store.count_users(session)
        admins = user_store.count_admins(session) if count else 0
    return SetupStatus(needs_setup=count == 0, has_admin=admins > 0, user_count=count)


def admin_count(db: Database) -> int:
    with db.read() as session:
        return user_store.count_admins(session)


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


def user_model_to_user(row: UserModel) -> User:
    return User(
        id=row.id,
        username=row.username,
        email=row.email,
        role=row.role,
        created_at=row.created_at,
        display_name=row.display_name,
        is_active=row.is_active,
        last_login_at=row.last_login_at,
    )


def refuse_unknown_fields(fields: Iterable[str]) -> None:
    """A request field this server does not act on is refused by name (400), never dropped."""
    if names := list(fields):
        raise unknown_fields_error(names)


def _display_name(value: str | None) -> str | None:
    if value is None:
        return None
    name = value.strip()
    if not name or len(name) > DISPLAY_NAME_MAX or not name.isprintable():
        raise InvalidInputError(
            f"display_name must be 1-{DISPLAY_NAME_MAX} printable characters",
            code="invalid_display_name",
        )
    return name


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
