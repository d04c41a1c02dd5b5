"""Requests for a connection held by another instance, relayed to it over a message bus.

Long polling and Server-Sent Events spread one logical connection over several HTTP requests
(the poll or the stream, a POST per send, the DELETE). Behind a load balancer without
affinity each of them may reach any instance. The connection token names the instance that
negotiated the connection and holds it; an instance that receives a request for a connection
held elsewhere forwards the whole request (method, path, query, headers, body) to the owner.
The owner runs it through its own endpoint exactly as if it had arrived there (it
authenticates the caller again) and streams the response back chunk by chunk. Each chunk the
requesting instance has written to its client returns one credit; the owner never has more
than `window` chunks in flight, so a slow client slows the owner's writer down instead of
filling memory, and the owner's own send timeouts apply as for a local client.

An owner that is gone answers as a dead connection does: `404 No Connection with that ID`
when nobody receives the request, or the end of the response when the owner disappears in
the middle of it (checked every `liveness_interval` seconds); a relay never hangs.

WebSockets are relayed too when they must be (a stateful reconnect that lands on another
instance than the one holding the connection): socket_relay.py.

The bus is an interface (`RelayBus`); hero provides one on Valkey pub/sub (valkey_relay.py)
and one on a Valkey Cluster's sharded pub/sub (sharded_relay.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from hero.realtime.connections.relay_messages import (
    Cancel,
    Chunk,
    Credit,
    Forget,
    Message,
    Release,
    Request,
    Socket,
    Start,
    decoder,
    encoder,
)
from hero.realtime.connections.socket_relay import (
    HOP_HEADER,
    Claim,
    Claimant,
    SocketEnd,
    answer_socket,
    forward_socket,
)
from hero.realtime.transports.asgi import Receive, Scope, Send, respond

logger = logging.getLogger("hero.realtime.relay")

_MOVED_LIMIT = 100_000

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RelayBus(Protocol):
    """Point-to-point delivery of small byte messages between named instances."""

    @property
    def name(self) -> str:
        """This instance's name (what other instances address it by)."""

    async def start(self, deliver: Callable[[bytes], None]) -> None:
        """Begin receiving: `deliver` is called with each message addressed to this instance."""

    async def stop(self) -> None: ...

    async def publish(self, instance: str, data: bytes) -> int:
        """Send `data` to `instance`; how many receivers took it (0: nobody listens)."""

    async def alive(self, instance: str) -> bool:
        """Whether `instance` is listening right now."""


class RelayError(Exception):
    """The owner could not be reached."""


@dataclass
class _Served:
    """A request this instance runs for another one."""

    credits: asyncio.Semaphore
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Forwarded:
    """A request this instance forwarded and waits on."""

    inbox: asyncio.Queue[Start | Chunk] = field(default_factory=asyncio.Queue)


class Relay:
    """Forwards requests to their owner and serves those forwarded here (see module doc)."""

    def __init__(
        self,
        bus: RelayBus,
        *,
        window: int = 16,
        max_body: int = 1_048_576,
        liveness_interval: float = 2.0,
        answer_timeout: float = 10.0,
    ) -> None:
        self.bus = bus
        self._answer_timeout = answer_timeout
        self._window = window
        self._max_body = max_body
        self._liveness_interval = liveness_interval
        self._app: ASGIApp | None = None
        self._ids = itertools.count()
        self._served: dict[str, _Served] = {}
        self._forwarded: dict[str, _Forwarded] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sockets: dict[str, SocketEnd] = {}
        self._claim: Claimant = lambda token, origin: Claim.RELEASE
        self._alive_until: dict[str, float] = {}
        self.moved: dict[str, str] = {}
        """Connection token -> the instance this one released the connection to (bounded)."""
        self.relayed = 0
        """Requests forwarded to another instance so far (a metric)."""
        self.owner_gone = 0
        """Forwarded requests answered 404 because their owner was gone (a metric)."""
        self.served = 0
        """Requests served here for another instance (a metric)."""

    @property
    def name(self) -> str:
        return self.bus.name

    @property
    def liveness_interval(self) -> float:
        return self._liveness_interval

    async def start(self, app: ASGIApp, claim: Claimant | None = None) -> None:
        """Serve relayed requests through `app`; `claim` decides about relayed sockets
        (see socket_relay.py; without one, every socket asked for is released)."""
        self._app = app
        if claim is not None:
            self._claim = claim
        await self.bus.start(self._receive)

    async def stop(self) -> None:
        await self.bus.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @staticmethod
    def was_relayed(scope: Scope) -> bool:
        """True for a request that another instance forwarded here (never forward it again)."""
        return any(name == HOP_HEADER for name, _ in scope.get("headers", ()))

    # ------------------------------------------------------------------ sockets

    async def forward_socket(
        self, owner: str, token: str, scope: Scope, receive: Receive, send: Send
    ) -> Release | None:
        """Serve this WebSocket by the instance holding connection `token`, `owner` or the
        one it released the connection to: None once served; when none holds it, the
        `Release` received (the caller takes the connection over). See socket_relay.py."""
        released = await forward_socket(
            self, owner, token, scope, receive, send, answer_timeout=self._answer_timeout
        )
        if released is None:  # relayed (or refused); a release is taken over here instead
            self.relayed += 1
        return released

    def released(self, token: str, holder: str) -> None:
        """This instance released connection `token` to `holder`: later sockets for it are
        pointed there until `holder` reports that the connection ended."""
        self.moved[token] = holder
        if len(self.moved) > _MOVED_LIMIT:
            del self.moved[next(iter(self.moved))]  # the oldest

    def forget(self, owner: str, token: str) -> None:
        """Connection `token`, issued by `owner` and taken over here, has ended."""
        self._spawn(self._quietly_publish(owner, Forget(token)))

    async def _quietly_publish(self, instance: str, message: Message) -> None:
        with contextlib.suppress(Exception):
            await self.publish(instance, message)

    def open_socket(self, rid: str | None = None) -> tuple[str, SocketEnd]:
        if rid is None:
            rid = f"{self.name}.{next(self._ids)}"
        end = SocketEnd(self._window)
        self._sockets[rid] = end
        return rid, end

    def close_socket(self, rid: str) -> None:
        self._sockets.pop(rid, None)

    async def publish(self, instance: str, message: Message) -> int:
        return await self.bus.publish(instance, encoder.encode(message))

    async def alive(self, instance: str) -> bool:
        """Whether `instance` listens; a positive answer is trusted for half the liveness
        interval, so many relayed sockets to one instance do not each ask the bus."""
        loop = asyncio.get_running_loop()
        if self._alive_until.get(instance, 0.0) > loop.time():
            return True
        if await self.bus.alive(instance):
            self._alive_until[instance] = loop.time() + self._liveness_interval / 2
            return True
        self._alive_until.pop(instance, None)
        return False

    async def _answer_socket(self, request: Socket) -> None:
        assert self._app is not None
        if await answer_socket(self, self._app, self._claim, request):
            self.served += 1

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ the requesting side

    async def forward(
        self, owner: str, scope: Scope, receive: Receive, send: Send, *, timeout: float
    ) -> None:
        """Serve this request by `owner`; `timeout` bounds the wait for its response start
        (a long poll may legitimately take its whole poll timeout)."""
        body = await _read_body(receive, self._max_body)
        if body is None:
            await respond(send, 413, b"Request body too large to relay.")
            return
        rid = f"{self.name}.{next(self._ids)}"
        waiting = _Forwarded()
        self._forwarded[rid] = waiting
        request = Request(
            rid,
            self.name,
            scope["method"],
            scope.get("path", ""),
            scope.get("query_string", b""),
            [(bytes(k), bytes(v)) for k, v in scope.get("headers", ())],
            body,
        )
        self.relayed += 1
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            if await self.publish(owner, request) == 0:
                self.owner_gone += 1
                await respond(send, 404, b"No Connection with that ID", content_type=b"text/plain")
                return
            await self._relay_response(owner, rid, waiting, gone, send, timeout)
        except RelayError:
            self.owner_gone += 1
            await respond(send, 404, b"No Connection with that ID", content_type=b"text/plain")
        finally:
            self._forwarded.pop(rid, None)
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone

    async def _relay_response(  # noqa: PLR0917 (one private call site)
        self,
        owner: str,
        rid: str,
        waiting: _Forwarded,
        gone: asyncio.Future[None],
        send: Send,
        timeout: float,
    ) -> None:
        started = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            getter: asyncio.Future[Any] = asyncio.ensure_future(waiting.inbox.get())
            done, _ = await asyncio.wait(
                [getter, gone], timeout=self._liveness_interval, return_when=asyncio.FIRST_COMPLETED
            )
            if getter not in done:
                getter.cancel()
                if gone in done:  # our client left: the owner stops serving it
                    with contextlib.suppress(Exception):
                        await self.publish(owner, Cancel(rid))
                    return
                if not started and loop.time() > deadline:
                    raise RelayError("no response in time")
                if not await self.bus.alive(owner):
                    if not started:
                        raise RelayError("the owner is gone")
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                continue
            message = getter.result()
            if isinstance(message, Start):
                started = True
                start = {"type": "http.response.start", "status": message.status}
                await send({**start, "headers": message.headers})
                continue
            body = {"type": "http.response.body", "body": message.data}
            await send({**body, "more_body": message.more})
            if not message.more:
                return
            await self.publish(owner, Credit(rid))

    # ------------------------------------------------------------------ the owning side

    def _receive(self, data: bytes) -> None:
        try:
            message = decoder.decode(data)
        except msgspec.DecodeError:
            logger.warning("dropped an undecodable relay message")
            return
        if isinstance(message, Request):
            self._spawn(self._serve(message))
        elif isinstance(message, Socket):
            self._spawn(self._answer_socket(message))
        elif isinstance(message, Forget):
            self.moved.pop(message.token, None)
        elif (end := self._sockets.get(message.rid)) is not None:
            if isinstance(message, Credit):
                end.credits.release()
            elif not isinstance(message, Cancel):
                end.inbox.put_nowait(message)
        elif isinstance(message, (Start, Chunk)):
            waiting = self._forwarded.get(message.rid)
            if waiting is not None:
                waiting.inbox.put_nowait(message)
        elif isinstance(message, Credit):
            served = self._served.get(message.rid)
            if served is not None:
                served.credits.release()
        elif isinstance(message, Cancel):
            served = self._served.get(message.rid)
            if served is not None:
                served.cancelled.set()

    async def _serve(self, request: Request) -> None:
        assert self._app is not None
        self.served += 1
        served = _Served(asyncio.Semaphore(self._window))
        self._served[request.rid] = served
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": "http",
            "path": request.path,
            "raw_path": request.path.encode(),
            "root_path": "",
            "query_string": request.query,
            "headers": [*request.headers, (HOP_HEADER, self.name.encode())],
            "client": None,
            "server": None,
        }
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": request.body, "more_body": False}
            await served.cancelled.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if served.cancelled.is_set():
                raise OSError("the relayed client is gone")
            if message["type"] == "http.response.start":
                headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
                out: Message = Start(request.rid, message["status"], headers)
            elif message["type"] == "http.response.body":
                more = bool(message.get("more_body", False))
                if more:
                    await served.credits.acquire()  # back-pressure from the far client
                out = Chunk(request.rid, bytes(message.get("body", b"")), more)
            else:
                return
            if await self.publish(request.origin, out) == 0:
                served.cancelled.set()  # the requesting instance is gone

        try:
            await self._app(scope, receive, send)
        except asyncio.CancelledError:
            raise
        except Exception:
            if not served.cancelled.is_set():
                logger.warning("a relayed request failed", exc_info=True)
        finally:
            self._served.pop(request.rid, None)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(parts)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
