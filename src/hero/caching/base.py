"""The Cache interface: a small, async, bytes-valued key store with expiry.

Three families of operations, each with the same semantics on every backend (the conformance
suite in :mod:`hero.caching.testing` holds every implementation to them):

* **values** — :meth:`Cache.get`, :meth:`Cache.set`, :meth:`Cache.delete`;
* **throttles** — :meth:`Cache.claim` (true exactly once per key per window; the typing
  indicator's ``SET NX PX``) and :meth:`Cache.increment` (a fixed-window counter for rate
  limits);
* **member sets** — :meth:`Cache.touch_member`, :meth:`Cache.remove_member`,
  :meth:`Cache.count_members`: a set of members per key where every member expires on its own
  unless refreshed. This is what cluster-wide presence needs: key ``presence:{tenant}:{user}``,
  one member per instance (``{instance_id}``) that has at least one connection of that user,
  refreshed by a heartbeat every ttl/3. ``touch_member`` returning True means "the user just
  came online anywhere", ``remove_member`` returning True means "the user's last connection in
  the cluster is gone". A member whose instance died simply expires, silently.

Keys are strings; each cache has a ``key_prefix`` that is prepended to every key, and
:meth:`Cache.prefixed` gives a view on the same store with a longer prefix. A key holds one
kind of data: using a member-set key as a value (or incrementing a non-integer) raises
:class:`CacheTypeError`. Every TTL is in seconds, finite and positive (a ``ValueError``
otherwise), with millisecond resolution.
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

    @abstractmethod
    async def touch_member(self, key: str, member: str, ttl_seconds: float) -> bool:
        """Add or refresh ``member`` in the member set at ``key``, live for ``ttl_seconds``.

        Returns True iff the set had no live member before this call (it just became
        non-empty). Refreshing a live member returns False. The key itself expires with its
        longest-lived member.
        """

    @abstractmethod
    async def remove_member(self, key: str, member: str) -> bool:
        """Remove ``member`` from the member set at ``key``.

        Returns True iff no live member remains afterwards (whether or not ``member`` was
        still live), so a caller that removes once per touch lifecycle learns that the set
        just became empty.
        """

    @abstractmethod
    async def count_members(self, key: str) -> int:
        """How many members of the set at ``key`` are live (0 for an absent key)."""
