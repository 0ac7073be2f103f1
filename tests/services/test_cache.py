"""The versioned cache behind the response cache, the credential cache and provider settings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from cloudtune.domain.principal import LOCAL_ADMIN
from cloudtune.services.cache import VersionedCache
from cloudtune.services.credentials import CredentialCache
from cloudtune.store.db import Database
from tests.factories import create_job


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Renderer:
    """Renders `body N`; each render waits until the test releases it."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> bytes:
        self.calls += 1
        calls = self.calls
        await self.release.wait()
        return f"body {calls}".encode()


async def settle() -> None:
    """Let every ready task run to its end (no time passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


def response_cache(db: Database, ttl: float, clock: Clock) -> VersionedCache[str, bytes]:
    return VersionedCache(lambda: db.write_version, ttl=ttl, size=8, clock=clock)


async def test_hits_and_write_invalidation(db: Database) -> None:
    cache, render = response_cache(db, 60, Clock()), Renderer()
    assert await cache.get_or_render("k", render) == b"body 1"
    assert await cache.get_or_render("k", render) == b"body 1"
    create_job(db)  # any committed write ends every entry
    assert await cache.get_or_render("k", render) == b"body 2"


async def test_concurrent_misses_share_one_render(db: Database) -> None:
    cache, render = response_cache(db, 60, Clock()), Renderer()
    bodies = await asyncio.gather(*(cache.get_or_render("k", render) for _ in range(50)))
    assert set(bodies) == {b"body 1"} and render.calls == 1


async def test_an_old_entry_is_served_while_it_is_rendered_again(db: Database) -> None:
    clock = Clock()
    cache, render = response_cache(db, 1.0, clock), Renderer()
    await cache.get_or_render("k", render)
    clock.now += 1.5
    render.release.clear()
    assert await cache.get_or_render("k", render) == b"body 1"  # old: served, refresh started
    assert await cache.get_or_render("k", render) == b"body 1"  # still rendering
    await settle()
    assert render.calls == 2  # one refresh for both
    render.release.set()
    await settle()
    assert await cache.get_or_render("k", render) == b"body 2"


async def test_a_write_during_a_render_keeps_its_answer_out(db: Database) -> None:
    cache, render = response_cache(db, 60, Clock()), Renderer()
    render.release.clear()
    waiting = asyncio.ensure_future(cache.get_or_render("k", render))
    await asyncio.sleep(0)
    create_job(db)
    render.release.set()
    assert await waiting == b"body 1"  # its caller gets it...
    assert await cache.get_or_render("k", render) == b"body 2"  # ...nobody after the write


async def test_ttl_zero_never_caches_and_errors_are_not_cached(db: Database) -> None:
    cache, render = response_cache(db, 0, Clock()), Renderer()
    await cache.get_or_render("k", render)
    await cache.get_or_render("k", render)
    assert render.calls == 2

    async def failing() -> bytes:
        raise LookupError("gone")

    cache = response_cache(db, 60, Clock())
    for _ in range(2):
        try:
            await cache.get_or_render("e", failing)
        except LookupError:
            pass
        else:
            raise AssertionError("the error must reach every caller")


def test_entries_end_with_their_version_ttl_expiry_and_size() -> None:
    clock, version = Clock(), [1]
    cache: VersionedCache[str, int] = VersionedCache(
        lambda: version[0], ttl=10, size=2, clock=clock
    )
    cache.put("a", 1, version=1)
    assert cache.get("a") == 1
    version[0] = 2
    assert cache.get("a") is None
    cache.put("a", 1, version=2, expires_at=clock.now + 5)
    clock.now += 5
    assert cache.get("a") is None  # its own expiry, before the TTL
    cache.put("b", 2, version=2)
    cache.put("c", 3, version=2)
    cache.put("d", 4, version=2)
    assert (cache.get("b"), cache.get("c"), cache.get("d")) == (None, 3, 4)  # oldest out
    clock.now += 10
    assert cache.get("c") is None
    cache.put("e", 5, version=None)  # the version could not be read: not kept
    assert cache.get("e", version=2) is None


def test_credentials_end_with_the_epoch_and_their_expiry() -> None:
    cache = CredentialCache()
    now = datetime.now(UTC)
    cache.put(7, "t:x", LOCAL_ADMIN, now + timedelta(minutes=1))
    cache.put(7, "t:y", LOCAL_ADMIN, None)
    assert cache.get(7, "t:x", now) is LOCAL_ADMIN
    assert cache.get(7, "t:x", now + timedelta(minutes=1)) is None
    assert cache.get(7, "t:y", now + timedelta(days=365)) is LOCAL_ADMIN
    assert cache.get(8, "t:y", now) is None  # a user, key or session changed somewhere
