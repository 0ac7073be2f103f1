"""Providers as the API offers them: which exist, their settings and tokens, account checks,
hardware profiles and trainer versions."""

from __future__ import annotations

from dataclasses import dataclass

from cloudtune.domain.documents import JsonObject
from cloudtune.domain.hardware import HardwareProfile
from cloudtune.domain.principal import Principal
from cloudtune.errors import InvalidInputError
from cloudtune.providers.base import (
    HasHardwareProfiles,
    HasVersions,
    ProviderAccount,
    ProviderVersion,
)
from cloudtune.providers.registry import unavailable_providers
from cloudtune.services.context import Context
from cloudtune.services.provider_settings import ProviderSettingsStore


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    name: str
    available: bool
    job_type: str | None = None  # with an available provider
    reason: str | None = None  # why one is unavailable


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    provider: str
    config: JsonObject  # the provider's settings as its own settings model validated them
    token_configured: bool
    token_source: str | None


@dataclass(frozen=True, slots=True)
class Billing:
    # Replicate's API has no credit-balance endpoint; say so instead of inventing a number.
    balance_micros: int | None
    balance_available: bool
    profiles: list[HardwareProfile]


def list_providers(ctx: Context, caller: Principal) -> list[ProviderInfo]:
    if not caller.has("provider.manage"):
        caller.require("job.submit")
    found = [
        ProviderInfo(name, True, job_type=ctx.providers.get(name).job_type)
        for name in ctx.providers.names()
    ]
    found += [
        ProviderInfo(name, False, reason=why) for name, why in unavailable_providers().items()
    ]
    return found


def list_hardware(ctx: Context, caller: Principal) -> list[HardwareProfile]:
    """Every provider's hardware profiles; any authenticated caller may see the prices."""
    return [
        profile
        for provider in ctx.providers.all()
        if isinstance(provider, HasHardwareProfiles)
        for profile in provider.profiles()
    ]


def get_provider_settings(ctx: Context, caller: Principal, provider: str) -> ProviderSettings:
    caller.require("provider.manage")
    ctx.providers.get(provider)
    store = _store(ctx)
    return ProviderSettings(
        provider=provider,
        config=store.config(provider).model_dump(),
        token_configured=store.token(provider) is not None,
        token_source=store.token_source(provider),
    )


def update_provider_settings(
    ctx: Context, caller: Principal, provider: str, changes: JsonObject
) -> ProviderSettings:
    ctx.providers.get(provider)
    config = changes.get("config", changes)
    if not isinstance(config, dict):
        raise InvalidInputError("send the settings as a JSON object", code="invalid_setting")
    _store(ctx).update(caller, provider, config)
    return get_provider_settings(ctx, caller, provider)


def save_token(ctx: Context, caller: Principal, provider: str, token: object) -> bool:
    """Whether a token is configured afterwards (always: else this raised)."""
    if not isinstance(token, str):
        raise InvalidInputError('send {"token": "r8_..."}', code="invalid_token")
    _store(ctx).save_token(caller, provider, token)
    return True


def delete_token(ctx: Context, caller: Principal, provider: str) -> bool:
    """Whether a token is still configured afterwards (one from the environment stays)."""
    _store(ctx).delete_token(caller, provider)
    return _store(ctx).token(provider) is not None


async def validate(ctx: Context, caller: Principal, provider_name: str) -> ProviderAccount:
    caller.require("provider.manage")
    return await ctx.providers.get(provider_name).validate()


async def billing(ctx: Context, caller: Principal, provider_name: str) -> Billing:
    caller.require("provider.manage")
    provider = ctx.providers.get(provider_name)
    profiles = provider.profiles() if isinstance(provider, HasHardwareProfiles) else []
    return Billing(balance_micros=None, balance_available=False, profiles=profiles)


async def versions(
    ctx: Context, caller: Principal, provider_name: str, profile: str | None
) -> list[ProviderVersion]:
    caller.require("provider.manage")
    provider = ctx.providers.get(provider_name)
    if not isinstance(provider, HasVersions):
        raise InvalidInputError(f"{provider_name} has no versions", code="unknown_provider")
    return await provider.versions(profile)


def _store(ctx: Context) -> ProviderSettingsStore:
    assert ctx.provider_settings is not None
    return ctx.provider_settings
