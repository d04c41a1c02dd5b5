"""ValkeyCache: the cluster-wide :class:`Cache` on Valkey (or Redis), via valkey-py asyncio.

Expiry is always the server's: TTLs are ``PX`` milliseconds, so instances with skewed clocks
agree.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Final, cast

import valkey.asyncio
import valkey.exceptions

from hero.caching.base import (
    Cache,
    CacheError,
    CacheTypeError,
    CacheUnavailableError,
    ttl_milliseconds,
)

__all__ = ["ValkeyCache", "create_valkey_client"]


def create_valkey_client(
    url: str,
    *,
    socket_timeout: float | None = 5.0,
    connect_timeout: float = 5.0,
    health_check_interval: int = 30,
    max_connections: int | None = None,
    client_name: str | None = None,
) -> valkey.asyncio.Valkey:
    """One asyncio client (one connection pool) for ``url``, to share across the process.

    ``url`` is a ``redis://``, ``rediss://``, ``valkey://``, ``valkeys://`` or ``unix://`` URL
    (``Settings.caching.redis_url()`` gives one). Responses are bytes (``decode_responses`` is
    off). No I/O happens here: connections are opened on first use. The caller owns the client
    and closes it with ``await client.aclose()`` at shutdown (that also closes the pool).

    ``max_connections`` bounds the pool (``None``: valkey-py's default, effectively
    unbounded); ``client_name`` is sent with ``CLIENT SETNAME`` on connect when given.
    Every command is bounded by ``socket_timeout`` seconds. A pub/sub reader on this client
    must therefore poll with ``PubSub.get_message(timeout=...)`` (which passes its own
    timeout) rather than block in ``listen()`` on a quiet channel.
    """
    options: dict[str, Any] = {
        "decode_responses": False,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "health_check_interval": health_check_interval,
    }
    if max_connections is not None:
        options["max_connections"] = max_connections
    if client_name is not None:
        options["client_name"] = client_name
    return cast(valkey.asyncio.Valkey, valkey.asyncio.Valkey.from_url(url, **options))


class _TranslateErrors:
    """Converts valkey-py exceptions to the :class:`CacheError` hierarchy at the boundary."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, valkey.exceptions.ValkeyError):
            return
        if isinstance(exc, valkey.exceptions.ConnectionError | valkey.exceptions.TimeoutError):
            raise CacheUnavailableError(f"Valkey is unavailable: {exc}") from exc
        text = str(exc)
        if "WRONGTYPE" in text or "not an integer" in text:
            raise CacheTypeError(text) from exc
        raise CacheError(f"Valkey error: {text}") from exc


_translate_errors: Final = _TranslateErrors()


class ValkeyCache(Cache):
    """A :class:`Cache` on a shared valkey-py asyncio client; atomic cluster-wide.

    ``claim`` is ``SET key 1 NX PX ms``; ``increment`` is ``SET key 0 NX PX ms`` + ``INCR`` in
    one MULTI. Keys are ``key_prefix + key``. The client is borrowed, not owned: this class
    never closes it. The constructor does no I/O. Failures raise
    :class:`CacheUnavailableError` (connection, timeout), :class:`CacheTypeError` (wrong kind
    of key) or :class:`CacheError`.
    """

    def __init__(self, client: valkey.asyncio.Valkey, key_prefix: str = "") -> None:
        self._client = client
        self._prefix = key_prefix

    @property
    def client(self) -> valkey.asyncio.Valkey:
        """The shared client this cache uses."""
        return self._client

    @property
    def key_prefix(self) -> str:
        return self._prefix

    def prefixed(self, prefix: str) -> ValkeyCache:
        return ValkeyCache(self._client, self._prefix + prefix)

    async def get(self, key: str) -> bytes | None:
        with _translate_errors:
            value = await self._client.get(self._prefix + key)
        return None if value is None else bytes(value)

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        px = None if ttl_seconds is None else ttl_milliseconds(ttl_seconds)
        with _translate_errors:
            await self._client.set(self._prefix + key, value, px=px)

    async def delete(self, key: str) -> bool:
        with _translate_errors:
            removed = await self._client.delete(self._prefix + key)
        return bool(removed)

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        px = ttl_milliseconds(ttl_seconds)
        with _translate_errors:
            won = await self._client.set(self._prefix + key, b"1", nx=True, px=px)
        return bool(won)

    async def increment(self, key: str, ttl_seconds: float) -> int:
        px = ttl_milliseconds(ttl_seconds)
        full = self._prefix + key
        with _translate_errors:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(full, b"0", nx=True, px=px)
                pipe.incr(full)
                results = await pipe.execute()
        return int(results[1])
