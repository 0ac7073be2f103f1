"""Credentials this process resolved, kept while the database's auth epoch stays the same.

Resolving a bearer token costs a database read in a worker thread, several times the rest of a
cached answer. The epoch (store.users) moves in the same transaction as every change to users,
keys and sessions, by any process, so an entry is dropped on the first request after such a
change anywhere: a revoked key is refused on the next request, by every replica. Where the
epoch cannot be read cheaply (PostgreSQL), nothing is kept and every request resolves in full.
"""

from __future__ import annotations

import time
from datetime import datetime

from cloudtune.domain.principal import Principal
from cloudtune.services.cache import VersionedCache

_MAX_ENTRIES = 10_000


class CredentialCache:
    """Callers by credential, tagged with the epoch read before they were resolved; an entry
    also ends when its credential expires (wall-clock time, as the database keeps it)."""

    def __init__(self) -> None:
        # The epoch is read by the caller (once per request) and handed in, never read here;
        # expiries are wall-clock seconds, as the database keeps them.
        self._cache: VersionedCache[str, Principal] = VersionedCache(
            lambda: None, size=_MAX_ENTRIES, clock=time.time
        )

    def get(self, epoch: int, key: str, now: datetime) -> Principal | None:
        return self._cache.get(key, version=epoch, now=now.timestamp())

    def put(
        self, epoch: int, key: str, principal: Principal, valid_until: datetime | None
    ) -> None:
        expires = valid_until.timestamp() if valid_until is not None else None
        self._cache.put(key, principal, version=epoch, expires_at=expires)
