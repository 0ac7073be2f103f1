"""Progress reports from a trainer to the server's trainer webhook.

The URL and the job's token come from the environment the provider started the trainer with.
Reports are best effort: a server that is down or restarting must not stop training.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import httpx

log = logging.getLogger(__name__)


class ProgressReporter:
    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        self.url = url if url is not None else os.environ.get("CLOUDTUNE_WEBHOOK_URL")
        self.token = token if token is not None else os.environ.get("CLOUDTUNE_WEBHOOK_TOKEN")
        self._client = httpx.Client(timeout=5.0) if self.url else None
        self._warned = False

    def send(self, event: dict[str, Any]) -> None:
        if self._client is None or self.url is None:
            return
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self._client.post(self.url, json=event, headers=headers)
            if response.status_code >= 400 and not self._warned:
                self._warned = True
                print(f"progress report refused: HTTP {response.status_code}", flush=True)
        except httpx.HTTPError as exc:
            if not self._warned:
                self._warned = True
                print(
                    f"progress report failed ({type(exc).__name__}); training goes on", flush=True
                )

    def progress(
        self,
        *,
        step: int,
        total_steps: int,
        loss: float | None,
        lr: float | None,
        epoch: float | None,
        eta_seconds: float | None,
    ) -> None:
        self.send(
            {
                "type": "progress",
                "step": step,
                "total_steps": total_steps,
                "loss": loss,
                "lr": lr,
                "epoch": epoch,
                "eta_seconds": eta_seconds,
                "timestamp": time.time(),
            }
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
