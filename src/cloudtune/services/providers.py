"""Providers as the API offers them: which exist, their settings and tokens, account checks,
hardware profiles and trainer versions."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cloudtune.domain.documents import JsonObject
from cloudtune.domain.hardware import HardwareProfile
from cloudtune.domain.principal import Principal
from cloudtune.errors import (
    CloudtuneError,
    InvalidInputError,
    ProviderError,
    unknown_fields_error,
)
from cloudtune.providers.base import (
    HasHardwareProfiles,
    HasVersions,
    Provider,
    ProviderAccount,
    ProviderVersion,
)
from cloudtune.providers.registry import unavailable_providers
from cloudtune.services.context import Context
from cloudtune.services.provider_settings import ProviderSettingsStore

log = logging.getLogger(__name__)

# What the list says of a provider that describes itself with none of its own.
_DESCRIPTION_BY_JOB_TYPE = {"local": "Trains on this server's own machine (its GPUs, else CPU)"}


@runtime_checkable
class _Described(Protocol):
    """A provider that says more of itself than the protocol asks (Replicate): a description,
    whether it can take jobs (a token), the trainer model each profile runs and the pinned
    version, Replicate's id of each profile's hardware, a check of a token's format, and a
    check of its account in one attempt."""

    description: str

    def configured(self) -> bool: ...

    def model_of(self, profile: str) -> str: ...

    def pinned_version(self) -> str | None: ...

    def hardware_sku(self, profile: str) -> str: ...

    def check_token(self, token: str) -> None: ...

    async def validate_once(self) -> ProviderAccount: ...


@runtime_checkable
class _Configurable(Protocol):
    """A provider that cannot take jobs until it is told where to send them (Ray's address)."""

    def configured(self) -> bool: ...


@runtime_checkable
class _TakesToken(Protocol):
    """A provider that uses a saved token, and refuses one that cannot be its kind."""

    def check_token(self, token: str) -> None: ...


@runtime_checkable
class _AccountIdentity(Protocol):
    """An account check that also says whose account it is."""

    username: str | None
    name: str | None
    github_url: str | None


@dataclass(frozen=True, slots=True)
class ProfileOffer:
    profile: HardwareProfile
    model: str | None  # the trainer model this profile runs, where the provider has one


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    name: str
    available: bool
    job_type: str | None = None  # with an available provider
    reason: str | None = None  # why one is unavailable
    description: str | None = None
    configured: bool = False  # a token is available: the provider can take jobs
    default_profile: HardwareProfile | None = None
    model: str | None = None  # the default profile's trainer model
    version: str | None = None  # the pinned trainer version; none: the latest
    profiles: list[ProfileOffer] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AccountCheck:
    valid: bool
    detail: str
    username: str | None = None
    name: str | None = None
    github_url: str | None = None
    token_source: str | None = None  # saved or environment


@dataclass(frozen=True, slots=True)
class TokenState:
    token_configured: bool
    # Why a token that was saved may still not work: Replicate refused it or could not be asked.
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class VersionList:
    versions: list[ProviderVersion]
    model: str | None  # the trainer model whose versions these are
    current_version: str | None  # the pinned one; none: the latest runs


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
    # Each profile by the provider's own hardware id (Replicate's SKU), and the default's.
    by_sku: dict[str, HardwareProfile] = field(default_factory=dict)
    default_sku: str | None = None


def list_providers(ctx: Context, caller: Principal) -> list[ProviderInfo]:
    """Every provider with what a user picks one by (blocking: settings and hardware are read,
    so callers run it in a thread)."""
    if not caller.has("provider.manage"):
        caller.require("job.submit")
    found = [_describe(ctx.providers.get(name)) for name in ctx.providers.names()]
    found += [
        ProviderInfo(name, False, reason=why) for name, why in unavailable_providers().items()
    ]
    return found


def _describe(provider: Provider) -> ProviderInfo:
    described = provider if isinstance(provider, _Described) else None
    profiles: list[ProfileOffer] = []
    default: HardwareProfile | None = None
    if isinstance(provider, HasHardwareProfiles):
        profiles = [
            ProfileOffer(p, described.model_of(p.name) if described else None)
            for p in provider.profiles()
        ]
        default = _default_profile(provider)
    return ProviderInfo(
        provider.name,
        True,
        job_type=provider.job_type,
        description=described.description
        if described
        else _DESCRIPTION_BY_JOB_TYPE.get(provider.job_type),
        configured=provider.configured() if isinstance(provider, _Configurable) else True,
        default_profile=default,
        model=described.model_of(default.name) if described and default else None,
        version=described.pinned_version() if described else None,
        profiles=profiles,
    )


def _default_profile(provider: HasHardwareProfiles) -> HardwareProfile | None:
    try:
        return provider.offer(None)
    except CloudtuneError as exc:  # settings that name no profile it has: none to show
        log.warning("no default hardware profile: %s", exc)
        return None


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
    _store(ctx).update(caller, provider, settings_in(changes))
    return get_provider_settings(ctx, caller, provider)


# Fields of a settings answer a client may send back unchanged beside its `config`.
READ_ONLY_FIELDS = ("provider", "token_configured", "token_source", "success")


def settings_in(body: JsonObject) -> JsonObject:
    """The settings a PUT sends: nested under `config` (as our GET answers them) or at the
    top level, not both. A field beside `config` would otherwise be dropped while the answer
    says the change was saved."""
    if "config" not in body:
        return body
    if beside := set(body) - {"config", *READ_ONLY_FIELDS}:
        raise unknown_fields_error(beside, accepted=("config", *READ_ONLY_FIELDS))
    config = body["config"]
    if not isinstance(config, dict):
        raise InvalidInputError("send the settings as a JSON object", code="invalid_setting")
    return config


def _check_token_format(ctx: Context, caller: Principal, provider: str, token: object) -> str:
    caller.require("provider.manage")
    if not isinstance(token, str):
        raise InvalidInputError('send {"token": "r8_..."}', code="invalid_token")
    found = ctx.providers.get(provider)
    if not isinstance(found, _TakesToken):
        raise InvalidInputError(
            f"the {provider} provider takes no token", code="invalid_token", provider=provider
        )
    found.check_token(token)
    return token


async def save_token(
    ctx: Context, caller: Principal, provider: str, body: JsonObject
) -> TokenState:
    """Saves the token (either spelling of the field), then asks the provider once whether
    it works, after the transaction: a refused or unreachable check leaves the token saved
    and says so in `warning`."""
    unknown = sorted(set(body) - {"token", "api_token"})
    if unknown:
        raise InvalidInputError(
            f'unknown field {unknown[0]!r}; send {{"token": "r8_..."}}', code="invalid_token"
        )
    if "token" in body and "api_token" in body and body["token"] != body["api_token"]:
        raise InvalidInputError("token and api_token differ; send one", code="invalid_token")
    raw = body.get("token", body.get("api_token"))
    token = _check_token_format(ctx, caller, provider, raw)
    await ctx.in_thread(_store(ctx).save_token, caller, provider, token)
    found = ctx.providers.get(provider)
    if not isinstance(found, _Described):
        return TokenState(token_configured=True)
    try:
        account = await found.validate_once()
    except ProviderError as exc:
        return TokenState(True, f"Token saved but Replicate could not be reached: {exc.detail}")
    if not account.ok:
        return TokenState(True, f"Token saved but validation failed: {account.detail}")
    return TokenState(token_configured=True)


def delete_token(ctx: Context, caller: Principal, provider: str) -> TokenState:
    """Whether a token is still configured afterwards (one from the environment stays)."""
    ctx.providers.get(provider)
    _store(ctx).delete_token(caller, provider)
    return TokenState(token_configured=_store(ctx).token(provider) is not None)


async def validate(ctx: Context, caller: Principal, provider_name: str) -> AccountCheck:
    """Not valid (an answer, not an error) without a token or when the provider refuses it;
    ProviderError only when the provider cannot be asked."""
    caller.require("provider.manage")
    account = await ctx.providers.get(provider_name).validate()
    identity = account if isinstance(account, _AccountIdentity) else None
    return AccountCheck(
        valid=account.ok,
        detail=account.detail,
        username=identity.username if identity else None,
        name=identity.name if identity else None,
        github_url=identity.github_url if identity else None,
        token_source=_store(ctx).token_source(provider_name) if account.ok else None,
    )


async def billing(ctx: Context, caller: Principal, provider_name: str) -> Billing:
    caller.require("provider.manage")
    provider = ctx.providers.get(provider_name)
    if not isinstance(provider, HasHardwareProfiles):
        return Billing(balance_micros=None, balance_available=False, profiles=[])
    profiles = provider.profiles()
    default = _default_profile(provider)
    described = provider if isinstance(provider, _Described) else None
    return Billing(
        balance_micros=None,
        balance_available=False,
        profiles=profiles,
        by_sku={described.hardware_sku(p.name): p for p in profiles} if described else {},
        default_sku=described.hardware_sku(default.name) if described and default else None,
    )


async def versions(
    ctx: Context, caller: Principal, provider_name: str, profile: str | None
) -> VersionList:
    caller.require("provider.manage")
    provider = ctx.providers.get(provider_name)
    if not isinstance(provider, HasVersions):
        raise InvalidInputError(f"{provider_name} has no versions", code="unknown_provider")
    found = await provider.versions(profile)
    described = provider if isinstance(provider, _Described) else None
    model = None
    if described and isinstance(provider, HasHardwareProfiles):
        model = described.model_of(provider.offer(profile).name)
    return VersionList(
        versions=found,
        model=model,
        current_version=described.pinned_version() if described else None,
    )


def _store(ctx: Context) -> ProviderSettingsStore:
    assert ctx.provider_settings is not None
    return ctx.provider_settings
