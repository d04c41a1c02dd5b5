"""``CachingOptions:Redis``: a Valkey/Redis endpoint (one server, or the seeds of a Valkey
Cluster), parsed and turned into a client URL for :func:`hero.caching.create_valkey_client`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

__all__ = ["RedisEndpoint", "parse_redis_endpoint"]

_MAX_SHOWN = 80


def _show(value: object) -> str:
    text = repr(value)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 4] + "...'"
    return text


_URL_SCHEMES: Final = {"redis": False, "valkey": False, "rediss": True, "valkeys": True}
# Query options valkey-py understands in a URL; anything else would only fail at connect time.
_URL_OPTIONS: Final = frozenset(
    {
        "db",
        "socket_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "retry_on_timeout",
        "max_connections",
        "health_check_interval",
        "timeout",
        "client_name",
        "protocol",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_check_hostname",
    }
)
_DEFAULT_PORT: Final = 6379
_DEFAULT_TLS_PORT: Final = 6380  # StackExchange.Redis' default when ssl=true and no port


@dataclass(frozen=True, slots=True)
class RedisEndpoint:
    """One Valkey/Redis server, parsed from ``CachingOptions:Redis``.

    Invariants: ``host`` is non-empty, ``1 <= port <= 65535``, ``database >= 0``; ``options``
    only holds query options valkey-py accepts in a URL. The password is excluded from
    ``repr``. ``cluster`` means a Valkey Cluster: ``host:port`` is one seed node, ``seeds``
    are more (``(host, port)`` pairs), and ``database`` is 0.
    """

    host: str
    port: int = _DEFAULT_PORT
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    database: int = 0
    options: tuple[tuple[str, str], ...] = ()
    cluster: bool = False
    seeds: tuple[tuple[str, int], ...] = ()

    def url(self) -> str:
        """A ``redis://`` or ``rediss://`` URL for ``create_valkey_client`` (credentials
        quoted); a cluster adds ``cluster=true`` and one ``seed=host:port`` per extra seed."""
        scheme = "rediss" if self.ssl else "redis"
        userinfo = ""
        if self.username is not None or self.password is not None:
            userinfo = quote(self.username or "", safe="")
            if self.password is not None:
                userinfo += ":" + quote(self.password, safe="")
            userinfo += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        options = list(self.options)
        if self.cluster:
            options.append(("cluster", "true"))
            options += [("seed", f"{_bracket(h)}:{p}") for h, p in self.seeds]
        query = f"?{urlencode(options)}" if options else ""
        return f"{scheme}://{userinfo}{host}:{self.port}/{self.database}{query}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _EndpointError(ValueError):
    pass


def _parse_port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise _EndpointError(f"port must be an integer between 1 and 65535 (got {_show(text)})")
    return int(text)


def _parse_bool(name: str, value: str) -> bool:
    if value.strip().lower() not in ("true", "false"):
        raise _EndpointError(f"{name} must be true or false (got {_show(value)})")
    return value.strip().lower() == "true"


def _cluster_database(cluster: bool, database: int) -> int:
    if cluster and database != 0:
        raise _EndpointError("a Valkey Cluster has only database 0")
    return database


def _parse_host_port(endpoint: str, default_port: int) -> tuple[str, int]:
    port_text = ""
    if endpoint.startswith("["):
        host, _, rest = endpoint[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise _EndpointError(f"cannot parse endpoint {_show(endpoint)}")
        port_text = rest.removeprefix(":")
    elif endpoint.count(":") == 1:
        host, _, port_text = endpoint.partition(":")
    else:  # a bare host name, or a bare IPv6 address without a port
        host = endpoint
    if not host:
        raise _EndpointError(f"the endpoint has no host (got {_show(endpoint)})")
    return host, _parse_port(port_text) if port_text else default_port


def _parse_url_endpoint(text: str) -> RedisEndpoint:
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _URL_SCHEMES:
        raise _EndpointError(
            f"unsupported URL scheme {_show(parts.scheme)}; "
            "use redis://, rediss://, valkey:// or valkeys://"
        )
    netloc_host = parts.netloc.rpartition("@")[2]
    port_text = ""
    if netloc_host.startswith("["):
        host_part, _, rest = netloc_host[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host_part, _, port_text = netloc_host.partition(":")
    host = unquote(host_part)
    if not host:
        raise _EndpointError("the URL has no host")
    port = _parse_port(port_text) if port_text else _DEFAULT_PORT
    database = 0
    path = parts.path.strip("/")
    if path:
        if not (path.isascii() and path.isdigit()):
            raise _EndpointError(f"the database in the URL path must be a number (got {path!r})")
        database = int(path)
    options: list[tuple[str, str]] = []
    cluster = False
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "cluster":
            cluster = _parse_bool("cluster", value)
            continue
        if name not in _URL_OPTIONS:
            raise _EndpointError(f"unsupported URL option {name!r}")
        if name == "db":
            if not (value.isascii() and value.isdigit()):
                raise _EndpointError(f"db must be a number (got {_show(value)})")
            database = int(value)
            continue
        options.append((name, value))
    return RedisEndpoint(
        host=host,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        ssl=_URL_SCHEMES[scheme],
        database=_cluster_database(cluster, database),
        options=tuple(options),
        cluster=cluster,
    )


def _parse_stackexchange_endpoint(text: str) -> RedisEndpoint:
    endpoints: list[str] = []
    password: str | None = None
    username: str | None = None
    ssl = False
    cluster = False
    database = 0
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if "=" not in item:
            endpoints.append(item)
            continue
        name, _, value = item.partition("=")
        name = name.strip().lower()
        value = value.strip()
        if name == "password":
            password = value
        elif name == "user":
            username = value
        elif name == "ssl":
            ssl = _parse_bool("ssl", value)
        elif name == "cluster":
            cluster = _parse_bool("cluster", value)
        elif name == "defaultdatabase":
            if not (value.isascii() and value.isdigit()):
                raise _EndpointError(f"defaultDatabase must be a number (got {_show(value)})")
            database = int(value)
        elif name == "servicename":
            raise _EndpointError("Sentinel (serviceName=...) is not supported")
        # Every other StackExchange option (abortConnect, connectTimeout, ...) is ignored.
    if not endpoints:
        raise _EndpointError("no host:port endpoint given")
    default_port = _DEFAULT_TLS_PORT if ssl else _DEFAULT_PORT
    (host, port), *seeds = [_parse_host_port(e, default_port) for e in endpoints]
    cluster = cluster or bool(seeds)
    return RedisEndpoint(
        host=host,
        port=port,
        username=username,
        password=password,
        ssl=ssl,
        database=_cluster_database(cluster, database),
        cluster=cluster,
        seeds=tuple(seeds),
    )


def parse_redis_endpoint(text: str) -> RedisEndpoint | None:
    """Parse ``CachingOptions:Redis``; ``None`` for an empty value (in-process mode).

    Accepted forms: StackExchange.Redis style ``host[:port][,password=...][,user=...]
    [,ssl=true][,defaultDatabase=N]`` (other ``key=value`` options such as
    ``abortConnect=false`` are ignored; the port defaults to 6379, or 6380 with ``ssl=true``)
    and ``redis://``, ``rediss://``, ``valkey://``, ``valkeys://`` URLs (``s`` means TLS).
    A Valkey Cluster: several ``host:port`` endpoints in the StackExchange form (as
    StackExchange.Redis takes a cluster's nodes), or ``cluster=true`` in either form.
    Raises ``ValueError`` with a message that never contains the password.
    """
    text = text.strip()
    if not text:
        return None
    if "://" in text:
        return _parse_url_endpoint(text)
    return _parse_stackexchange_endpoint(text)
