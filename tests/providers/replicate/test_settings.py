"""Replicate's settings: its own model, validated on save, defaults that are Replicate's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cloudtune.domain.jobs import utcnow
from cloudtune.domain.principal import LOCAL_ADMIN
from cloudtune.errors import InvalidInputError
from cloudtune.providers.registry import NoSettings, settings_model
from cloudtune.providers.replicate.settings import ReplicateSettings
from cloudtune.services.provider_settings import ProviderSettingsStore
from cloudtune.services.secrets import SecretBox
from cloudtune.settings import Settings
from cloudtune.store import providers as provider_store
from cloudtune.store.db import Database

ADMIN = LOCAL_ADMIN


@pytest.fixture
def store(settings: Settings, db: Database) -> Iterator[ProviderSettingsStore]:
    yield ProviderSettingsStore(settings, db, SecretBox(SecretBox.new_key()))


def test_each_provider_has_its_own_model() -> None:
    assert settings_model("replicate") is ReplicateSettings
    assert settings_model("local") is NoSettings
    assert settings_model("nosuchprovider") is NoSettings
    defaults = ReplicateSettings()
    assert defaults.trainer_model == "simpletuner/advanced-trainer"
    assert defaults.hardware_profile == "h100"


def test_defaults_until_saved(store: ProviderSettingsStore) -> None:
    assert store.config("replicate") == ReplicateSettings()
    assert store.config("local") == NoSettings()


@pytest.mark.parametrize(
    "changes",
    [
        {"nosuch": 1},
        {"model": 3},
        {"require_signature": "yes"},
        {"webhook_url": "ftp://example.com"},
        {"webhook_allowed_ips": ["nope"]},
        {"webhook_allowed_ips": "10.0.0.0/8"},
    ],
)
def test_a_bad_setting_is_refused_and_nothing_is_saved(
    store: ProviderSettingsStore, changes: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        store.update(ADMIN, "replicate", changes)
    assert refused.value.code == "invalid_setting"
    assert store.config("replicate") == ReplicateSettings()


def test_changes_merge_with_what_was_saved(store: ProviderSettingsStore) -> None:
    store.update(ADMIN, "replicate", {"model": "me/trainer", "webhook_url": ""})
    store.update(ADMIN, "replicate", {"webhook_allowed_ips": ["10.0.0.0/8"]})
    config = store.config("replicate").model_dump()
    assert config["model"] == "me/trainer" and config["webhook_allowed_ips"] == ["10.0.0.0/8"]
    assert config["default_hardware_profile"] == "h100"
    with pytest.raises(InvalidInputError):
        store.update(ADMIN, "local", {"model": "me/trainer"})


def test_a_saved_value_the_model_now_refuses_falls_back_to_its_default(
    store: ProviderSettingsStore, db: Database
) -> None:
    with db.write() as session:
        provider_store.save_settings(
            session,
            "replicate",
            at=utcnow(),
            settings={"model": 42, "version": "v1", "retired_setting": True},
        )
    config = store.config("replicate").model_dump()
    assert config["model"] == "simpletuner/advanced-trainer"
    assert config["version"] == "v1" and "retired_setting" not in config
