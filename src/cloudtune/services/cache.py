"""One small cache for values derived from the database: each entry is tagged with the version it
was computed at, and served only while that version still stands.

The version comes from a supplier: `Database.write_version` (moves after every committed write of
this process) or the database-held auth epoch (moves with every change to users, keys and
sessions, by any process). A supplier answering None means "cannot tell cheaply": nothing is
kept then. Entries also end after `ttl` seconds (writes of other processes, time-derived fields)
or at their own expiry, and the oldest entries go first past `size`.

`get_or_render` adds what the response cache needs under load: concurrent misses on one key
share one render, and an entry that is only old (no write since) is served once more while a
fresh one renders in the background.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Clock = Callable[[], float]


class VersionedCache(Generic[K, V]):
    def __init__(
        self,
        version: Callable[[], int | None],
        *,
        ttl: float = float("inf"),
        size: int = 1024,
        clock: Clock = time.monotonic,
    ) -> None:
        self.version = version
        self.ttl = ttl
        self._size = size
        self._clock = clock
        # key -> (version, expires at, value); insertion order is age order.
        self._entries: dict[K, tuple[int, float, V]] = {}
        self._rendering: dict[tuple[K, int | None], asyncio.Task[V]] = {}
        # Writers may be worker threads (credentials resolved off the event loop); readers
        # need no lock.
        self._lock = threading.Lock()

    def get(self, key: K, *, version: int | None = None, now: float | None = None) -> V | None:
        """The value while its version stands and it has not expired; `version` and `now` when
        the caller has read them already."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        current = self.version() if version is None else version
        if entry[0] != current or (self._clock() if now is None else now) >= entry[1]:
            return None
        return entry[2]

    def put(
        self, key: K, value: V, *, version: int | None, expires_at: float | None = None
    ) -> None:
        """Keep `value`, computed from what the database held at `version` (read *before* the
        value was computed, so a change made meanwhile ends it); kept until `expires_at` or
        `ttl`, whichever comes first."""
        if version is None or self.ttl <= 0:
            return
        deadline = self._clock() + self.ttl
        if expires_at is not None:
            deadline = min(deadline, expires_at)
        with self._lock:
            self._entries.pop(key, None)  # re-inserted last: the newest
            self._entries[key] = (version, deadline, value)
            while len(self._entries) > self._size:
                del self._entries[next(iter(self._entries))]

    async def get_or_render(self, key: K, render: Callable[[], Awaitable[V]]) -> V:
        version = self.version()
        entry = self._entries.get(key)
        if entry is not None and version is not None and entry[0] == version:
            if self._clock() < entry[1]:
                return entry[2]
            # Only old: answer with it once more and render a fresh one meanwhile.
            self._render(key, version, render)
            return entry[2]
        # shield: one waiter going away must not cancel the render the others wait for.
        return await asyncio.shield(self._render(key, version, render))

    def _render(
        self, key: K, version: int | None, render: Callable[[], Awaitable[V]]
    ) -> asyncio.Task[V]:
        task = self._rendering.get((key, version))
        if task is None:
            task = asyncio.ensure_future(render())
            self._rendering[(key, version)] = task
            task.add_done_callback(lambda done: self._finish(key, version, done))
        return task

    def _finish(self, key: K, version: int | None, task: asyncio.Task[V]) -> None:
        self._rendering.pop((key, version), None)
        if task.cancelled() or task.exception() is not None:
            with self._lock:
                self._entries.pop(key, None)
            return
        if version != self.version():
            return  # a write landed while rendering: the value may predate it
        self.put(key, task.result(), version=version)
