"""HTTP helpers shared by the modules' REST routers: the caller, and problem errors.

`Problem` is raised anywhere in a route; the platform turns it into an RFC 9457
`application/problem+json` response with one `type` scheme for the whole platform.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from pydantic import AfterValidator

from hero.auth import PRINCIPAL_SCOPE_KEY, Principal


class Problem(Exception):
    """An HTTP error for the client: status, a short title, optional detail and field."""

    def __init__(
        self, status: int, title: str, detail: str | None = None, *, field: str | None = None
    ) -> None:
        super().__init__(f"{status} {title}: {detail or ''}")
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field


def not_found(what: str = "Resource") -> Problem:
    return Problem(404, "Not Found", f"{what} not found.")


def forbidden(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail)


def bad_request(detail: str, field: str | None = None) -> Problem:
    return Problem(400, "Bad Request", detail, field=field)


def conflict(detail: str) -> Problem:
    return Problem(409, "Conflict", detail)


async def current_principal(request: Request) -> Principal:
    """The authenticated caller (set by the platform's principal middleware), else 401.
    A coroutine, so FastAPI calls it inline (a plain function would cost a worker-thread
    hop per request)."""
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if not isinstance(principal, Principal):
        raise Problem(401, "Unauthorized", "A valid bearer token is required.")
    return principal


Caller = Annotated[Principal, Depends(current_principal)]
"""Route parameter type for the authenticated caller."""


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be Unicode text (no unpaired surrogate such as \\ud800)") from None
    return value


Text = Annotated[str, AfterValidator(_storable)]
"""A text input (body field, query, path or header parameter) the databases can store: NUL
and unpaired surrogates (a JSON string may spell them, `"\\ud800"`) are refused with a 400
naming the field. PostgreSQL stores neither, SQLite's driver cannot encode a surrogate, and
FTS5's query syntax fails on NUL."""
