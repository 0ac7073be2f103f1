"""Provider settings and tokens: stored in the database, tokens encrypted, never returned."""

from __future__ import annotations

import logging
import re

from pydantic import BaseModel, ValidationError

from cloudtune.domain.documents import JsonObject
from cloudtune.domain.jobs import utcnow
from cloudtune.domain.principal import Principal
from cloudtune.domain.training import check_document
from cloudtune.errors import InvalidInputError
from cloudtune.providers.registry import env_token, settings_model
from cloudtune.services.cache import VersionedCache
from cloudtune.services.secrets import SecretBox
from cloudtune.settings import Settings
from cloudtune.store import providers as provider_store
from cloudtune.store.db import Database

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"[!-~]{1,1024}")


class ProviderSettingsStore:
    """Reads are cached (providers ask on every call) until any write of this process."""

    def __init__(self, settings: Settings, db: Database, box: SecretBox) -> None:
        self._settings = settings
        self._db = db
        self._box = box
        # A short TTL too: another replica's write is seen within 5 s.
        self._cache: VersionedCache[str, tuple[BaseModel, str | None]] = VersionedCache(
            lambda: db.write_version, ttl=5.0, size=64
        )

    def config(self, provider: str) -> BaseModel:
        """The provider's saved settings as its own settings model (frozen: shared by callers)."""
        return self._load(provider)[0]

    def token(self, provider: str) -> str | None:
        """The saved token, else the one the provider takes from the server's environment."""
        saved = self._load(provider)[1]
        if saved:
            return saved
        return env_token(provider, self._settings)

    def token_source(self, provider: str) -> str | None:
        saved = self._load(provider)[1]
        if saved:
            return "saved"
        return "environment" if self.token(provider) else None

    def _load(self, provider: str) -> tuple[BaseModel, str | None]:
        version = self._db.write_version
        cached = self._cache.get(provider, version=version)
        if cached is not None:
            return cached
        with self._db.read() as session:
            row = provider_store.get_settings(session, provider)
        config = _saved_config(provider, (row.settings or {}) if row else {})
        token = self._box.decrypt(row.token_ciphertext) if row and row.token_ciphertext else None
        self._cache.put(provider, (config, token), version=version)
        return config, token

    def update(self, caller: Principal, provider: str, changes: JsonObject) -> BaseModel:
        merged = self.check(caller, provider, changes)
        with self._db.write() as session:
            provider_store.save_settings(
                session, provider, at=utcnow(), settings=merged.model_dump()
            )
        return merged

    def check(self, caller: Principal, provider: str, changes: JsonObject) -> BaseModel:
        """The settings `changes` would make, validated; nothing is saved (a caller that
        changes more than these settings checks everything before it writes anything)."""
        caller.require("provider.manage")
        # Text a lone surrogate escape made cannot be encoded in any answer: saved, it would
        # break every later read of the provider.
        check_document("settings", changes, max_depth=8)
        model = settings_model(provider)
        unknown = sorted(set(changes) - set(model.model_fields))
        if unknown:
            names = ", ".join(sorted(model.model_fields)) or "none"
            raise InvalidInputError(
                f"unknown setting {unknown[0]!r} for {provider}; its settings: {names}",
                code="invalid_setting",
            )
        try:
            return model.model_validate({**self.config(provider).model_dump(), **changes})
        except ValidationError as exc:
            raise InvalidInputError(_first_problem(exc), code="invalid_setting") from None

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


def _saved_config(provider: str, saved: JsonObject) -> BaseModel:
    """The provider's settings as its model reads them. Keys it does not know (saved before
    settings were per provider) are left out, and a saved value its model now refuses falls
    back to the default, with a warning, rather than break every call of the provider."""
    model: type[BaseModel] = settings_model(provider)
    known = {key: value for key, value in saved.items() if key in model.model_fields}
    try:
        return model.model_validate(known)
    except ValidationError as exc:
        bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        log.warning("%s: saved settings %s are invalid; defaults used", provider, sorted(bad))
        kept = {key: value for key, value in known.items() if key not in bad}
        return model.model_validate(kept)


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "settings"
    return f"setting {where!r}: {error['msg']}"
