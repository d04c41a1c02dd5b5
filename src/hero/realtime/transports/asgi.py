"""Small ASGI helpers shared by the transports and the endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WRITE_FRAME_EXTENSION = "hero.websocket.write_frame"
"""An ASGI scope extension a server may offer on WebSocket scopes: `{"write": write_frame}`,
`write_frame(data: bytes, binary: bool) -> bool` writing one complete unfragmented data
frame to the socket right away and returning True, or returning False (writing nothing) when
it cannot now (not open yet or any more, the transport paused, an extension such as
compression negotiated); the caller then sends through ASGI `send`. It saves, per frame,
the ASGI message, the text decode the ASGI spec asks for, and the send coroutine."""
WriteFrame = Callable[[bytes, bool], bool]


def frame_writer(scope: Scope) -> WriteFrame | None:
    """The server's direct frame writer for this WebSocket scope, if it offers one."""
    offered = scope.get("extensions", {}).get(WRITE_FRAME_EXTENSION)
    return offered.get("write") if isinstance(offered, dict) else None


class FrameSink(Protocol):
    """Where a server that offers `READ_FRAMES_EXTENSION` hands what the socket receives."""

    def message(self, data: bytes, binary: bool) -> bool:
        """One complete data message: a binary message's bytes, or a text message's UTF-8
        bytes (already checked to be UTF-8). False asks the server to stop reading the
        socket until the `resume` callable that `attach` returned is called."""
        ...

    def ended(self, code: int) -> None:
        """The socket is done: the code the ASGI `websocket.disconnect` would carry (1005
        or 1006 when no close frame came). Called once; nothing is delivered after it."""
        ...


READ_FRAMES_EXTENSION = "hero.websocket.read_frames"
"""An ASGI scope extension a server may offer on WebSocket scopes: `{"attach": attach}`,
`attach(sink: FrameSink) -> resume` called after `websocket.accept`. From then on the
server calls `sink.message` for each data message and `sink.ended` once, in place of the
`websocket.receive` and `websocket.disconnect` events (what was queued before the call is
handed over first); `resume()` lets it read again after `message` returned False.
`attach(None)` detaches: later events go to ASGI `receive` again. It saves, per message,
the ASGI event dict, the text decode and encode, and the task a receive loop needs."""
Resume = Callable[[], None]
AttachSink = Callable[[FrameSink | None], Resume]


DETACH_EXTENSION = "hero.websocket.detach"
"""An ASGI scope extension a server that offers `READ_FRAMES_EXTENSION` may offer too:
`{"detach": detach, "send": send, "end": end}`. After `websocket.accept`, an application
that calls `detach()` may return while the socket stays open: the server's task for the
request (and with it every middleware's frame and the scope) ends, the socket lives on with
its attached `FrameSink` and direct frame writer, and `send` (the server's own, past any
middleware) still sends on it. When the application is done with the socket it calls
`end()`, which does what the server does when an application returns: the transport is
closed unless a close frame is out and the peer's answer awaited. An idle connection then
holds no request task at all."""


@dataclass(frozen=True, slots=True)
class Detach:
    """What `DETACH_EXTENSION` offers: the call that keeps the socket past the application,
    the server's own ASGI send for the socket, and the call that ends it."""

    detach: Callable[[], None]
    send: Send
    end: Callable[[], None]


def socket_detacher(scope: Scope) -> Detach | None:
    """The server's detach offer for this WebSocket scope, if it makes one."""
    offered = scope.get("extensions", {}).get(DETACH_EXTENSION)
    if not isinstance(offered, dict):
        return None
    return Detach(offered["detach"], offered["send"], offered["end"])


def frame_reader(scope: Scope) -> AttachSink | None:
    """The server's direct message reader for this WebSocket scope, if it offers one."""
    offered = scope.get("extensions", {}).get(READ_FRAMES_EXTENSION)
    return offered.get("attach") if isinstance(offered, dict) else None


NO_CACHE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"cache-control", b"no-cache, no-store"),
    (b"pragma", b"no-cache"),
    (b"expires", b"Thu, 01 Jan 1970 00:00:00 GMT"),
]


def header(scope: Scope, name: bytes) -> str | None:
    """First value of a request header (name in lower case)."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def respond(
    send: Send,
    status: int,
    body: bytes = b"",
    content_type: bytes | None = b"text/plain",
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """A complete HTTP response in one go."""
    raw: list[tuple[bytes, bytes]] = list(headers)
    if content_type is not None:
        raw.append((b"content-type", content_type))
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def reject_websocket(
    scope: Scope,
    send: Send,
    status: int,
    body: bytes = b"",
    content_type: bytes = b"text/plain",
    *,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Refuse a WebSocket upgrade with an HTTP status (and extra `headers`) when the server
    supports it.

    Uses the ASGI "websocket.http.response" extension; otherwise closes (403 on the wire).
    """
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    *headers,
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
    else:
        await send({"type": "websocket.close", "code": 1008})
