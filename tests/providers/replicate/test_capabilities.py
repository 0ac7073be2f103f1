"""The optional abilities the services find on the Replicate provider with isinstance."""

from __future__ import annotations

from typing import Any

from cloudtune.providers import base
from cloudtune.providers.registry import ProviderRegistry
from cloudtune.providers.replicate.provider import ReplicateProvider
from cloudtune.providers.replicate.settings import ReplicateSettings
from cloudtune.settings import Settings


class _Config:
    def config(self, provider: str) -> ReplicateSettings:
        return ReplicateSettings(default_hardware_profile="l40s")

    def token(self, provider: str) -> str | None:
        return "r8_test"


def test_replicate_offers_what_the_services_look_for(tmp_path: Any) -> None:
    provider = ReplicateProvider(Settings(home=tmp_path), _Config())
    for ability in (
        base.Uploads,
        base.HasHardwareProfiles,
        base.ReceivesWebhooks,
        base.HasVersions,
        base.Discovers,
    ):
        assert isinstance(provider, ability), ability.__name__
    for ability in (base.HasLogFile, base.Restorable, base.RunsInBackground, base.Forgettable):
        assert not isinstance(provider, ability), ability.__name__


def test_the_default_profile_is_the_saved_setting(tmp_path: Any) -> None:
    provider = ReplicateProvider(Settings(home=tmp_path), _Config())
    assert provider.offer(None).name == "l40s"
    assert provider.offer("1x-h100").name == "h100"


def test_the_registry_builds_it_with_the_saved_settings(tmp_path: Any) -> None:
    registry = ProviderRegistry(Settings(home=tmp_path), names=["replicate"], config=_Config())
    provider = registry.get("replicate")
    assert isinstance(provider, base.HasHardwareProfiles)
    assert provider.offer(None).name == "l40s"
