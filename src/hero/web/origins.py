"""Origin rules: which browser origins may call the API and open WebSockets.

CORS covers fetch/XHR but not WebSocket upgrades, so a hub endpoint must check the
`Origin` header itself (cross-site WebSocket hijacking); the same allow-list serves both.
Origins are compared normalised (RFC 6454 §6.2 serialisation: lower-case scheme and host,
default port dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

from starlette.types import Scope

_DEFAULT_PORTS = {"http": 80, "https": 443}
_WEBSOCKET_SCHEMES = {"ws": "http", "wss": "https"}


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` with the scheme and host lower-cased and the scheme's default
    port dropped (``https://x:443`` is ``https://x``); None unless an http(s) origin."""
    try:
        parts = urlsplit(origin.strip().rstrip("/"))
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or parts.path or parts.query or parts.fragment:
        return None
    if "@" in parts.netloc:
        return None
    shown = f"[{host}]" if ":" in host else host
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{shown}"
    return f"{scheme}://{shown}:{port}"


def request_origin(scope: Scope) -> str | None:
    """The origin this request was addressed to: the scope's scheme (``ws`` as ``http``,
    ``wss`` as ``https``) and the Host header, normalised; None without a Host header."""
    scheme = str(scope.get("scheme", "http")).lower()
    scheme = _WEBSOCKET_SCHEMES.get(scheme, scheme)
    host = None
    for name, value in scope.get("headers", ()):
        if name.lower() == b"host":
            host = value.decode("latin-1").strip()
            break
    if not host:
        return None
    return normalize_origin(f"{scheme}://{host}")


def origin_checker(allowed: tuple[str, ...], allow_all: bool) -> Callable[[str], bool]:
    """The CORS origin rule, reused for WebSocket upgrades (CORS does not cover them).

    Origins are compared normalised (see `normalize_origin`), so ``https://x:443`` in the
    allow-list matches the ``https://x`` a browser sends.
    """
    normalized = {n for n in map(normalize_origin, allowed) if n is not None}

    def check(origin: str) -> bool:
        return allow_all or normalize_origin(origin) in normalized

    return check


class ScopeOriginCheck(Protocol):
    """An origin rule that may see the request: usable as ``(origin)`` and ``(origin, scope)``."""

    def __call__(self, origin: str, scope: Scope | None = None) -> bool: ...


def origin_allowed_for(allow_listed: Callable[[str], bool]) -> ScopeOriginCheck:
    """The WebSocket upgrade's origin rule: `allow_listed` (see `origin_checker`) or the
    request's own origin (`request_origin`), so the page served at ``/`` may connect with the
    default empty allow-list.

    The result takes ``(origin, scope)``; called with the origin alone (by an endpoint that
    does not pass the scope) it is `allow_listed` only.
    """

    def check(origin: str, scope: Scope | None = None) -> bool:
        if allow_listed(origin):
            return True
        if scope is None:
            return False
        own = request_origin(scope)
        return own is not None and normalize_origin(origin) == own

    return check
