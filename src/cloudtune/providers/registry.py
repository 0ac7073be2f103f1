"""Provider names to implementations. Providers whose optional extras are missing are skipped
and reported by `unavailable_providers()`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from cloudtune.errors import InvalidInputError
from cloudtune.providers.base import Provider
from cloudtune.settings import Settings

log = logging.getLogger(__name__)


class ProviderConfig(Protocol):
    """What a provider may read of its saved settings: never the database itself."""

    def config(self, provider: str) -> dict[str, Any]: ...

    def token(self, provider: str) -> str | None: ...


class _NoConfig:
    def config(self, provider: str) -> dict[str, Any]:
        return {}

    def token(self, provider: str) -> str | None:
        return None


ProviderFactory = Callable[[Settings, ProviderConfig], Provider]


def _local(settings: Settings, _config: ProviderConfig) -> Provider:
    from cloudtune.providers.local.provider import LocalProvider

    return LocalProvider(settings)


def _replicate(settings: Settings, config: ProviderConfig) -> Provider:
    from cloudtune.providers.replicate.provider import ReplicateProvider

    return ReplicateProvider(settings, config)


_FACTORIES: dict[str, ProviderFactory] = {"local": _local, "replicate": _replicate}
_UNAVAILABLE: dict[str, str] = {}


def register_provider(name: str, factory: ProviderFactory) -> None:
    _FACTORIES[name] = factory


def unavailable_providers() -> dict[str, str]:
    return dict(_UNAVAILABLE)


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
        for name in list(_FACTORIES) if names is None else names:
            try:
                self._providers[name] = _FACTORIES[name](settings, config or _NoConfig())
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
