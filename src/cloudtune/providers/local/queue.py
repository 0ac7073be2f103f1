"""The local provider's waiting line and its slots: one trainer per free GPU (one at a time on
the CPU), waiting jobs ordered by priority, then by arrival."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from cloudtune.providers.base import ProviderStatus
from cloudtune.providers.local.processes import TrainerProcess


@dataclass(slots=True)
class Entry:
    """One job this replica holds: waiting, running, or ended and not yet forgotten."""

    job_id: str
    run_dir: Path
    priority: int
    seq: int
    env: dict[str, str] = field(default_factory=dict)
    process: TrainerProcess | None = None
    slot: int | None = None
    final: ProviderStatus | None = None
    cancel_requested: bool = False
    kill_at: float | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.final is None


class JobQueue:
    """Entries by job id, the waiting line, and the free slots."""

    def __init__(self, slots: int) -> None:
        self.entries: dict[str, Entry] = {}
        self._waiting: list[Entry] = []
        self._free: list[int] = list(range(slots))
        self._seq = itertools.count()

    def next_seq(self) -> int:
        return next(self._seq)

    def add(self, entry: Entry) -> None:
        """Keep an entry that does not wait (running or ended)."""
        self.entries[entry.job_id] = entry

    def enqueue(self, entry: Entry) -> None:
        self.entries[entry.job_id] = entry
        self._waiting.append(entry)
        self._waiting.sort(key=lambda e: (-e.priority, e.seq))

    def position(self, entry: Entry) -> int | None:
        """1 for the next to start; None when not waiting."""
        return self._waiting.index(entry) + 1 if entry in self._waiting else None

    def withdraw(self, entry: Entry) -> None:
        if entry in self._waiting:
            self._waiting.remove(entry)

    def pop_startable(self) -> Entry | None:
        """The next waiting entry, given a free slot; None while nothing waits or nothing is
        free."""
        if not self._waiting or not self._free:
            return None
        entry = self._waiting.pop(0)
        entry.slot = self.take_slot()
        return entry

    def take_slot(self) -> int | None:
        return self._free.pop(0) if self._free else None

    def free_slot(self, entry: Entry) -> None:
        if entry.slot is not None:
            self._free.append(entry.slot)
            self._free.sort()
            entry.slot = None
