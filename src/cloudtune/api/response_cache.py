"""A short-lived cache of rendered JSON answers for the hottest reads (job list, job detail).

An entry is served only while no write transaction has committed in this process since it was
rendered (`Database.write_version`) and for at most `ttl` seconds, which bounds how stale two
things can be: running jobs' ticking `duration_seconds`/`cost_usd`, and writes made by other
server replicas sharing a PostgreSQL database. Concurrent misses on one key share one render,
so an expiring entry under load costs one database read, not one per waiting request; an entry
that is only old (no write since) is served once more while it is rendered again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

from cloudtune.store.db import Database


class ResponseCache:
    def __init__(self, db: Database, *, ttl: float = 1.0, size: int = 2048) -> None:
        self._db = db
        self._ttl = ttl
        self._size = size
        self._entries: OrderedDict[Hashable, tuple[int, float, bytes]] = OrderedDict()
        self._rendering: dict[tuple[Hashable, int], asyncio.Task[bytes]] = {}

    async def get_or_render(self, key: Hashable, render: Callable[[], Awaitable[bytes]]) -> bytes:
        version = self._db.write_version
        entry = self._entries.get(key)
        if entry is not None and entry[0] == version:
            if time.monotonic() <= entry[1]:
                return entry[2]
            # Only old: refresh in the background, answer with what we have meanwhile.
            self._render(key, version, render)
            return entry[2]
        # shield: one waiter going away must not cancel the render the others wait for.
        return await asyncio.shield(self._render(key, version, render))

    def _render(
        self, key: Hashable, version: int, render: Callable[[], Awaitable[bytes]]
    ) -> asyncio.Task[bytes]:
        task = self._rendering.get((key, version))
        if task is None:
            task = asyncio.ensure_future(render())
            self._rendering[(key, version)] = task
            task.add_done_callback(lambda done: self._finish(key, version, done))
        return task

    def _finish(self, key: Hashable, version: int, task: asyncio.Task[bytes]) -> None:
        self._rendering.pop((key, version), None)
        if task.cancelled() or task.exception() is not None or self._ttl <= 0:
            self._entries.pop(key, None)
            return
        if version != self._db.write_version:
            return  # a write landed while rendering: the body may predate it
        self._entries[key] = (version, time.monotonic() + self._ttl, task.result())
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
