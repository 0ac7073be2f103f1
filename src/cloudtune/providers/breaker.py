"""A small circuit breaker for one remote API.

Written here because the maintained breaker libraries are built around synchronous calls or
their own retry loops; this one only counts outcomes that the async client reports.
It opens for `cooldown` seconds (calls fail fast) after `threshold` failures in a row, or when
at least `failure_share` of the last `window` calls failed; then it lets one trial through, and
a success closes it. A flaky API (some calls failing) keeps working; a down one stops being hit.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class CircuitBreaker:
    def __init__(
        self,
        *,
        threshold: int = 10,
        window: int = 20,
        failure_share: float = 0.8,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.failure_share = failure_share
        self._recent: deque[bool] = deque(maxlen=window)
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_out = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None and self._clock() - self._opened_at < self.cooldown

    def allow(self) -> bool:
        if self._opened_at is None:
            return True
        if self.is_open:
            return False
        if self._trial_out:
            return False
        self._trial_out = True  # half-open: one trial call
        return True

    def record_success(self) -> None:
        self._recent.append(True)
        self._failures = 0
        self._opened_at = None
        self._trial_out = False

    def record_failure(self) -> None:
        self._recent.append(False)
        self._failures += 1
        self._trial_out = False
        full = len(self._recent) == self._recent.maxlen
        share = self._recent.count(False) / len(self._recent)
        if (
            self._failures >= self.threshold
            or (full and share >= self.failure_share)
            or self._opened_at is not None
        ):
            self._opened_at = self._clock()

    def retry_in(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (self._clock() - self._opened_at))
