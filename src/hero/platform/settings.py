"""Typed platform settings (docs/platform.md §2), parsed once at start-up.

Sources, lowest precedence first:

1. the built-in defaults of the models below;
2. an optional JSON file in ``appsettings.json`` shape (``--config FILE``);
3. environment variables whose names are the configuration keys joined by ``__``
   (``CachingOptions__Redis``, ``Cors__AllowedOrigins__0``); ``:`` is accepted as well.

Both sources are first flattened to colon-separated keys, exactly like ASP.NET Core's
configuration system, so a JSON array ``"AllowedOrigins": ["a", "b"]`` becomes the keys
``Cors:AllowedOrigins:0`` and ``Cors:AllowedOrigins:1`` and an environment variable
``Cors__AllowedOrigins__0`` overrides the first element only. Keys are matched
case-insensitively; keys the platform does not know are ignored (environment variables such as
``PATH`` are simply unknown keys). Every value is a string at that level (JSON numbers and
booleans are converted), and an empty value means "use the default". A list key may also be
given a single comma-separated value (``Cors__AllowedOrigins=https://a,https://b``).

Invariants of a :class:`Settings` returned by :func:`load_settings`:

* every field is validated and immutable (frozen models);
* ``jwt.signing_key`` is either empty or at least 32 characters, and it is never empty when
  ``environment`` is Production;
* every ``realtime`` duration is positive and ``client_timeout_interval_seconds`` is greater
  than ``keep_alive_interval_seconds``;
* ``caching.redis`` is a parsed :class:`RedisEndpoint` or ``None`` (in-process mode).

An empty signing key is left empty on purpose: :func:`load_settings` is pure (no randomness, no
logging) and the composition root decides. The caller checks ``settings.jwt.has_signing_key``
and, when it is false, generates one with :func:`generate_signing_key`, logs a warning and
continues with ``settings.with_signing_key(key)``.

Any problem raises :class:`SettingsError`, whose text is one line naming the key in colon form.
Secrets (signing key, Valkey password, database password) never appear in error texts or reprs.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from hero.platform.valkey_endpoint import RedisEndpoint, parse_redis_endpoint

__all__ = [
    "MIN_SIGNING_KEY_LENGTH",
    "CachingOptions",
    "CorsOptions",
    "DatabaseOptions",
    "HostEnvironment",
    "HttpOptions",
    "JwtOptions",
    "LoggingOptions",
    "NegotiateRateOptions",
    "RateLimitingOptions",
    "RealtimeOptions",
    "RedisEndpoint",
    "RestRateOptions",
    "Settings",
    "SettingsError",
    "generate_signing_key",
    "load_settings",
    "parse_redis_endpoint",
]

MIN_SIGNING_KEY_LENGTH: Final = 32
"""The shortest HS256 signing key accepted (characters)."""

_MAX_SHOWN = 80


class SettingsError(Exception):
    """A setting is missing, malformed or inconsistent; start-up must stop.

    ``str(error)`` is exactly one line, ``"{key}: {problem}"``, where ``key`` is the
    configuration key in colon form (``Realtime:KeepAliveIntervalSeconds``) or, for problems
    with the file itself, the file's path. It never contains a secret value.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = " ".join(problem.split())
        super().__init__(f"{key}: {self.problem}")


class _KeyedValueError(ValueError):
    """Raised inside model validators to name the offending key explicitly."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key
        self.problem = problem


def _show(value: object) -> str:
    text = repr(value)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 4] + "...'"
    return text


# --------------------------------------------------------------------------------------------
# Scalar converters (run before pydantic's own validation; they accept strings from the
# configuration sources and native values from Python callers)


def _to_bool(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"value must be true or false (got {_show(value)})")


def _to_positive_int(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and int(text) > 0:
            return int(text)
    raise ValueError(f"value must be a positive integer (got {_show(value)})")


def _to_non_negative_int(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            return int(text)
    raise ValueError(f"value must be a whole number, 0 or more (got {_show(value)})")


def _to_non_negative_rate(value: object) -> object:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number < 0:
        raise ValueError(f"value must be a number, 0 or more (got {_show(value)})")
    return number


def _to_positive_seconds(value: object) -> object:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number <= 0:
        raise ValueError(f"value must be a positive number of seconds (got {_show(value)})")
    return number


def _to_str(value: object) -> object:
    if isinstance(value, str):
        return value.strip()
    raise ValueError(f"value must be a string (got {_show(value)})")


def _to_str_list(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple):
        return tuple(value)
    raise ValueError(f"value must be a list of strings (got {_show(value)})")


_Bool = Annotated[bool, BeforeValidator(_to_bool)]
_PositiveInt = Annotated[int, BeforeValidator(_to_positive_int)]
_NonNegativeInt = Annotated[int, BeforeValidator(_to_non_negative_int)]
_NonNegativeRate = Annotated[float, BeforeValidator(_to_non_negative_rate)]
_PositiveSeconds = Annotated[float, BeforeValidator(_to_positive_seconds)]
_Str = Annotated[str, BeforeValidator(_to_str)]


# --------------------------------------------------------------------------------------------
# Valkey / Redis endpoint


def _to_redis_endpoint(value: object) -> object:
    if value is None or isinstance(value, RedisEndpoint):
        return value
    if isinstance(value, str):
        try:
            return parse_redis_endpoint(value)
        except ValueError as error:
            raise ValueError(f"invalid Valkey endpoint: {error}") from None
    raise ValueError("value must be a host:port[,option=value...] string or a redis:// URL")


# --------------------------------------------------------------------------------------------
# The models


class HostEnvironment(StrEnum):
    """The ``Environment`` setting; ``PRODUCTION`` turns on the strict checks."""

    DEVELOPMENT = "Development"
    STAGING = "Staging"
    PRODUCTION = "Production"


def _to_environment(value: object) -> object:
    if isinstance(value, HostEnvironment):
        return value
    if isinstance(value, str):
        for member in HostEnvironment:
            if member.value.lower() == value.strip().lower():
                return member
    choices = ", ".join(member.value for member in HostEnvironment)
    raise ValueError(f"value must be one of {choices} (got {_show(value)})")


class CachingOptions(BaseModel):
    """``CachingOptions``: where the shared cache/presence/backplane Valkey lives."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    redis: Annotated[RedisEndpoint | None, BeforeValidator(_to_redis_endpoint)] = Field(
        default=None,
        alias="Redis",
        description=(
            "Valkey endpoint: `host:port[,password=…][,ssl=true]` or a `redis://`, `rediss://`, "
            "`valkey://` URL. Set: cache, typing throttle, presence, the hub backplane and the "
            "relay between instances use it. Empty: in-process, one instance. A Valkey "
            "Cluster: several nodes (`n1:7000,n2:7000,n3:7000`) or `cluster=true` with one "
            "node; the backplane and the relay between instances use sharded pub/sub there."
        ),
    )

    def redis_url(self) -> str | None:
        """The endpoint as a ``redis://``/``rediss://`` URL for valkey-py, or ``None``."""
        return None if self.redis is None else self.redis.url()


class JwtOptions(BaseModel):
    """``JwtOptions``: token validation parameters and ``hero token`` lifetime.

    Invariant: ``signing_key`` is empty (not configured) or at least
    :data:`MIN_SIGNING_KEY_LENGTH` characters. It is excluded from ``repr``.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    issuer: _Str = Field(
        default="hero.local", alias="Issuer", description="the `iss` every token must carry"
    )
    audience: _Str = Field(
        default="hero.clients", alias="Audience", description="the `aud` every token must carry"
    )
    signing_key: _Str = Field(
        default="",
        alias="SigningKey",
        description=(
            "HS256 key, 32+ characters. Empty: a random development key per run (with a warning);"
            " refused in Production"
        ),
        repr=False,
    )
    access_token_minutes: _PositiveInt = Field(
        default=60,
        alias="AccessTokenMinutes",
        description="lifetime of tokens minted by `hero token`",
    )

    @property
    def has_signing_key(self) -> bool:
        """False when no key was configured and the caller must generate a development key."""
        return bool(self.signing_key)

    @model_validator(mode="after")
    def _check(self) -> JwtOptions:
        if self.signing_key and len(self.signing_key) < MIN_SIGNING_KEY_LENGTH:
            raise _KeyedValueError(
                "JwtOptions:SigningKey",
                f"must be at least {MIN_SIGNING_KEY_LENGTH} characters "
                f"(got {len(self.signing_key)})",
            )
        return self


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _normalize_origin(origin: str) -> str:
    problem = (
        "must be an origin like https://app.example.com (scheme://host[:port], no path); "
        f"use Cors:AllowAll for any origin (got {_show(origin)})"
    )
    parts = urlsplit(origin)
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise ValueError(problem)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(problem) from None
    scheme = parts.scheme.lower()
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port == _DEFAULT_PORTS[scheme]:
        port = None  # browsers never send the default port: https://x:443 is https://x
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def _to_origin(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError(f"value must be a string (got {_show(value)})")
    return _normalize_origin(value.strip())


class CorsOptions(BaseModel):
    """``Cors``: credentialed CORS is always on; these choose which origins are echoed.

    Invariant: every entry of ``allowed_origins`` is a normalised ``scheme://host[:port]``
    (lower-case scheme and host, no trailing slash, no default port: ``:80`` for http,
    ``:443`` for https).
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    allowed_origins: Annotated[
        tuple[Annotated[str, BeforeValidator(_to_origin)], ...], BeforeValidator(_to_str_list)
    ] = Field(
        default=(),
        alias="AllowedOrigins",
        description=(
            "explicit origin allow-list (credentialed CORS; also checked on WebSocket upgrades, "
            "where the server's own origin is always allowed); default ports are dropped "
            "(`https://x:443` is `https://x`)"
        ),
    )
    allow_all: _Bool = Field(
        default=False,
        alias="AllowAll",
        description="development only: echo any origin with credentials; refused in Production",
    )


class DatabaseOptions(BaseModel):
    """``DatabaseOptions``: the SQLAlchemy URL of the database."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    connection_string: _Str = Field(
        default="sqlite+aiosqlite:///hero.db",
        alias="ConnectionString",
        description=(
            "SQLAlchemy URL (`sqlite+aiosqlite:///…` or `postgresql+asyncpg://…`); migrated on "
            "start, checked by `/health/ready`"
        ),
        repr=False,
    )

    @model_validator(mode="after")
    def _check(self) -> DatabaseOptions:
        scheme, sep, _ = self.connection_string.partition("://")
        if not sep or not scheme:
            raise _KeyedValueError(
                "DatabaseOptions:ConnectionString",
                "must be a SQLAlchemy URL such as sqlite+aiosqlite:///hero.db or "
                "postgresql+asyncpg://user:password@host/db (the value is not shown: it may "
                "hold a password)",
            )
        return self


class RealtimeOptions(BaseModel):
    """``Realtime``: hub switches and limits.

    Invariants: all durations (seconds, fractions allowed), the message size, the group name
    length and the invocation burst are positive; the groups per connection and the
    invocation rate are 0 (no limit) or more;
    ``client_timeout_interval_seconds > keep_alive_interval_seconds``.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    enabled: _Bool = Field(default=True, alias="Enabled", description="false: no hub, no backplane")
    map: _Bool = Field(
        default=True, alias="Map", description="false: the hub is built but has no route"
    )
    keep_alive_interval_seconds: _PositiveSeconds = Field(
        default=15.0, alias="KeepAliveIntervalSeconds", description="server pings"
    )
    client_timeout_interval_seconds: _PositiveSeconds = Field(
        default=30.0,
        alias="ClientTimeoutIntervalSeconds",
        description="close a connection silent this long (after its first ping)",
    )
    handshake_timeout_seconds: _PositiveSeconds = Field(
        default=15.0, alias="HandshakeTimeoutSeconds", description="time allowed for the handshake"
    )
    maximum_receive_message_size: _PositiveInt = Field(
        default=32768,
        alias="MaximumReceiveMessageSize",
        description="bytes per incoming hub message, framing included; over it → Close with error",
    )
    allow_stateful_reconnects: _Bool = Field(
        default=True,
        alias="AllowStatefulReconnects",
        description=(
            "offer stateful reconnect to clients that ask for it (withStatefulReconnect): a "
            "dropped WebSocket resumes its connection, on any instance, without losing messages"
        ),
    )
    web_socket_compression: _Bool = Field(
        default=False,
        alias="WebSocketCompression",
        description=(
            "accept permessage-deflate (RFC 7692) when a client offers it; off, as in ASP.NET "
            "Core: it costs every connection ~35 KiB and every frame a deflate per recipient"
        ),
    )
    enable_detailed_errors: _Bool = Field(
        default=False,
        alias="EnableDetailedErrors",
        description="send exception texts to clients (HubException texts always pass)",
    )
    maximum_group_name_length: _PositiveInt = Field(
        default=256,
        alias="MaximumGroupNameLength",
        description=(
            "characters in a group name; longer, empty or control-character names are refused "
            "(HubException to a client)"
        ),
    )
    maximum_groups_per_connection: _NonNegativeInt = Field(
        default=1000,
        alias="MaximumGroupsPerConnection",
        description=(
            "groups one connection may be in before its own JoinGroup/JoinChannel is refused "
            "(groups joined on connect count, never refused); 0: no limit"
        ),
    )
    maximum_invocations_per_second: _NonNegativeRate = Field(
        default=20.0,
        alias="MaximumInvocationsPerSecond",
        description=(
            "average hub invocations per connection (token bucket); over it → error "
            "Completion, not run; 0: no limit (`hero conformance-server`: 0 unless set)"
        ),
    )
    invocation_burst: _PositiveInt = Field(
        default=40,
        alias="InvocationBurst",
        description="invocations a connection may send at once before the rate applies",
    )
    presence_ttl_seconds: _PositiveSeconds = Field(
        default=30.0,
        alias="PresenceTtlSeconds",
        description=(
            "a connection counts as online this long after its instance's last heartbeat "
            "(heartbeat every third of it)"
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> RealtimeOptions:
        if self.client_timeout_interval_seconds <= self.keep_alive_interval_seconds:
            raise _KeyedValueError(
                "Realtime:ClientTimeoutIntervalSeconds",
                "must be greater than Realtime:KeepAliveIntervalSeconds "
                f"(got {self.client_timeout_interval_seconds:g} <= "
                f"{self.keep_alive_interval_seconds:g})",
            )
        return self


class HttpOptions(BaseModel):
    """``Http``: limits of the REST API body (the hub endpoints have theirs under ``Realtime``)
    and of the HTTP server reading any request (the defaults are Kestrel's).

    Invariants: every size (bytes), rate and timeout is positive.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    max_request_body_size: _PositiveInt = Field(
        default=1_048_576,
        alias="MaxRequestBodySize",
        description="bytes per REST request body (`/api/...`); larger bodies get 413",
    )
    request_headers_timeout_seconds: _PositiveSeconds = Field(
        default=30.0,
        alias="RequestHeadersTimeoutSeconds",
        description=(
            "a request's line and headers must arrive within this (408; a connection that "
            "sends nothing is closed)"
        ),
    )
    keep_alive_timeout_seconds: _PositiveSeconds = Field(
        default=5.0,
        alias="KeepAliveTimeoutSeconds",
        description="an idle kept-alive HTTP connection is closed after this",
    )
    min_request_body_data_rate: _PositiveInt = Field(
        default=240,
        alias="MinRequestBodyDataRate",
        description="bytes/s a request body must keep up after the grace period (slower → 408)",
    )
    min_request_body_data_rate_grace_seconds: _PositiveSeconds = Field(
        default=5.0,
        alias="MinRequestBodyDataRateGraceSeconds",
        description="seconds of reading a body before its data rate counts",
    )
    max_request_line_size: _PositiveInt = Field(
        default=8192, alias="MaxRequestLineSize", description="bytes; a longer request line → 414"
    )
    max_request_headers_total_size: _PositiveInt = Field(
        default=32768,
        alias="MaxRequestHeadersTotalSize",
        description="bytes of request headers; more → 431",
    )


class _FixedWindow(BaseModel):
    """A fixed-window rate: at most ``permit_limit`` requests per ``window_seconds`` per
    client; the window of a client starts at its first request."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    permit_limit: _PositiveInt
    window_seconds: _PositiveSeconds


class NegotiateRateOptions(_FixedWindow):
    """``RateLimiting:Negotiate``: new hub connections per client address."""

    permit_limit: _PositiveInt = Field(
        default=100,
        alias="PermitLimit",
        description=(
            "new hub connections (negotiate, or a WebSocket without negotiate) per client "
            "address and window; over it → 429 with Retry-After"
        ),
    )
    window_seconds: _PositiveSeconds = Field(
        default=10.0, alias="WindowSeconds", description="the window of `PermitLimit`"
    )


class RestRateOptions(_FixedWindow):
    """``RateLimiting:Rest``: REST requests per user (per address when anonymous)."""

    permit_limit: _PositiveInt = Field(
        default=300,
        alias="PermitLimit",
        description=(
            "requests to `/api/...` (not the hub) per user, or per client address without a "
            "valid token, and window; over it → 429 problem+json with Retry-After"
        ),
    )
    window_seconds: _PositiveSeconds = Field(
        default=10.0, alias="WindowSeconds", description="the window of `PermitLimit`"
    )


class RateLimitingOptions(BaseModel):
    """``RateLimiting``: request rates and concurrent connections; each instance counts on
    its own (nothing is shared through Valkey).

    Invariants: every limit and window is positive.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    enabled: _Bool = Field(
        default=True, alias="Enabled", description="false: none of the limits below applies"
    )
    negotiate: NegotiateRateOptions = Field(default_factory=NegotiateRateOptions, alias="Negotiate")
    rest: RestRateOptions = Field(default_factory=RestRateOptions, alias="Rest")
    maximum_connections_per_user: _PositiveInt = Field(
        default=100,
        alias="MaximumConnectionsPerUser",
        description=(
            "hub connections one user may hold on one instance (from negotiate to the end); "
            "a new one past it → 429"
        ),
    )
    maximum_tracked_clients: _PositiveInt = Field(
        default=10_000,
        alias="MaximumTrackedClients",
        description=(
            "clients (addresses, users) each rate keeps a window for; past it the oldest "
            "window is dropped, so memory stays bounded"
        ),
    )


LOG_LEVELS: Final = {
    "Trace": 5,
    "Debug": logging.DEBUG,
    "Information": logging.INFO,
    "Warning": logging.WARNING,
    "Error": logging.ERROR,
    "Critical": logging.CRITICAL,
    "None": logging.CRITICAL + 50,
}
"""`Logging:LogLevel` values, ASP.NET Core's names (matched case-insensitively; Python's
`info` is accepted too). `Trace` is below DEBUG; `None` silences the logger."""

_LEVEL_BY_NAME: Final = {name.lower(): level for name, level in LOG_LEVELS.items()} | {
    "info": logging.INFO
}


def _to_levels(value: object) -> object:
    """Level names to numbers, naming the offending key."""
    if not isinstance(value, Mapping):
        return value
    levels: dict[str, int] = {}
    for name, level in value.items():
        if isinstance(level, int) and not isinstance(level, bool):
            levels[name] = level
            continue
        found = _LEVEL_BY_NAME.get(str(level).strip().lower())
        if found is None:
            raise _KeyedValueError(
                f"Logging:LogLevel:{name}",
                f"unknown level {_show(level)} (one of {', '.join(LOG_LEVELS)})",
            )
        levels[name] = found
    return levels


class LoggingOptions(BaseModel):
    """``Logging``: the least level each logger writes, as ASP.NET Core's
    ``Logging:LogLevel:<category>``: ``Logging:LogLevel:uvicorn.access=Warning`` drops the
    per-request access lines, ``Logging:LogLevel:Default`` sets the root logger.

    Invariants: every value is a level number (names are turned into numbers on binding).
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    log_level: Annotated[dict[str, int], BeforeValidator(_to_levels)] = Field(
        default_factory=dict,
        alias="LogLevel",
        description=(
            "a level per logger name (`Default`: the root; `uvicorn.access`: the HTTP and "
            "WebSocket access lines): Trace, Debug, Information, Warning, Error, Critical or None"
        ),
    )

    def levels(self) -> dict[str, int]:
        """Logger name (`""` for the root) → level number."""
        return {
            ("" if name.lower() == "default" else name): level
            for name, level in self.log_level.items()
        }


class Settings(BaseModel):
    """All platform settings; see the module docstring for sources and invariants.

    Construct it with :func:`load_settings` (or directly, with snake_case or PascalCase
    names, in tests); the same validation runs either way, but direct construction raises
    pydantic's ``ValidationError`` rather than :class:`SettingsError`.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    caching: CachingOptions = Field(default_factory=CachingOptions, alias="CachingOptions")
    jwt: JwtOptions = Field(default_factory=JwtOptions, alias="JwtOptions")
    cors: CorsOptions = Field(default_factory=CorsOptions, alias="Cors")
    database: DatabaseOptions = Field(default_factory=DatabaseOptions, alias="DatabaseOptions")
    realtime: RealtimeOptions = Field(default_factory=RealtimeOptions, alias="Realtime")
    http: HttpOptions = Field(default_factory=HttpOptions, alias="Http")
    rate_limiting: RateLimitingOptions = Field(
        default_factory=RateLimitingOptions, alias="RateLimiting"
    )
    logging: LoggingOptions = Field(default_factory=LoggingOptions, alias="Logging")
    environment: Annotated[HostEnvironment, BeforeValidator(_to_environment)] = Field(
        default=HostEnvironment.DEVELOPMENT,
        alias="Environment",
        description=(
            "`Production` refuses a missing signing key and `Cors:AllowAll`, and turns the demo "
            "sign-in off"
        ),
    )

    @property
    def is_production(self) -> bool:
        """True when ``Environment`` is Production (the strict checks are on)."""
        return self.environment is HostEnvironment.PRODUCTION

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.is_production and not self.jwt.has_signing_key:
            raise _KeyedValueError(
                "JwtOptions:SigningKey",
                "is required when Environment is Production "
                f"(at least {MIN_SIGNING_KEY_LENGTH} characters)",
            )
        if self.is_production and self.cors.allow_all:
            raise _KeyedValueError(
                "Cors:AllowAll",
                "must not be true when Environment is Production; list Cors:AllowedOrigins",
            )
        return self

    def with_signing_key(self, signing_key: str) -> Settings:
        """A copy whose ``jwt.signing_key`` is ``signing_key`` (e.g. a generated dev key).

        Raises :class:`SettingsError` if the key is shorter than the minimum.
        """
        if len(signing_key) < MIN_SIGNING_KEY_LENGTH:
            raise SettingsError(
                "JwtOptions:SigningKey",
                f"must be at least {MIN_SIGNING_KEY_LENGTH} characters (got {len(signing_key)})",
            )
        jwt = self.jwt.model_copy(update={"signing_key": signing_key})
        return self.model_copy(update={"jwt": jwt})


def generate_signing_key() -> str:
    """A random 64-character URL-safe key for a development run (never persisted)."""
    return secrets.token_urlsafe(48)


# --------------------------------------------------------------------------------------------
# Sources: flatten JSON and the environment to colon keys, then bind onto the models


@dataclass(slots=True)
class _Entry:
    key: str  # as written by the user, colon form
    value: str | None  # None: JSON null (unset)


class _Flat:
    """Case-insensitive flat configuration: lower-cased colon key -> entry."""

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}

    def put(self, key: str, value: str | None) -> None:
        self.entries[key.lower()] = _Entry(key, value)

    def get(self, path: tuple[str, ...]) -> _Entry | None:
        return self.entries.get(":".join(path).lower())

    def children(self, path: tuple[str, ...]) -> dict[str, list[tuple[tuple[str, ...], _Entry]]]:
        """Entries strictly below ``path``, grouped by the next segment (lower-cased)."""
        prefix = ":".join(path).lower() + ":"
        out: dict[str, list[tuple[tuple[str, ...], _Entry]]] = {}
        for lowered, entry in self.entries.items():
            if lowered.startswith(prefix):
                rest = tuple(entry.key.split(":")[len(path) :])
                out.setdefault(rest[0].lower(), []).append((rest, entry))
        return out


def _scalar(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _flatten_json(node: object, path: tuple[str, ...], flat: _Flat, file_name: str) -> None:
    if isinstance(node, dict):
        seen: dict[str, str] = {}
        for name, child in node.items():
            if name.lower() in seen:
                raise SettingsError(
                    file_name,
                    f"duplicate key {':'.join((*path, name))!r} "
                    f"(keys are case-insensitive; also {seen[name.lower()]!r})",
                )
            seen[name.lower()] = ":".join((*path, name))
            _flatten_json(child, (*path, name), flat, file_name)
    elif isinstance(node, list):
        for index, child in enumerate(node):
            _flatten_json(child, (*path, str(index)), flat, file_name)
    elif path:
        flat.put(":".join(path), _scalar(node))


def _read_config_file(config_file: str | Path, flat: _Flat) -> None:
    path = Path(config_file)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SettingsError(name, "configuration file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise SettingsError(name, f"cannot read configuration file ({reason})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise SettingsError(
            name, f"invalid JSON at line {error.lineno} column {error.colno} ({error.msg})"
        ) from None
    except (ValueError, RecursionError) as error:  # a huge integer, absurdly deep nesting
        raise SettingsError(name, f"invalid JSON ({error})") from None
    if not isinstance(document, dict):
        raise SettingsError(name, "the configuration file must contain a JSON object")
    try:
        _flatten_json(document, (), flat, name)
    except RecursionError:
        raise SettingsError(name, "the configuration file is nested too deeply") from None


def _read_environ(environ: Mapping[str, str], flat: _Flat) -> None:
    seen: dict[str, tuple[str, str]] = {}
    for name, value in environ.items():
        key = name.replace("__", ":")
        lowered = key.lower()
        if lowered in seen and seen[lowered][1] != value:
            raise SettingsError(
                key,
                "set more than once in the environment with different values "
                f"({seen[lowered][0]} and {name})",
            )
        seen[lowered] = (name, value)
        flat.put(key, value)


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_sequence(annotation: object) -> bool:
    return get_origin(annotation) in (tuple, list)


def _is_mapping(annotation: object) -> bool:
    return get_origin(annotation) is dict


def _canonical(path: tuple[str, ...]) -> str:
    return ":".join(path)


def _bind_scalar(flat: _Flat, path: tuple[str, ...]) -> str | None:
    below = flat.children(path)
    if below:
        sample = next(iter(below.values()))[0][1].key
        raise SettingsError(
            _canonical(path), f"expected a single value, not a section (found {sample!r})"
        )
    entry = flat.get(path)
    if entry is None or entry.value is None or not entry.value.strip():
        return None  # unset or empty: the default applies
    return entry.value


_MAX_INDEX_DIGITS = 9


def _bind_sequence(flat: _Flat, path: tuple[str, ...]) -> object:
    below = flat.children(path)
    entry = flat.get(path)
    if not below:
        if entry is None or entry.value is None:
            return None
        return entry.value  # the comma-separated form ("" means an empty list)
    if entry is not None and entry.value:
        raise SettingsError(
            _canonical(path),
            "set both as a list (indexed keys) and as a single value; use one form",
        )
    items: dict[int, str] = {}
    for segment, group in below.items():
        if not (segment.isascii() and segment.isdigit()):
            raise SettingsError(
                f"{_canonical(path)}:{group[0][0][0]}", "list index must be a non-negative integer"
            )
        if len(segment) > _MAX_INDEX_DIGITS:  # int() refuses thousands of digits
            raise SettingsError(f"{_canonical(path)}:{group[0][0][0]}", "list index is too large")
        for rest, item in group:
            if len(rest) > 1:
                raise SettingsError(
                    f"{_canonical(path)}:{':'.join(rest)}", "list items must be single values"
                )
            if item.value is not None:
                items[int(segment)] = item.value
    return [items[index] for index in sorted(items)]


def _bind_mapping(flat: _Flat, path: tuple[str, ...]) -> dict[str, str] | None:
    """A section of single values under free names (`Logging:LogLevel:<logger>`). Names
    match case-insensitively across sources, like every key: the last source's spelling and
    value win."""
    entry = flat.get(path)
    if entry is not None and entry.value:
        raise SettingsError(_canonical(path), "expected a section of named values, not a value")
    out: dict[str, str] = {}
    for group in flat.children(path).values():
        for rest, item in group:
            if len(rest) > 1:
                raise SettingsError(
                    f"{_canonical(path)}:{':'.join(rest)}", "values must be single values"
                )
            if item.value is not None and item.value.strip():
                out[rest[0]] = item.value
    return out or None


def _bind(model: type[BaseModel], flat: _Flat, prefix: tuple[str, ...]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        path = (*prefix, alias)
        annotation = info.annotation
        value: object
        if _is_model(annotation):
            value = _bind(annotation, flat, path)  # type: ignore[arg-type]
        elif _is_sequence(annotation):
            value = _bind_sequence(flat, path)
        elif _is_mapping(annotation):
            value = _bind_mapping(flat, path)
        else:
            value = _bind_scalar(flat, path)
        if value is not None:
            out[alias] = value
    return out


def _settings_error(error: ValidationError) -> SettingsError:
    first = error.errors(include_url=False)[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, _KeyedValueError):
        return SettingsError(cause.key, cause.problem)
    key = ":".join(str(part) for part in first["loc"]) or "Settings"
    problem = str(cause) if isinstance(cause, Exception) else first["msg"]
    return SettingsError(key, problem)


def load_settings(
    config_file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read, merge, validate and return the settings (pure: no logging, no ``os.environ``).

    ``config_file`` is an optional appsettings.json-shaped file; ``environ`` is the
    environment to overlay (pass ``os.environ`` from the caller; ``None`` means empty). Raises
    :class:`SettingsError` for a missing/unreadable/invalid file or any bad setting.
    """
    flat = _Flat()
    if config_file is not None:
        _read_config_file(config_file, flat)
    _read_environ(environ or {}, flat)
    data = _bind(Settings, flat, ())
    try:
        return Settings.model_validate(data)
    except ValidationError as error:
        raise _settings_error(error) from None
