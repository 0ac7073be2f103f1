"""The account's webhook signing secret, fetched from Replicate and kept for a while.

Webhooks ask for it and anyone can send one, so Replicate is asked at most once at a time
(concurrent webhooks wait for that one answer), and a failed fetch is remembered for the
provider's retry period: until then webhooks are refused with 503 (Replicate retries the final
one; the reconciler polls the rest) without calling Replicate. Both are per token, so a newly
saved token starts afresh."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from cloudtune.errors import ProviderUnavailableError
from cloudtune.providers.replicate.client import ReplicateError

log = logging.getLogger(__name__)

SECRET_TTL_SECONDS = 300.0


class WebhookSecretCache:
    def __init__(self, provider: str) -> None:
        self._provider = provider
        # (token, fetched at, secret) and (token, failed at), on the monotonic clock.
        self._secret: tuple[str, float, str] | None = None
        self._failure: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    async def get(
        self, token: str, fetch: Callable[[], Awaitable[str]], *, retry_seconds: float
    ) -> str:
        cached = self._cached(token, retry_seconds)
        if cached is not None:
            return cached
        async with self._lock:
            cached = self._cached(token, retry_seconds)  # fetched while this one waited
            if cached is not None:
                return cached
            try:
                secret = await fetch()
            except ReplicateError as exc:
                log.warning(
                    "replicate: the webhook secret could not be fetched (%s); webhooks are "
                    "refused for %.0f s",
                    exc,
                    retry_seconds,
                )
                self._failure = (token, time.monotonic())
                raise self._unavailable(retry_seconds) from None
            self._secret = (token, time.monotonic(), secret)
            self._failure = None
            return secret

    def _cached(self, token: str, retry_seconds: float) -> str | None:
        """The cached secret; raises while a failed fetch for this token is remembered."""
        now = time.monotonic()
        kept = self._secret
        if kept and kept[0] == token and now - kept[1] < SECRET_TTL_SECONDS:
            return kept[2]
        failure = self._failure
        if failure and failure[0] == token and now - failure[1] < retry_seconds:
            raise self._unavailable(retry_seconds)
        return None

    def _unavailable(self, retry_seconds: float) -> ProviderUnavailableError:
        # Webhook callers are anonymous: what failed (and where) goes to the log, not to them.
        retry = retry_seconds
        if self._failure is not None:
            retry -= time.monotonic() - self._failure[1]
        return ProviderUnavailableError(
            "the Replicate webhook secret is unavailable; webhooks are refused for now",
            provider=self._provider,
            retry_after_seconds=max(1, math.ceil(retry)),
        )
