"""The Replicate account a token belongs to, and what a token must look like."""

from __future__ import annotations

from dataclasses import dataclass

from cloudtune.errors import InvalidInputError
from cloudtune.providers.base import ProviderAccount
from cloudtune.providers.replicate.client import ReplicateClient, ReplicateError

# Replicate's API tokens all start so; anything else is a paste of the wrong thing, refused
# before it is saved (and before every later call fails with it).
TOKEN_PREFIX = "r8_"
MISSING_TOKEN = (
    "No Replicate token: set REPLICATE_API_TOKEN in the server's environment or save one with "
    "PUT /api/cloud/providers/replicate/token"
)


@dataclass(frozen=True, slots=True)
class ReplicateAccount(ProviderAccount):
    """`GET /v1/account`'s answer (reference/replicate-api.md): who the token belongs to."""

    username: str | None = None
    name: str | None = None
    github_url: str | None = None


def check_token_format(token: str) -> None:
    token = token.strip()
    if not token:
        raise InvalidInputError("Token cannot be empty", code="invalid_token")
    if not token.startswith(TOKEN_PREFIX):
        raise InvalidInputError(
            f"Invalid token format. Replicate tokens start with '{TOKEN_PREFIX}'",
            code="invalid_token",
        )


async def account_of(client: ReplicateClient, *, once: bool) -> ReplicateAccount:
    """The token's account, or not valid when Replicate refuses the token (401/403). Raises
    ReplicateError when Replicate cannot say (unreachable, or any other answer)."""
    try:
        found = await client.account(once=once)
    except ReplicateError as exc:
        if exc.status in (401, 403):
            return ReplicateAccount(ok=False, detail="Replicate refused the token (invalid)")
        raise
    username = _text(found.get("username"))
    return ReplicateAccount(
        ok=True,
        detail=f"Replicate account {username}",
        username=username,
        name=_text(found.get("name")),
        github_url=_text(found.get("github_url")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
