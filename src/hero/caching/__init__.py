"""Caching: the :class:`Cache` interface with in-process and Valkey implementations.

See :mod:`hero.caching.base` for the semantics every backend shares, and
:mod:`hero.caching.testing` for the conformance suite that checks them.
"""

from hero.caching.base import (
    Cache,
    CacheError,
    CacheTypeError,
    CacheUnavailableError,
    ttl_milliseconds,
)
from hero.caching.memory import MemoryCache
from hero.caching.valkey import ValkeyCache, create_valkey_client

__all__ = [
    "Cache",
    "CacheError",
    "CacheTypeError",
    "CacheUnavailableError",
    "MemoryCache",
    "ValkeyCache",
    "create_valkey_client",
    "ttl_milliseconds",
]
