"""What services need from the running server, passed explicitly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import ParamSpec, TypeVar

import anyio.to_thread

from cloudtune.domain.jobs import utcnow
from cloudtune.observability import Metrics
from cloudtune.providers.registry import ProviderRegistry
from cloudtune.services.credentials import CredentialCache
from cloudtune.services.provider_settings import ProviderSettingsStore
from cloudtune.services.secrets import SecretBox
from cloudtune.services.tokens import TokenSigner
from cloudtune.settings import Settings
from cloudtune.store.db import Database

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class Context:
    settings: Settings
    db: Database
    providers: ProviderRegistry
    tokens: TokenSigner
    # Set by the reconciler: asks it to look at active jobs now rather than at its next tick.
    wake_reconciler: Callable[[], None] = field(default=lambda: None)
    provider_settings: ProviderSettingsStore | None = None
    # Callers resolved by this process, valid while the database's auth epoch stands.
    credentials: CredentialCache = field(default_factory=CredentialCache)
    # Encrypts job and config secrets at rest (the server's key).
    secret_box: SecretBox = field(default_factory=lambda: SecretBox(SecretBox.new_key()))
    metrics: Metrics = field(default_factory=Metrics)
    # The time, injectable so cost periods can be tested.
    clock: Callable[[], datetime] = field(default=utcnow)
    # Hash of the last log text written per active job, so an unchanged log is not rewritten.
    logs_seen: dict[str, int] = field(default_factory=dict)

    async def in_thread(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking database work off the event loop."""
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    def trainer_webhook_url(self, job_id: str) -> str:
        return f"{self.settings.base_url}/api/webhooks/trainer/{job_id}"
