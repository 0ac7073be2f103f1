"""Provider settings and tokens: stored in the database, tokens encrypted, never returned."""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from cloudtune.domain.jobs import utcnow
from cloudtune.domain.principal import Principal
from cloudtune.errors import InvalidInputError
from cloudtune.services.secrets import SecretBox
from cloudtune.settings import Settings
from cloudtune.store import providers as provider_store
from cloudtune.store.db import Database

_TOKEN = re.compile(r"[!-~]{1,1024}")

# Settings a user may change, per provider, with their types and defaults; anything else is
# refused. The local provider has none of its own (it is configured by the server's settings),
# so it shows none of Replicate's.
Setting = tuple[type | tuple[type, ...], Any]
_REPLICATE: dict[str, Setting] = {
    "webhook_url": ((str, type(None)), None),
    "webhook_allowed_ips": ((list, type(None)), []),
    "default_hardware_profile": ((str, type(None)), "h100"),
    "model": ((str, type(None)), "simpletuner/advanced-trainer"),
    "version": ((str, type(None)), None),
    "require_signature": (bool, True),
}
PROVIDER_SETTINGS: dict[str, dict[str, Setting]] = {"local": {}, "replicate": _REPLICATE}


def editable(provider: str) -> dict[str, Setting]:
    """A provider added later has no settings until it gets a table here."""
    return PROVIDER_SETTINGS.get(provider, {})


class ProviderSettingsStore:
    """Reads are cached (providers ask on every call) until any write of this process."""

    def __init__(self, settings: Settings, db: Database, box: SecretBox) -> None:
        self._settings = settings
        self._db = db
        self._box = box
        self._cache: dict[str, tuple[int, float, dict[str, Any], str | None]] = {}

    def config(self, provider: str) -> dict[str, Any]:
        return dict(self._load(provider)[0])

    def token(self, provider: str) -> str | None:
        """The saved token, else the environment's (`REPLICATE_API_TOKEN` for replicate)."""
        saved = self._load(provider)[1]
        if saved:
            return saved
        if provider == "replicate" and self._settings.replicate_api_token is not None:
            return self._settings.replicate_api_token.get_secret_value() or None
        return None

    def token_source(self, provider: str) -> str | None:
        saved = self._load(provider)[1]
        if saved:
            return "saved"
        return "environment" if self.token(provider) else None

    def _load(self, provider: str) -> tuple[dict[str, Any], str | None]:
        cached = self._cache.get(provider)
        if cached and cached[0] == self._db.write_version and cached[1] > time.monotonic():
            return cached[2], cached[3]
        version = self._db.write_version
        with self._db.read() as session:
            row = provider_store.get_settings(session, provider)
        known = editable(provider)
        saved = (row.settings or {}) if row else {}
        # Keys saved before settings were per provider are not this provider's: left out.
        config = {key: saved.get(key, copy.copy(default)) for key, (_, default) in known.items()}
        token = self._box.decrypt(row.token_ciphertext) if row and row.token_ciphertext else None
        self._cache[provider] = (version, time.monotonic() + 5.0, config, token)
        return config, token

    def update(self, caller: Principal, provider: str, changes: dict[str, Any]) -> dict[str, Any]:
        caller.require("provider.manage")
        known = editable(provider)
        for key, value in changes.items():
            if key not in known:
                names = ", ".join(sorted(known)) or "none"
                raise InvalidInputError(
                    f"unknown setting {key!r} for {provider}; its settings: {names}",
                    code="invalid_setting",
                )
            if not isinstance(value, known[key][0]):
                raise InvalidInputError(
                    f"setting {key!r} has the wrong type", code="invalid_setting"
                )
        if changes.get("webhook_url"):
            url = str(changes["webhook_url"])
            if not url.startswith(("https://", "http://")):
                raise InvalidInputError(
                    "webhook_url must be an http(s) URL", code="invalid_setting"
                )
        if changes.get("webhook_allowed_ips"):
            _check_networks(changes["webhook_allowed_ips"])
        merged = {**self.config(provider), **changes}
        with self._db.write() as session:
            provider_store.save_settings(session, provider, at=utcnow(), settings=merged)
        return merged

    def save_token(self, caller: Principal, provider: str, token: str) -> None:
        caller.require("provider.manage")
        token = token.strip()
        # It is sent in an HTTP header: anything else would fail every later provider call.
        if not _TOKEN.fullmatch(token):
            raise InvalidInputError(
                "token must be 1 to 1024 visible ASCII characters", code="invalid_token"
            )
        with self._db.write() as session:
            provider_store.save_settings(
                session, provider, at=utcnow(), token_ciphertext=self._box.encrypt(token)
            )

    def delete_token(self, caller: Principal, provider: str) -> None:
        caller.require("provider.manage")
        with self._db.write() as session:
            provider_store.save_settings(session, provider, at=utcnow(), clear_token=True)


def _check_networks(values: list[Any]) -> None:
    import ipaddress

    for value in values:
        try:
            ipaddress.ip_network(str(value), strict=False)
        except ValueError:
            raise InvalidInputError(
                f"webhook_allowed_ips: {value!r} is not an address or network",
                code="invalid_setting",
            ) from None
