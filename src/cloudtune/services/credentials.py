"""Credentials this process resolved, kept while the database's auth epoch stays the same.

Resolving a bearer token costs a database read in a worker thread, several times the rest of a
cached answer. The epoch (store.users) moves in the same transaction as every change to users,
keys and sessions, by any process, so an entry is dropped on the first request after such a
change anywhere: a revoked key is refused on the next request, by every replica. Where the
epoch cannot be read cheaply (PostgreSQL), nothing is kept and every request resolves in full.
"""

from __future__ import annotations

from datetime import datetime

from cloudtune.domain.principal import Principal

_MAX_ENTRIES = 10_000


class CredentialCache:
    def __init__(self) -> None:
        self._epoch: int | None = None
        self._entries: dict[str, tuple[Principal, datetime | None]] = {}

    def get(self, epoch: int, key: str, now: datetime) -> Principal | None:
        if epoch != self._epoch:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        principal, valid_until = entry
        if valid_until is not None and valid_until <= now:
            self._entries.pop(key, None)
            return None
        return principal

    def put(
        self, epoch: int, key: str, principal: Principal, valid_until: datetime | None
    ) -> None:
        if epoch != self._epoch:
            self._epoch, self._entries = epoch, {}
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (principal, valid_until)
