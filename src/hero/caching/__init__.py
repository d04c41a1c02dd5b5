"""Caching: the :class:`Cache` interface and presence storage, in-process and on Valkey.

See :mod:`hero.caching.base` for the semantics every cache backend shares,
:mod:`hero.caching.testing` for the conformance suite that checks them, and
:mod:`hero.caching.presence` for the :class:`PresenceStore` of connection entries that expire
unless refreshed.
"""

from hero.caching.base import (
    Cache,
    CacheError,
    CacheTypeError,
    CacheUnavailableError,
    ttl_milliseconds,
)
from hero.caching.memory import MemoryCache
from hero.caching.presence import (
    MemoryPresenceStore,
    PresenceEntry,
    PresenceStore,
    ValkeyPresenceStore,
)
from hero.caching.valkey import ValkeyCache, create_valkey_client

__all__ = [
    "Cache",
    "CacheError",
    "CacheTypeError",
    "CacheUnavailableError",
    "MemoryCache",
    "MemoryPresenceStore",
    "PresenceEntry",
    "PresenceStore",
    "ValkeyCache",
    "ValkeyPresenceStore",
    "create_valkey_client",
    "ttl_milliseconds",
]
