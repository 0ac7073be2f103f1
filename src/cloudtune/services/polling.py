"""When this process next polls each remote job it holds the lease of: a backoff that doubles
while nothing changes and starts again after a change, never under the reconcile interval.

The schedule is per process on purpose: only the replica holding a job's lease polls it
(`services.reconciler`), so no other replica needs to know when that one will. A job whose
lease moves to another replica starts there with a fresh schedule (polled on its first pass).
The clock is injectable (monotonic seconds) so tests move time instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from cloudtune.settings import Settings

# Remote jobs are asked every BACKOFF_START seconds after a change (never more often than the
# reconcile interval), doubling while nothing changes up to the backoff setting.
BACKOFF_START = 2.0


@dataclass(frozen=True, slots=True)
class Poll:
    """When a remote job is next polled, and when we last learned its state."""

    next_at: float  # monotonic time of the next scheduled poll
    interval: float  # the current backoff
    fresh_at: float  # last provider call or verified webhook: the floor for readers' asks


class PollSchedule:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._polls: dict[str, Poll] = {}
        # Jobs readers asked about, polled by the next pass once their floor passed.
        self._asked: set[str] = set()

    def get(self, job_id: str) -> Poll | None:
        return self._polls.get(job_id)

    def keep_only(self, job_ids: Iterable[str]) -> None:
        """Forget jobs this process no longer polls (ended, or held by another replica)."""
        keep = set(job_ids)
        for job_id in list(self._polls):
            if job_id not in keep:
                del self._polls[job_id]
        self._asked &= keep

    def ask(self, job_id: str) -> tuple[bool, bool]:
        """A reader wants this job fresh: (marked now, waits for a pass)."""
        if job_id in self._asked:
            return False, True
        if self.floor_passed(job_id):
            self._asked.add(job_id)
            return True, True
        return False, False

    def floor_passed(self, job_id: str) -> bool:
        poll = self._polls.get(job_id)
        floor = self._settings.reconcile_interval_seconds
        return poll is None or self._clock() >= poll.fresh_at + floor

    def due(self, job_id: str) -> bool:
        poll = self._polls.get(job_id)
        if poll is None or self._clock() >= poll.next_at:
            return True
        return job_id in self._asked and self.floor_passed(job_id)

    def before_call(self, job_id: str) -> None:
        self._asked.discard(job_id)
        now = self._clock()
        poll = self._polls.get(job_id)
        if poll is None:
            self._polls[job_id] = Poll(now, BACKOFF_START / 2, now)
        else:
            self._polls[job_id] = replace(poll, fresh_at=now)

    def after_check(self, job_id: str, *, changed: bool) -> None:
        """Back off while nothing changes (a failed call counts as no change, so a broken job
        is not asked every pass), never below the reconcile interval."""
        now = self._clock()
        poll = self._polls.get(job_id) or Poll(now, BACKOFF_START / 2, now)
        ceiling = self._settings.reconcile_backoff_max_seconds
        interval = min(BACKOFF_START, ceiling) if changed else min(ceiling, poll.interval * 2)
        interval = max(interval, self._settings.reconcile_interval_seconds)
        self._polls[job_id] = Poll(now + interval, interval, poll.fresh_at)

    def checked_by_webhook(self, job_id: str) -> None:
        """A verified webhook told us about this job: the next poll can wait."""
        now = self._clock()
        self._polls[job_id] = Poll(now + BACKOFF_START, BACKOFF_START, now)
