"""User accounts and API keys as the services hand them out (never the stored rows, which
carry password and key hashes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    email: str
    role: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CurrentUser:
    """Who the caller is: a user, or the local admin of a server with no users (no id)."""

    id: str | None
    username: str
    email: str | None
    role: str
    created_at: datetime | None
    permissions: tuple[str, ...]
    auth_method: str


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
