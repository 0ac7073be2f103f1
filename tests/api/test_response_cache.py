from __future__ import annotations

import asyncio

from cloudtune.api.response_cache import ResponseCache
from cloudtune.store.db import Database
from tests.factories import create_job


class Renderer:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> bytes:
        self.calls += 1
        await asyncio.sleep(0.01)
        return f"body {self.calls}".encode()


async def test_hits_and_write_invalidation(db: Database) -> None:
    cache, render = ResponseCache(db, ttl=60), Renderer()
    assert await cache.get_or_render("k", render) == b"body 1"
    assert await cache.get_or_render("k", render) == b"body 1"
    create_job(db)  # any committed write ends every entry
    assert await cache.get_or_render("k", render) == b"body 2"


async def test_concurrent_misses_share_one_render(db: Database) -> None:
    cache, render = ResponseCache(db, ttl=60), Renderer()
    bodies = await asyncio.gather(*(cache.get_or_render("k", render) for _ in range(50)))
    assert set(bodies) == {b"body 1"} and render.calls == 1


async def test_an_old_entry_is_served_while_it_is_rendered_again(db: Database) -> None:
    cache, render = ResponseCache(db, ttl=0.05), Renderer()
    await cache.get_or_render("k", render)
    await asyncio.sleep(0.06)
    assert await cache.get_or_render("k", render) == b"body 1"  # stale, refresh started
    await asyncio.sleep(0.03)
    assert await cache.get_or_render("k", render) == b"body 2"


async def test_ttl_zero_never_caches_and_errors_are_not_cached(db: Database) -> None:
    cache, render = ResponseCache(db, ttl=0), Renderer()
    await cache.get_or_render("k", render)
    await cache.get_or_render("k", render)
    assert render.calls == 2

    async def failing() -> bytes:
        raise LookupError("gone")

    cache = ResponseCache(db, ttl=60)
    for _ in range(2):
        try:
            await cache.get_or_render("e", failing)
        except LookupError:
            pass
        else:
            raise AssertionError("the error must reach every caller")
