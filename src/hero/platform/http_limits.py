"""The `RateLimiting` middlewares: new hub connections per client address, REST requests per
user (per address when anonymous). Both answer 429 `application/problem+json` with
`Retry-After` before the request reaches the app; the concurrent-connections limit per user
is the hub endpoint's own (`EndpointOptions.maximum_connections_per_user`).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from hero.auth import Principal
from hero.platform.rate_limit import FixedWindowLimiter, client_address, retry_after_header
from hero.platform.web import PRINCIPAL_KEY, problem, problem_body
from hero.realtime import reject_websocket

TITLE = "Too Many Requests"


def _under(path: str, roots: Sequence[str]) -> str | None:
    """The part of `path` below the first of `roots` it is at or under (matched
    case-insensitively, as the hub routes match), or None."""
    lowered = path.lower()
    for root in roots:
        if lowered == root.lower() or lowered.startswith(root.lower() + "/"):
            return path[len(root) :]
    return None


def opens_connection(scope: Scope, hub_paths: Sequence[str]) -> bool:
    """Whether this request asks a hub endpoint for a new connection: `POST .../negotiate`,
    or a WebSocket upgrade without a connection `id` (`skipNegotiation`). The second request
    of a negotiated connection (its WebSocket, polls, sends) does not."""
    rest = _under(scope.get("path", ""), hub_paths)
    if rest is None:
        return False
    if scope["type"] == "http":
        return scope.get("method") == "POST" and rest.rstrip("/").endswith("/negotiate")
    if scope["type"] == "websocket":
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        return not query.get("id")
    return False


def _headers(retry_after: float) -> dict[str, str]:
    # Retry-After is not a CORS-safelisted response header: expose it to browser code.
    return {
        "Retry-After": retry_after_header(retry_after),
        "Access-Control-Expose-Headers": "Retry-After",
    }


class ConnectRateMiddleware:
    """At most `limiter`'s permits of new hub connections per client address and window;
    past it a negotiate is answered 429 and a WebSocket upgrade is refused with an HTTP 429
    (the `websocket.http.response` extension; servers without it get a close)."""

    def __init__(self, app: ASGIApp, limiter: FixedWindowLimiter, hub_paths: Sequence[str]) -> None:
        self.app = app
        self.limiter = limiter
        self.hub_paths = tuple(hub_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not opens_connection(
            scope, self.hub_paths
        ):
            await self.app(scope, receive, send)
            return
        retry_after = self.limiter.acquire(client_address(scope))
        if retry_after is None:
            await self.app(scope, receive, send)
            return
        seconds = retry_after_header(retry_after)
        detail = f"Too many new connections from this address; retry after {seconds} s."
        headers = _headers(retry_after)
        if scope["type"] == "http":
            await problem(429, TITLE, detail, headers=headers)(scope, receive, send)
            return
        raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
        body = problem_body(429, TITLE, detail)
        await reject_websocket(scope, send, 429, body, b"application/problem+json", headers=raw)


class RestRateMiddleware:
    """At most `limiter`'s permits of REST requests (paths under `prefixes`, not at or below
    `exempt`) per user and window; requests without a valid token count per client address.
    Must run inside the principal middleware (it reads the request's principal)."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: FixedWindowLimiter,
        prefixes: Sequence[str] = ("/api/",),
        exempt: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.prefixes = tuple(prefixes)
        self.exempt = tuple(exempt)

    def applies(self, path: str) -> bool:
        return path.startswith(self.prefixes) and _under(path, self.exempt) is None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.applies(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        principal = scope.get(PRINCIPAL_KEY)
        if isinstance(principal, Principal):
            key = f"user:{principal.tenant_id}:{principal.user_key}"
        else:
            key = f"address:{client_address(scope)}"
        retry_after = self.limiter.acquire(key)
        if retry_after is None:
            await self.app(scope, receive, send)
            return
        seconds = retry_after_header(retry_after)
        detail = f"Too many requests; retry after {seconds} s."
        await problem(429, TITLE, detail, headers=_headers(retry_after))(scope, receive, send)
