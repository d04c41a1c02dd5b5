"""Credentialed CORS: an explicit origin allow-list, echoed with credentials (never `*`).

- An origin on the allow-list (or any origin with `Cors:AllowAll`, the dev-only
  `SetIsOriginAllowed(_ => true) + AllowCredentials()` pattern) gets its own origin echoed
  with `Access-Control-Allow-Credentials: true`. A wildcard is never sent.
- Any other origin gets no CORS headers at all (preflights from it are answered 403).
- The SignalR clients send `X-Requested-With`, `X-SignalR-User-Agent`, `Authorization` and
  `Content-Type`, and long polling uses DELETE: preflights allow the requested headers and
  GET/POST/PUT/DELETE.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOWED_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
MAX_AGE = "600"


class CredentialedCorsMiddleware:
    def __init__(self, app: ASGIApp, origin_allowed: Callable[[str], bool]) -> None:
        self.app = app
        self.origin_allowed = origin_allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = self.origin_allowed(origin)
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        if preflight:
            await self._preflight(origin, allowed, headers, send)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["Access-Control-Allow-Origin"] = origin
                out["Access-Control-Allow-Credentials"] = "true"
                out.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    async def _preflight(origin: str, allowed: bool, headers: Headers, send: Send) -> None:
        raw: list[tuple[bytes, bytes]] = [(b"vary", b"Origin"), (b"content-length", b"0")]
        status = 403
        if allowed:
            status = 204
            requested = headers.get("access-control-request-headers")
            raw += [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-credentials", b"true"),
                (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
                (b"access-control-max-age", MAX_AGE.encode()),
            ]
            if requested:
                raw.append((b"access-control-allow-headers", requested.encode("latin-1")))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": b""})
