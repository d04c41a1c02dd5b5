"""Small HTTP pieces of the web host: problem+json and the principal middleware.

The origin rules (CORS and WebSocket upgrades) live in `hero.web`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from hero.auth import (
    PRINCIPAL_SCOPE_KEY,
    AuthenticationError,
    JwtValidator,
    Principal,
    extract_token,
)
from hero.conventions import realtime_user
from hero.realtime import Identity

PRINCIPAL_KEY = PRINCIPAL_SCOPE_KEY


_RFC9110 = "https://tools.ietf.org/html/rfc9110#section-"
_PROBLEM_TYPES = {
    400: _RFC9110 + "15.5.1",
    401: _RFC9110 + "15.5.2",
    403: _RFC9110 + "15.5.4",
    404: _RFC9110 + "15.5.5",
    405: _RFC9110 + "15.5.6",
    409: _RFC9110 + "15.5.10",
    413: _RFC9110 + "15.5.14",
    422: _RFC9110 + "15.5.21",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
    500: _RFC9110 + "15.6.1",
    503: _RFC9110 + "15.6.4",
}


def problem_type(status: int) -> str:
    """The one `type` scheme of every problem the platform sends (the hub endpoint's too):
    the section of the HTTP specification that defines the status."""
    return _PROBLEM_TYPES.get(status, _RFC9110 + ("15.6" if status >= 500 else "15.5"))


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """An RFC 9457 `application/problem+json` response (extension members in `extra`;
    `headers` are response headers, such as the `Allow` of a 405)."""
    return Response(
        problem_body(status, title, detail, **extra),
        status,
        headers=dict(headers) if headers else None,
        media_type="application/problem+json",
    )


def problem_body(status: int, title: str, detail: str | None = None, **extra: Any) -> bytes:
    """The encoded body of `problem` (for answers that are not Starlette responses, such as
    the refusal of a WebSocket upgrade)."""
    body: dict[str, Any] = {
        "type": problem_type(status),
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    return msgspec.json.encode(body)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "ProblemDetails",
    "description": "An RFC 9457 problem: `type` is the section of RFC 9110 (or 6585) defining "
    "`status`; a 400 names the failing input in `field` and lists every error in `errors`.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetails"}
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Describe the REST API's errors as they are sent, in a FastAPI OpenAPI `document`
    (changed in place and returned): FastAPI documents a 422 `HTTPValidationError` the
    platform never sends; every operation answers client errors with problem+json instead,
    400 for invalid input (when it takes any), 401 without a valid token, `4XX` for the
    rest (403, 404, 409, 413), and 503 while the database is unavailable."""

    def answer(description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/problem+json": {"schema": _PROBLEM_REF}},
        }

    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if operation.get("parameters") or operation.get("requestBody"):
                responses.setdefault("400", answer("Invalid input; `field` names it"))
            responses.setdefault("401", answer("No valid bearer token"))
            responses.setdefault("4XX", answer("Other client errors"))
            responses.setdefault(
                "503", answer("The database is unavailable; retry after `Retry-After` seconds")
            )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    schemas["ProblemDetails"] = PROBLEM_SCHEMA
    return document


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
        """For the hub endpoint: the connection's identity, captured once at connect. It
        expires when the validator stops accepting its token (``exp`` plus the clock skew),
        so negotiate, the upgrade and the live connection follow one rule."""
        principal = self.principal(scope)
        if principal is None:
            return None
        return Identity(
            user_id=realtime_user(principal.tenant_id, principal.user_id),
            principal=principal,
            expires_at=self._validator.accepted_until(principal),
        )


class PrincipalMiddleware:
    """Sets `scope["hero.principal"]` (or None) for every HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        on_principal: Callable[[Principal], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.on_principal = on_principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            principal = self.authenticator.principal(scope)
            scope[PRINCIPAL_KEY] = principal
            if principal is not None and self.on_principal is not None:
                await self.on_principal(principal)
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
