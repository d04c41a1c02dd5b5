"""ValkeyCache: the cluster-wide :class:`Cache` on Valkey (or Redis), via valkey-py asyncio.

Expiry is always the server's: TTLs are ``PX`` milliseconds, so instances with skewed clocks
agree. Every operation touches one key, so the cache works unchanged on a Valkey Cluster
client (each command goes to the node that owns its key's slot).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Final, TypeAlias, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import valkey.asyncio
import valkey.exceptions
from valkey.asyncio.cluster import ClusterNode, ValkeyCluster
from valkey.asyncio.connection import SSLConnection, parse_url

from hero.caching.base import (
    Cache,
    CacheError,
    CacheTypeError,
    CacheUnavailableError,
    ttl_milliseconds,
)

__all__ = ["ValkeyCache", "ValkeyClient", "create_valkey_client", "is_cluster_client"]


ValkeyClient: TypeAlias = "valkey.asyncio.Valkey | ValkeyCluster"
"""A single-server client or a Valkey Cluster client: what every Valkey user here accepts."""


def is_cluster_client(client: object) -> bool:
    """True for a ``valkey.asyncio.cluster.ValkeyCluster``."""
    return isinstance(client, ValkeyCluster)


def register_script(client: ValkeyClient, text: str) -> Any:
    """``client.register_script(text)`` for either kind of client (valkey-py types it for the
    single-server client only); the script is called with ``keys=`` and ``args=``."""
    return cast(Any, client).register_script(text)


def _split_cluster_options(url: str) -> tuple[str, bool, list[tuple[str, int]]]:
    """Take hero's own ``cluster=true`` and ``seed=host:port`` options out of ``url``."""
    parts = urlsplit(url)
    cluster = False
    seeds: list[tuple[str, int]] = []
    kept: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "cluster":
            if value.lower() not in ("true", "false"):
                raise ValueError(f"cluster must be true or false (got {value!r})")
            cluster = value.lower() == "true"
        elif name == "seed":
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"seed must be host:port (got {value!r})")
            seeds.append((host.strip("[]"), int(port)))
        else:
            kept.append((name, value))
    if not cluster and seeds:
        raise ValueError("seed=host:port is only valid with cluster=true")
    return urlunsplit(parts._replace(query=urlencode(kept))), cluster, seeds


def create_valkey_client(
    url: str,
    *,
    socket_timeout: float | None = 5.0,
    connect_timeout: float = 5.0,
    health_check_interval: int = 30,
    max_connections: int | None = None,
    client_name: str | None = None,
) -> ValkeyClient:
    """One asyncio client (one connection pool) for ``url``, to share across the process.

    ``url`` is a ``redis://``, ``rediss://``, ``valkey://``, ``valkeys://`` or ``unix://`` URL
    (``Settings.caching.redis_url()`` gives one). Responses are bytes (``decode_responses`` is
    off). No I/O happens here: connections are opened on first use. The caller owns the client
    and closes it with ``await client.aclose()`` at shutdown (that also closes the pool).

    With the query option ``cluster=true`` the result is a
    ``valkey.asyncio.cluster.ValkeyCluster`` (see :data:`ValkeyClient`) that discovers the
    cluster's nodes from the URL's host, or from any of the extra ``seed=host:port``
    options; the database must then be 0 (https://valkey.io/topics/cluster-spec/). Without
    it, a ``valkey.asyncio.Valkey`` for one server.

    ``max_connections`` bounds the pool (``None``: valkey-py's default, effectively
    unbounded; per node for a cluster); ``client_name`` is sent with ``CLIENT SETNAME`` on
    connect when given. Every command is bounded by ``socket_timeout`` seconds. A pub/sub
    reader on this client must therefore poll with ``PubSub.get_message(timeout=...)`` (which
    passes its own timeout) rather than block in ``listen()`` on a quiet channel.
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
    plain_url, cluster, seeds = _split_cluster_options(url)
    if not cluster:
        return cast(valkey.asyncio.Valkey, valkey.asyncio.Valkey.from_url(plain_url, **options))
    options.update(parse_url(plain_url))
    if int(options.pop("db", 0) or 0) != 0:
        raise ValueError("a Valkey Cluster has only database 0")
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    host = options.pop("host", None)
    port = int(options.pop("port", 6379) or 6379)
    startup = [ClusterNode(host, port)] if host else []
    startup += [ClusterNode(seed_host, seed_port) for seed_host, seed_port in seeds]
    return ValkeyCluster(startup_nodes=startup, **options)


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

_INCREMENT = """
redis.call('SET', KEYS[1], '0', 'NX', 'PX', ARGV[1])
return redis.call('INCR', KEYS[1])
"""


class ValkeyCache(Cache):
    """A :class:`Cache` on a shared valkey-py asyncio client; atomic cluster-wide.

    ``claim`` is ``SET key 1 NX PX ms``; ``increment`` is ``SET key 0 NX PX ms`` + ``INCR`` in
    one Lua script (atomic like MULTI, and a script on one key also runs on a Valkey
    Cluster, whose client has no transactions). Keys are ``key_prefix + key``. The client
    is borrowed, not owned: this class never closes it. The constructor does no I/O. Failures raise
    :class:`CacheUnavailableError` (connection, timeout), :class:`CacheTypeError` (wrong kind
    of key) or :class:`CacheError`.
    """

    def __init__(self, client: ValkeyClient, key_prefix: str = "") -> None:
        self._client = client
        self._prefix = key_prefix
        self._increment = register_script(client, _INCREMENT)

    @property
    def client(self) -> ValkeyClient:
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
            result = await self._increment(keys=[full], args=[px])
        return int(result)
