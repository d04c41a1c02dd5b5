"""MemoryCache: the in-process default (single instance, one event loop)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hero.caching.base import Cache, CacheTypeError, ttl_milliseconds

__all__ = ["MemoryCache"]

_SWEEP_MIN_OPERATIONS = 256


@dataclass(slots=True)
class _Entry:
    value: bytes  # a value, or a counter as its decimal digits
    expires_at: float | None


@dataclass(slots=True)
class _Store:
    clock: Callable[[], float]
    entries: dict[str, _Entry] = field(default_factory=dict)
    writes_since_sweep: int = 0
    sweep_after: int = _SWEEP_MIN_OPERATIONS

    def live(self, key: str, now: float) -> _Entry | None:
        entry = self.entries.get(key)
        if entry is not None and entry.expires_at is not None and entry.expires_at <= now:
            del self.entries[key]
            return None
        return entry

    def wrote(self, now: float) -> None:
        """Amortised O(1) purge of expired keys nobody reads again (e.g. typing claims)."""
        self.writes_since_sweep += 1
        if self.writes_since_sweep < self.sweep_after:
            return
        expired = [
            key
            for key, entry in self.entries.items()
            if entry.expires_at is not None and entry.expires_at <= now
        ]
        for key in expired:
            del self.entries[key]
        # The next sweep waits for as many writes as there are live keys now, so the scans
        # cost O(1) amortised per write.
        self.writes_since_sweep = 0
        self.sweep_after = max(_SWEEP_MIN_OPERATIONS, len(self.entries))


def _expiry(now: float, ttl_seconds: float) -> float:
    return now + ttl_milliseconds(ttl_seconds) / 1000


class MemoryCache(Cache):
    """A :class:`Cache` in a dict of this process.

    Every method completes without awaiting, so each is atomic on its event loop; it is not
    thread-safe. Time comes from ``clock`` (seconds, monotonic; inject a fake one in tests).
    Expired keys are dropped when touched and by an amortised sweep, so memory stays bounded
    by the live keys. :meth:`prefixed` views share the store and the clock.
    """

    def __init__(self, key_prefix: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self._prefix = key_prefix
        self._store = _Store(clock=clock)

    @classmethod
    def _view(cls, store: _Store, key_prefix: str) -> MemoryCache:
        view = cls.__new__(cls)
        view._prefix = key_prefix
        view._store = store
        return view

    @property
    def key_prefix(self) -> str:
        return self._prefix

    def prefixed(self, prefix: str) -> MemoryCache:
        return MemoryCache._view(self._store, self._prefix + prefix)

    def _now(self) -> float:
        return self._store.clock()

    async def get(self, key: str) -> bytes | None:
        entry = self._store.live(self._prefix + key, self._now())
        return None if entry is None else entry.value

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        now = self._now()
        expires_at = None if ttl_seconds is None else _expiry(now, ttl_seconds)
        self._store.entries[self._prefix + key] = _Entry(bytes(value), expires_at)
        self._store.wrote(now)

    async def delete(self, key: str) -> bool:
        full = self._prefix + key
        entry = self._store.live(full, self._now())
        if entry is None:
            return False
        del self._store.entries[full]
        return True

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        now = self._now()
        expires_at = _expiry(now, ttl_seconds)
        full = self._prefix + key
        if self._store.live(full, now) is not None:
            return False
        self._store.entries[full] = _Entry(b"1", expires_at)
        self._store.wrote(now)
        return True

    async def increment(self, key: str, ttl_seconds: float) -> int:
        now = self._now()
        expires_at = _expiry(now, ttl_seconds)
        full = self._prefix + key
        entry = self._store.live(full, now)
        if entry is None:
            self._store.entries[full] = _Entry(b"1", expires_at)
            self._store.wrote(now)
            return 1
        try:
            count = int(entry.value) + 1
        except ValueError:
            raise CacheTypeError("the key holds a value that is not an integer") from None
        entry.value = str(count).encode()
        return count
