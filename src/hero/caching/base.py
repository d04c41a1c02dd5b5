"""The Cache interface: a small, async, bytes-valued key store with expiry.

Two families of operations, each with the same semantics on every backend (the conformance
suite in :mod:`hero.caching.testing` holds every implementation to them):

* **values** — :meth:`Cache.get`, :meth:`Cache.set`, :meth:`Cache.delete`;
* **throttles** — :meth:`Cache.claim` (true exactly once per key per window; the typing
  indicator's ``SET NX PX``) and :meth:`Cache.increment` (a fixed-window counter for rate
  limits).

Presence (which users are online across instances, with entries left by a crashed instance
swept) is not a cache operation: it has its own store in :mod:`hero.caching.presence`.

Keys are strings; each cache has a ``key_prefix`` that is prepended to every key, and
:meth:`Cache.prefixed` gives a view on the same store with a longer prefix. Incrementing a key
whose value is not a decimal integer (or, on Valkey, using a key that something else stored
as another data type) raises :class:`CacheTypeError`. Every TTL is in seconds, finite and
positive (a ``ValueError`` otherwise), with millisecond resolution.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

__all__ = ["Cache", "CacheError", "CacheTypeError", "CacheUnavailableError", "ttl_milliseconds"]


class CacheError(Exception):
    """A cache operation failed (the root of the cache's exception hierarchy)."""


class CacheUnavailableError(CacheError):
    """The backing server could not be reached or did not answer in time."""


class CacheTypeError(CacheError):
    """The key holds another kind of data than the operation expects."""


def ttl_milliseconds(ttl_seconds: float) -> int:
    """``ttl_seconds`` as whole milliseconds (rounded up, at least 1).

    Raises ``ValueError`` unless the TTL is a finite, positive number.
    """
    if isinstance(ttl_seconds, bool) or not math.isfinite(ttl_seconds) or ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be a finite, positive number (got {ttl_seconds!r})")
    return max(1, math.ceil(ttl_seconds * 1000))


class Cache(ABC):
    """An async key store with expiry, shared by every instance when backed by Valkey.

    Implementations must make each method atomic with respect to the others (for every caller
    in the cluster, not only in this process) and must not do I/O in their constructors.
    """

    @property
    @abstractmethod
    def key_prefix(self) -> str:
        """The string prepended to every key of this cache (may be empty)."""

    @abstractmethod
    def prefixed(self, prefix: str) -> Cache:
        """A view on the same store whose keys are prefixed by ``key_prefix + prefix``."""

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value stored at ``key``, or ``None`` if absent or expired."""

    @abstractmethod
    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        """Store ``value`` at ``key``, replacing anything there (and its expiry).

        With ``ttl_seconds`` the key expires after that long; without, it never expires.
        """

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove ``key`` (any kind); True if something live was removed."""

    @abstractmethod
    async def claim(self, key: str, ttl_seconds: float) -> bool:
        """True for exactly one caller per key per window of ``ttl_seconds``.

        The first call creates ``key`` with that expiry and returns True; every other call
        returns False, without extending the window, until the key expires (or is deleted).
        """

    @abstractmethod
    async def increment(self, key: str, ttl_seconds: float) -> int:
        """Add one to the counter at ``key`` and return the new value (fixed window).

        The call that creates the counter (value 1) starts its window of ``ttl_seconds``;
        later increments do not extend it. After the window the count starts again at 1.
        """
