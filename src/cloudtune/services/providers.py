"""Provider settings, tokens and account checks, as the API offers them."""

from __future__ import annotations

from typing import Any

from cloudtune.domain.principal import Principal
from cloudtune.errors import InvalidInputError
from cloudtune.providers.base import HasHardwareProfiles, HasVersions
from cloudtune.providers.registry import unavailable_providers
from cloudtune.services.context import Context
from cloudtune.services.provider_settings import ProviderSettingsStore


def _store(ctx: Context) -> ProviderSettingsStore:
    assert ctx.provider_settings is not None
    return ctx.provider_settings


def list_providers(ctx: Context, caller: Principal) -> list[dict[str, Any]]:
    if not caller.has("provider.manage"):
        caller.require("job.submit")
    out = [
        {"name": name, "available": True, "job_type": ctx.providers.get(name).job_type}
        for name in ctx.providers.names()
    ]
    out += [
        {"name": name, "available": False, "reason": why}
        for name, why in unavailable_providers().items()
    ]
    return out


def get_provider_settings(ctx: Context, caller: Principal, provider: str) -> dict[str, Any]:
    caller.require("provider.manage")
    ctx.providers.get(provider)
    store = _store(ctx)
    return {
        "provider": provider,
        "config": store.config(provider),
        "token_configured": store.token(provider) is not None,
        "token_source": store.token_source(provider),
    }


def update_provider_settings(
    ctx: Context, caller: Principal, provider: str, changes: dict[str, Any]
) -> dict[str, Any]:
    ctx.providers.get(provider)
    config = changes.get("config", changes)
    if not isinstance(config, dict):
        raise InvalidInputError("send the settings as a JSON object", code="invalid_setting")
    _store(ctx).update(caller, provider, config)
    return {"success": True, **get_provider_settings(ctx, caller, provider)}


def save_token(ctx: Context, caller: Principal, provider: str, token: str) -> dict[str, Any]:
    _store(ctx).save_token(caller, provider, token)
    return {"success": True, "token_configured": True}


def delete_token(ctx: Context, caller: Principal, provider: str) -> dict[str, Any]:
    _store(ctx).delete_token(caller, provider)
    return {"success": True, "token_configured": _store(ctx).token(provider) is not None}


async def validate(ctx: Context, caller: Principal, provider_name: str) -> dict[str, Any]:
    caller.require("provider.manage")
    account = await ctx.providers.get(provider_name).validate()
    return {"success": account.ok, "valid": account.ok, "detail": account.detail}


async def billing(ctx: Context, caller: Principal, provider_name: str) -> dict[str, Any]:
    caller.require("provider.manage")
    provider = ctx.providers.get(provider_name)
    profiles = []
    if isinstance(provider, HasHardwareProfiles):
        profiles = [p.to_dict() for p in provider.profiles()]
    # Replicate's API has no credit-balance endpoint; say so instead of inventing a number.
    return {"balance_usd": None, "balance_available": False, "profiles": profiles}


async def versions(
    ctx: Context, caller: Principal, provider_name: str, profile: str | None
) -> dict[str, Any]:
    caller.require("provider.manage")
    provider = ctx.providers.get(provider_name)
    if not isinstance(provider, HasVersions):
        raise InvalidInputError(f"{provider_name} has no versions", code="unknown_provider")
    found = await provider.versions(profile)
    return {"versions": [{"id": v.id, "created_at": v.created_at} for v in found]}
