"""WebSockets relayed to the instance that holds their connection.

A WebSocket normally needs no relay: when one arrives for a connection negotiated elsewhere
and not used yet, the instance it reached takes the connection over (`Claim.RELEASE`: the
issuer drops its copy and remembers where it went). A stateful reconnect is different: the
connection lives on, with its hub state, groups and replay buffer, on the instance that held
the dropped socket. The new socket is then relayed there frame by frame (`Claim.SERVE`): the
holder runs it through its own endpoint exactly as a local socket, and resumes the connection.

Both directions are windowed: a side sends at most `window` frames the other has not yet
passed on (each passed-on frame returns a `Credit`), so a slow client slows the holder's writer
down, and the holder's send timeout applies as for a local client. Either side that finds the
other instance gone ends its half as a dropped socket does (code 1006 to the holder, so a
stateful connection waits for the next resume; 1011 to the client), never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hero.realtime.connections.relay_messages import (
    Accepted,
    Chunk,
    Closed,
    Credit,
    Frame,
    Message,
    Moved,
    Release,
    Socket,
    SocketReply,
    Start,
)
from hero.realtime.transports.asgi import Receive, Scope, Send, reject_websocket

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("hero.realtime.relay")

LOST = 1006
"""The close code of a socket that went away without a close frame."""
GONE = 1011
"""What the client is told when the instance holding its connection disappeared."""
_UNSENDABLE = (1005, 1006, 1015)  # codes that report a close but cannot be sent in one


class Claim(enum.Enum):
    """An issuing instance's answer to a socket asked for by another one."""

    SERVE = "serve"
    """It holds the connection: the socket is relayed to it."""
    RELEASE = "release"
    """It does not hold the connection: the asking instance takes it (or answers 404)."""
    RELEASE_STATEFUL = "release-stateful"
    """As RELEASE, for a connection whose client negotiated stateful reconnect."""


Claimant = Callable[[str, str], "Claim | str"]
"""(token, asking instance) -> a Claim, or the name of the instance the connection went to."""


@dataclass
class SocketEnd:
    """One side of a relayed socket: what arrived from the other side, and send credits."""

    window: int
    inbox: asyncio.Queue[SocketReply] = field(default_factory=asyncio.Queue)
    credits: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.credits = asyncio.Semaphore(self.window)


class Link(Protocol):
    """What the socket relay needs from the request relay that carries it."""

    @property
    def name(self) -> str: ...

    @property
    def liveness_interval(self) -> float: ...

    def open_socket(self, rid: str | None = None) -> tuple[str, SocketEnd]: ...

    def close_socket(self, rid: str) -> None: ...

    async def publish(self, instance: str, message: Message) -> int: ...

    async def alive(self, instance: str) -> bool: ...


async def _next(
    link: Link, peer: str, end: SocketEnd, deadline: float | None = None
) -> SocketReply | None:
    """The next message from `peer`; None once it is gone (or `deadline` has passed)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            async with asyncio.timeout(link.liveness_interval):
                return await end.inbox.get()
        except TimeoutError:
            if deadline is not None and loop.time() > deadline:
                return None
            if not await link.alive(peer):
                return None


def _payload(message: MutableMapping[str, Any]) -> tuple[bytes, bool]:
    """A WebSocket message's data, and whether it is text."""
    data = message.get("bytes")
    if data is not None:
        return bytes(data), False
    return str(message.get("text") or "").encode("utf-8"), True


# ---------------------------------------------------------------------- the asking side


async def forward_socket(  # noqa: PLR0917 (two call sites, all required)
    link: Link,
    owner: str,
    token: str,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    answer_timeout: float,
) -> Release | None:
    """Serve this WebSocket by the instance holding connection `token` (named `owner` by the
    token): None once served. When no instance holds it, the `Release` received: the caller
    takes the connection over."""
    target = owner
    for _ in range(2):  # the issuer, then the instance it released the connection to
        rid, end = link.open_socket()
        try:
            request = Socket(
                rid,
                link.name,
                token,
                scope.get("path", ""),
                scope.get("query_string", b""),
                [(bytes(k), bytes(v)) for k, v in scope.get("headers", ())],
            )
            if await link.publish(target, request) == 0:
                break
            deadline = asyncio.get_running_loop().time() + answer_timeout
            reply = await _next(link, target, end, deadline)
            if isinstance(reply, Release):
                return reply
            if isinstance(reply, Moved) and reply.holder != link.name:
                target = reply.holder
                continue
            if isinstance(reply, Start):
                await _refuse(link, target, end, reply, scope, send)
                return None
            if isinstance(reply, Accepted):
                await _pump(link, target, rid, end, receive, send)
                return None
            break
        finally:
            link.close_socket(rid)
    await reject_websocket(scope, send, 404, b"No Connection with that ID")
    return None


async def _refuse(  # noqa: PLR0917 (one private call site)
    link: Link, holder: str, end: SocketEnd, start: Start, scope: Scope, send: Send
) -> None:
    """The holder refused the upgrade with an HTTP response: give the client the same one."""
    parts: list[bytes] = []
    while True:
        reply = await _next(link, holder, end)
        if not isinstance(reply, Chunk):
            break
        parts.append(reply.data)
        if not reply.more:
            break
    kept = {b"content-type", b"content-length"}
    headers = [(k, v) for k, v in start.headers if k.lower() not in kept]
    content_type = next(
        (v for k, v in start.headers if k.lower() == b"content-type"), b"text/plain"
    )
    await reject_websocket(
        scope, send, start.status, b"".join(parts), content_type, headers=headers
    )


async def _pump(  # noqa: PLR0917 (one private call site)
    link: Link, holder: str, rid: str, end: SocketEnd, receive: Receive, send: Send
) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":  # pragma: no cover - ASGI guarantees it
        await link.publish(holder, Closed(rid, LOST))
        return
    await send({"type": "websocket.accept"})
    ends: set[str] = set()  # which side ended the socket ("client", "holder")

    async def upstream() -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                await end.credits.acquire()
                await link.publish(holder, Frame(rid, *_payload(message)))
            elif kind == "websocket.disconnect":
                ends.add("client")
                await link.publish(holder, Closed(rid, int(message.get("code", LOST))))
                return

    async def downstream() -> None:
        code = GONE
        while True:
            reply = await _next(link, holder, end)
            if isinstance(reply, Frame):
                if reply.text:
                    await send({"type": "websocket.send", "text": reply.data.decode("utf-8")})
                else:
                    await send({"type": "websocket.send", "bytes": reply.data})
                await link.publish(holder, Credit(rid))
            elif isinstance(reply, Closed) or reply is None:
                ends.add("holder")
                if isinstance(reply, Closed):
                    code = 1000 if reply.code in _UNSENDABLE else reply.code
                break
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code})

    tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not ends:  # the client's socket failed: to the holder, a dropped socket
            with contextlib.suppress(Exception):
                await link.publish(holder, Closed(rid, LOST))


# ---------------------------------------------------------------------- the holding side


async def answer_socket(link: Link, app: ASGIApp, claim: Claimant, request: Socket) -> bool:
    """Answer a socket asked for by `request.origin`: release the connection, point to the
    instance it went to, or run the socket here through `app` (a resume, typically; then
    True, once it has ended)."""
    origin, rid = request.origin, request.rid
    verdict = claim(request.token, origin)
    if verdict is Claim.SERVE:
        logger.debug("serving a WebSocket relayed from instance %s", origin)
        await _serve(link, app, request)
        return True
    if isinstance(verdict, str):
        await link.publish(origin, Moved(rid, verdict))
    else:
        await link.publish(origin, Release(rid, verdict is Claim.RELEASE_STATEFUL))
    return False


async def _serve(link: Link, app: ASGIApp, request: Socket) -> None:
    """Run the relayed socket through `app`, as a local one."""
    origin, rid = request.origin, request.rid
    _, end = link.open_socket(rid)
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": request.path,
        "raw_path": request.path.encode(),
        "root_path": "",
        "query_string": request.query,
        "headers": [*request.headers, (HOP_HEADER, link.name.encode())],
        "client": None,
        "server": None,
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
    }
    connected = False
    accepted = False
    ended = False  # this side sent its close (or refusal), or the asking side is gone

    async def receive() -> dict[str, Any]:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        while True:
            reply = await _next(link, origin, end)
            if isinstance(reply, Frame):
                outbox.put_nowait(Credit(rid))
                if reply.text:
                    return {"type": "websocket.receive", "text": reply.data.decode("utf-8")}
                return {"type": "websocket.receive", "bytes": reply.data}
            if reply is None or isinstance(reply, Closed):
                code = LOST if reply is None else reply.code
                return {"type": "websocket.disconnect", "code": code}

    # Sends run outside a task when the socket is writable (transports/sends.py), so they
    # only queue; one task publishes, in order.
    outbox: asyncio.Queue[Message | None] = asyncio.Queue()

    async def publisher() -> None:
        nonlocal ended
        while (out := await outbox.get()) is not None:
            try:
                delivered = await link.publish(origin, out) > 0
            except Exception:
                delivered = False
            if not delivered:  # the asking instance is gone (or the bus is)
                ended = True
                end.inbox.put_nowait(Closed(rid, LOST))
                return

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal accepted, ended
        if ended:
            raise OSError("the relayed socket is closed")
        kind = message["type"]
        out: Message
        if kind == "websocket.accept":
            accepted = True
            out = Accepted(rid)
        elif kind == "websocket.send":
            await end.credits.acquire()  # back-pressure from the far client
            out = Frame(rid, *_payload(message))
        elif kind == "websocket.close":
            ended = True
            out = Closed(rid, int(message.get("code", 1000)))
        elif kind == "websocket.http.response.start":
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
            out = Start(rid, message["status"], headers)
        elif kind == "websocket.http.response.body":
            more = bool(message.get("more_body", False))
            ended = not more
            out = Chunk(rid, bytes(message.get("body", b"")), more)
        else:  # pragma: no cover - nothing else is sent on a WebSocket
            return
        outbox.put_nowait(out)

    publishing = asyncio.ensure_future(publisher())
    try:
        await app(scope, receive, send)
    finally:
        if accepted and not ended:
            outbox.put_nowait(Closed(rid, 1000))
        outbox.put_nowait(None)
        try:
            async with asyncio.timeout(2 * link.liveness_interval):
                await publishing
        except TimeoutError:
            publishing.cancel()
        link.close_socket(rid)


HOP_HEADER = b"x-hero-relayed"
"""Marks a request or socket another instance relayed here (never relayed again)."""
