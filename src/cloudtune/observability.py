"""Prometheus metrics of one server (a registry per app, so tests can run several)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.submits = Counter(
            "cloudtune_job_submits",
            "Job submits by provider and outcome",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.provider_calls = Histogram(
            "cloudtune_provider_call_seconds",
            "Provider call latency",
            ["provider", "call"],
            registry=self.registry,
        )
        self.provider_errors = Counter(
            "cloudtune_provider_errors",
            "Provider calls that failed",
            ["provider", "call"],
            registry=self.registry,
        )
        # One per argon2 verify (dummy verifies of unknown users included): how many password
        # guesses got past the login budgets.
        self.password_checks = Counter(
            "cloudtune_password_checks",
            "Password hash verifications made by logins",
            registry=self.registry,
        )
        self.webhook_events = Counter(
            "cloudtune_webhook_events",
            "Provider webhooks by result",
            ["provider", "result"],
            registry=self.registry,
        )

    def watch_jobs(self, counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        """Jobs by status and provider, read from the store at each scrape."""
        self.registry.register(_JobsCollector(counts))


class _JobsCollector(Collector):
    def __init__(self, counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "cloudtune_jobs",
            "Jobs in the store by status and provider",
            labels=["status", "provider"],
        )
        for (status, provider), count in sorted(self._counts().items()):
            gauge.add_metric([status, provider], count)
        yield gauge
