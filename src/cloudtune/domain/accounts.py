"""User accounts and API keys as the services hand them out (never the stored rows, which
carry password and key hashes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cloudtune.domain.principal import ALL_PERMISSIONS, ROLE_PERMISSIONS

# The width of users.display_name.
DISPLAY_NAME_MAX = 100
# Every account here has a password kept by this server; there are no outside identity
# providers, so this is the one value `auth_provider` takes.
LOCAL_AUTH_PROVIDER = "local"


def role_is_admin(role: str) -> bool:
    """Whether a role grants every permission there is."""
    return ROLE_PERMISSIONS.get(role, frozenset()) >= ALL_PERMISSIONS


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    email: str
    role: str
    created_at: datetime
    # None: none was given.
    display_name: str | None
    is_active: bool
    last_login_at: datetime | None

    @property
    def permissions(self) -> tuple[str, ...]:
        """What the role grants, sorted."""
        return tuple(sorted(ROLE_PERMISSIONS.get(self.role, frozenset())))

    @property
    def is_admin(self) -> bool:
        return role_is_admin(self.role)


@dataclass(frozen=True, slots=True)
class CurrentUser:
    """Who the caller is: a user, or the local admin of a server with no users (no id)."""

    id: str | None
    username: str
    email: str | None
    role: str
    created_at: datetime | None
    # The caller's own permissions: an API key's scope narrows its user's.
    permissions: tuple[str, ...]
    auth_method: str
    display_name: str | None
    is_active: bool
    last_login_at: datetime | None

    @property
    def is_admin(self) -> bool:
        """Whether the user's role grants every permission (a narrower key's user still is)."""
        return role_is_admin(self.role)


@dataclass(frozen=True, slots=True)
class SetupStatus:
    needs_setup: bool
    has_admin: bool
    user_count: int
    # Accounts are made by an admin (or the first-admin setup); nobody can sign up alone.
    registration_enabled: bool = False


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    key_prefix: str
    # None: made by the local admin of a server with no users.
    user_id: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    scoped_permissions: tuple[str, ...] | None
    # Neither revoked nor expired when it was read.
    is_active: bool


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just made: the full key is in this answer only; only its hash is stored."""

    key: str
    info: ApiKey


@dataclass(frozen=True, slots=True)
class Session:
    """A login: the session token, the CSRF token our pages send back, and the user."""

    token: str
    csrf_token: str
    user: User
    expires_at: datetime
