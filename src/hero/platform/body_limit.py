"""A size limit on REST request bodies: 413 problem+json past `Http:MaxRequestBodySize`.

Pure ASGI, so nothing is buffered: a `Content-Length` over the limit is answered before
the app runs, and a body without one (chunked) is counted as the app reads it. The hub
endpoints are left alone; they have their own limit (`Realtime:MaximumReceiveMessageSize`).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hero.platform.web import problem

TITLE = "Content Too Large"


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes the limit. An HTTPException, so
    FastAPI's body parsing lets it through (it turns other errors into a 400) and the
    platform's handler answers it as a problem; the middleware answers it otherwise."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


class BodyLimitMiddleware:
    """Applies to HTTP requests whose path starts with one of `prefixes` and is not at or
    below one of `exempt`."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        prefixes: Sequence[str] = ("/api/",),
        exempt: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.limit = limit
        self.prefixes = tuple(prefixes)
        self.exempt = tuple(exempt)

    def applies(self, path: str) -> bool:
        if not path.startswith(self.prefixes):
            return False
        return not any(path == root or path.startswith(root + "/") for root in self.exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.applies(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self.refuse(scope, receive, send)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if started:
                raise
            await self.refuse(scope, receive, send)

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = BodyTooLarge(self.limit).detail
        # The rest of the body is not read: the connection closes after the answer.
        response = problem(413, TITLE, detail, headers={"Connection": "close"})
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared body size; None when absent or not a number (the server rejects
    a malformed one before the app sees it)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() else None
    return None
