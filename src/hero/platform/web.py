"""Small HTTP pieces of the web host: problem+json, principal middleware, CORS, health."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from hero.auth import AuthenticationError, JwtValidator, Principal, extract_token
from hero.realtime import Identity

PRINCIPAL_KEY = "hero.principal"


def problem(status: int, title: str, detail: str | None = None) -> Response:
    """An RFC 9457 `application/problem+json` response."""
    body: dict[str, Any] = {
        "type": f"https://httpstatuses.io/{status}",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    return Response(msgspec.json.encode(body), status, media_type="application/problem+json")


class Authenticator:
    """Turns a request's bearer token (header; query only on allowed paths) into a
    Principal. Invalid tokens are treated as absent."""

    def __init__(self, validator: JwtValidator) -> None:
        self._validator = validator

    def principal(self, scope: Scope) -> Principal | None:
        token = extract_token(scope)
        if not token:
            return None
        try:
            return self._validator.validate(token)
        except AuthenticationError:
            return None

    async def identity(self, scope: Scope) -> Identity | None:
        """For the hub endpoint: the connection's identity, captured once at connect."""
        principal = self.principal(scope)
        if principal is None:
            return None
        return Identity(
            user_id=principal.user_key, principal=principal, expires_at=principal.expires_at
        )


class PrincipalMiddleware:
    """Sets `scope["hero.principal"]` (or None) for every HTTP request."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[PRINCIPAL_KEY] = self.authenticator.principal(scope)
        await self.app(scope, receive, send)


def require_principal(request: Request) -> Principal | None:
    principal = request.scope.get(PRINCIPAL_KEY)
    return principal if isinstance(principal, Principal) else None


def authenticated(
    endpoint: Callable[[Request, Principal], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an endpoint: 401 problem+json unless the request carries a valid token."""

    async def wrapper(request: Request) -> Response:
        principal = require_principal(request)
        if principal is None:
            return problem(401, "Unauthorized", "A valid bearer token is required.")
        return await endpoint(request, principal)

    return wrapper


def origin_checker(allowed: tuple[str, ...], allow_all: bool) -> Callable[[str], bool]:
    """The CORS origin rule, reused for WebSocket upgrades (CORS does not cover them)."""
    normalized = {o.rstrip("/").lower() for o in allowed}

    def check(origin: str) -> bool:
        return allow_all or origin.rstrip("/").lower() in normalized

    return check
