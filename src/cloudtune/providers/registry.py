"""Provider names to implementations and their settings models. Providers whose optional
extras are missing are skipped and reported by `unavailable_providers()`.

Adding a provider: one folder under providers/ and one `register_provider` line below."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from cloudtune.errors import InvalidInputError
from cloudtune.providers.base import Provider, ProviderConfig
from cloudtune.settings import Settings

log = logging.getLogger(__name__)


class NoSettings(BaseModel):
    """The settings of a provider configured only by the server's own settings: none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _NoConfig:
    def config(self, provider: str) -> BaseModel:
        return settings_model(provider)()

    def token(self, provider: str) -> str | None:
        return None


ProviderFactory = Callable[[Settings, ProviderConfig], Provider]
SettingsModel = type[BaseModel]


@dataclass(frozen=True, slots=True)
class _Entry:
    factory: ProviderFactory
    # Imported when first asked for, like the provider itself.
    settings_model: Callable[[], SettingsModel]
    # A token the server's own settings give (e.g. from the environment); a saved one wins.
    env_token: Callable[[Settings], str | None]


_ENTRIES: dict[str, _Entry] = {}
_UNAVAILABLE: dict[str, str] = {}


def register_provider(
    name: str,
    factory: ProviderFactory,
    settings_model: Callable[[], SettingsModel] = lambda: NoSettings,
    env_token: Callable[[Settings], str | None] = lambda _settings: None,
) -> None:
    _ENTRIES[name] = _Entry(factory, settings_model, env_token)


def settings_model(name: str) -> SettingsModel:
    """The model a provider's saved settings are validated by (NoSettings if it has none)."""
    entry = _ENTRIES.get(name)
    return entry.settings_model() if entry else NoSettings


def env_token(name: str, settings: Settings) -> str | None:
    entry = _ENTRIES.get(name)
    return entry.env_token(settings) if entry else None


def unavailable_providers() -> dict[str, str]:
    return dict(_UNAVAILABLE)


def _local(settings: Settings, _config: ProviderConfig) -> Provider:
    from cloudtune.providers.local.provider import LocalProvider

    return LocalProvider(settings)


def _replicate(settings: Settings, config: ProviderConfig) -> Provider:
    from cloudtune.providers.replicate.provider import ReplicateProvider

    return ReplicateProvider(settings, config)


def _replicate_settings() -> SettingsModel:
    from cloudtune.providers.replicate.settings import ReplicateSettings

    return ReplicateSettings


def _replicate_token(settings: Settings) -> str | None:
    token = settings.replicate_api_token
    return (token.get_secret_value() or None) if token is not None else None


def _ray(settings: Settings, config: ProviderConfig) -> Provider:
    from cloudtune.providers.ray.provider import RayProvider

    return RayProvider(settings, config)


def _ray_settings() -> SettingsModel:
    from cloudtune.providers.ray.settings import RaySettings

    return RaySettings


def _ray_token(settings: Settings) -> str | None:
    return settings.ray_token.get_secret_value() or None if settings.ray_token else None


register_provider("local", _local)
register_provider("replicate", _replicate, _replicate_settings, _replicate_token)
register_provider("ray", _ray, _ray_settings, _ray_token)


class ProviderRegistry:
    """The provider instances of one running server."""

    def __init__(
        self,
        settings: Settings,
        *,
        names: list[str] | None = None,
        config: ProviderConfig | None = None,
    ) -> None:
        self._providers: dict[str, Provider] = {}
        for name in list(_ENTRIES) if names is None else names:
            try:
                self._providers[name] = _ENTRIES[name].factory(settings, config or _NoConfig())
            except ImportError as exc:
                _UNAVAILABLE[name] = f"missing optional dependency: {exc.name}"
                log.warning("provider %s is unavailable: %s", name, exc)

    def get(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None:
            known = ", ".join(sorted(self._providers)) or "none"
            why = _UNAVAILABLE.get(name)
            detail = f"Unknown provider '{name}'. Available providers: {known}"
            if why:
                detail = f"Provider '{name}' is unavailable ({why}). Available: {known}"
            raise InvalidInputError(detail, code="unknown_provider", provider=name)
        return self._providers[name]

    def names(self) -> list[str]:
        return sorted(self._providers)

    def all(self) -> list[Provider]:
        return list(self._providers.values())
