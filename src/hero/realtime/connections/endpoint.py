"""The HTTP-connections layer of one hub (docs/protocol.md §§2 and 3).

`ConnectionEndpoint` is a plain ASGI app mounted at the hub's path. It answers
`POST /negotiate`, WebSocket upgrades, SSE and long-poll GETs, POST sends and DELETE, with
the status codes of docs/protocol.md §3.1, and hands each logical connection to the application
(the hub runtime) through the ConnectionManager.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from hero.realtime.connections.registry import Application, ConnectionManager
from hero.realtime.connections.relay import Relay
from hero.realtime.connections.socket_relay import Claim
from hero.realtime.protocol.negotiate import (
    TRANSPORT_ORDER,
    NegotiateResponse,
    NegotiateVersionError,
    encode_negotiate_error,
    select_version,
)
from hero.realtime.transports import (
    ANONYMOUS,
    Connection,
    ConnectionState,
    Identity,
    TransportKind,
)
from hero.realtime.transports.asgi import (
    Receive,
    Scope,
    Send,
    frame_reader,
    frame_writer,
    header,
    reject_websocket,
    respond,
    socket_detacher,
)
from hero.realtime.transports.lifecycle import Lifecycle
from hero.realtime.transports.long_polling import run_poll
from hero.realtime.transports.server_sent_events import run_server_sent_events
from hero.realtime.transports.websockets import CLOSE_TIMEOUT, run_websocket

logger = logging.getLogger(__name__)

Authenticator = Callable[[Scope], Awaitable[Identity | None]]
"""Returns the caller's identity, or None when the request is not authenticated."""

OriginCheck = Callable[[str, Scope], bool]
"""Whether a WebSocket upgrade from this Origin may proceed (the request's scope is given
so a checker can allow the server's own origin)."""

_JSON = b"application/json"
_PROBLEM = b"application/problem+json"


@dataclass(frozen=True, slots=True)
class EndpointOptions:
    """HTTP-connection settings (the .NET HttpConnectionDispatcherOptions defaults)."""

    transports: tuple[TransportKind, ...] = (
        TransportKind.WEBSOCKETS,
        TransportKind.SERVER_SENT_EVENTS,
        TransportKind.LONG_POLLING,
    )
    long_poll_timeout: float = 90.0
    disconnect_timeout: float = 15.0
    transport_send_timeout: float = 10.0
    inbound_buffer_size: int = 65_536
    outbound_buffer_size: int = 1_048_576
    minimum_negotiate_version: int = 0
    require_authentication: bool = False
    allow_stateful_reconnects: bool = False
    """Offer stateful reconnect (docs/protocol.md §8) to clients that ask for it at negotiate."""
    connection_token_key: bytes | None = None
    """Processes sharing this key sign connection tokens alike, so a WebSocket may arrive at
    any of them after negotiate (several workers on one socket, no sticky sessions)."""
    maximum_connections_per_user: int = 0
    """Connections one user (`Identity.user_id`) may hold in this endpoint at once, counted
    from creation to end; a negotiate, a WebSocket without negotiate or an adoption past it
    is refused with 429. 0: no limit. Anonymous connections are not counted."""


def _too_many_connections_body(limit: int) -> bytes:
    return msgspec.json.encode(
        {
            "type": "https://tools.ietf.org/html/rfc6585#section-4",
            "title": "Too Many Requests",
            "status": 429,
            "detail": f"This user already has {limit} open connections, the most allowed; "
            "close one before opening another.",
        }
    )


def _unauthorized_body() -> bytes:
    return msgspec.json.encode(
        {
            "type": "https://tools.ietf.org/html/rfc9110#section-15.5.2",
            "title": "Unauthorized",
            "status": 401,
            "detail": "A valid bearer token is required.",
        }
    )


class ConnectionEndpoint:
    """ASGI app for one hub path."""

    def __init__(
        self,
        application: Application,
        options: EndpointOptions | None = None,
        *,
        authenticate: Authenticator | None = None,
        origin_allowed: OriginCheck | None = None,
        relay: Relay | None = None,
    ) -> None:
        self.options = options or EndpointOptions()
        self._detached: set[asyncio.Task[None]] = set()
        """The pumps of sockets that outlived their ASGI call (`DETACH_EXTENSION`)."""
        self._authenticate = authenticate
        self._origin_allowed = origin_allowed
        self.relay = relay
        self.user_limit_refusals = 0
        """New connections refused by `maximum_connections_per_user` so far."""
        self.connections = ConnectionManager(
            application,
            disconnect_timeout=self.options.disconnect_timeout,
            inbound_limit=self.options.inbound_buffer_size,
            outbound_limit=self.options.outbound_buffer_size,
            token_key=self.options.connection_token_key,
            instance=relay.name if relay is not None else None,
        )
        if relay is not None:
            self.connections.on_forget = self._forgotten

    async def start(self) -> None:
        if self.relay is not None:
            await self.relay.start(self, self._claim_socket)

    async def aclose(self) -> None:
        await self.connections.aclose()
        detached = list(self._detached)
        if detached:  # their close frames are bounded by CLOSE_TIMEOUT
            _, pending = await asyncio.wait(detached, timeout=CLOSE_TIMEOUT + 1)
            for task in pending:
                task.cancel()
            await asyncio.gather(*detached, return_exceptions=True)
        if self.relay is not None:
            await self.relay.stop()

    async def _relayed(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Forward a request for a connection another instance holds; False if it is ours
        (or unknown everywhere: then the local handler answers 404)."""
        relay = self.relay
        if relay is None:
            return False
        token = _query(scope).get("id")
        if not token or self.connections.get(token) is not None:
            return False
        owner = ConnectionManager.owner_of(token)
        if owner is None or owner == relay.name or Relay.was_relayed(scope):
            return False
        timeout = self.options.long_poll_timeout + self.options.transport_send_timeout
        await relay.forward(owner, scope, receive, send, timeout=timeout)
        return True

    async def _relayed_socket(
        self, token: str, scope: Scope, receive: Receive, send: Send
    ) -> tuple[bool, bool]:
        """A WebSocket for a connection this instance does not hold: relay it to the
        instance that does (a stateful resume). Returns (served, stateful): not served when
        no instance holds it (then it is taken over here, the usual case of a socket that
        reached another instance than its negotiate), stateful when the issuer says the
        client negotiated stateful reconnect."""
        relay = self.relay
        if relay is None or Relay.was_relayed(scope):
            return False, False
        owner = ConnectionManager.owner_of(token)
        target = relay.moved.get(token) if owner == relay.name else owner
        if target is None or target == relay.name:
            return False, False
        released = await relay.forward_socket(target, token, scope, receive, send)
        return released is None, released is not None and released.stateful

    def _claim_socket(self, token: str, origin: str) -> Claim | str:
        """Another instance received a WebSocket for connection `token`, issued here: serve
        it here if the connection lives here; release it if it is negotiated but unused (the
        other instance takes it over) or unknown; or name the instance it was released to."""
        assert self.relay is not None
        connection = self.connections.get(token)
        if connection is None:
            holder = self.relay.moved.get(token)
            return holder if holder is not None and holder != origin else Claim.RELEASE
        lifecycle = connection.lifecycle
        if lifecycle.state is ConnectionState.NEGOTIATED and not lifecycle.requests:
            self.connections.dispose(connection)
            self.relay.released(token, origin)
            return Claim.RELEASE_STATEFUL if lifecycle.stateful_negotiated else Claim.RELEASE
        return Claim.SERVE

    def _forgotten(self, connection: Connection) -> None:
        """A connection ended: if another instance issued it and released it here, that
        instance stops pointing sockets for it here."""
        assert self.relay is not None
        token = connection.connection_token
        owner = ConnectionManager.owner_of(token)
        if owner is not None and owner != self.relay.name:
            self.relay.forget(owner, token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        path = _route_path(scope)
        negotiate = path.rstrip("/").endswith("/negotiate")
        if kind == "websocket":
            if negotiate:  # negotiate is POST only; an upgrade there is refused, not served
                await reject_websocket(scope, send, 405, b"Method Not Allowed")
                return
            await self._websocket(scope, receive, send)
            return
        if kind != "http":  # pragma: no cover - other ASGI scope types
            return
        method = scope["method"]
        if negotiate:
            if method != "POST":
                await respond(send, 405, b"Method Not Allowed", headers=[(b"allow", b"POST")])
                return
            await self._negotiate(scope, send)
            return
        if await self._relayed(scope, receive, send):
            return
        if method == "GET":
            accept = header(scope, b"accept") or ""
            if "text/event-stream" in accept:
                await self._server_sent_events(scope, receive, send)
            else:
                await self._long_poll(scope, receive, send)
        elif method == "POST":
            await self._post(scope, receive, send)
        elif method == "DELETE":
            await self._delete(scope, send)
        else:
            await respond(send, 405, b"Method Not Allowed")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _identify(self, scope: Scope) -> Identity | None:
        if self._authenticate is None:
            return ANONYMOUS
        identity = await self._authenticate(scope)
        if identity is None and not self.options.require_authentication:
            return ANONYMOUS
        return identity

    def _at_user_limit(self, identity: Identity) -> bool:
        """True (and counted) when `identity` may not open one more connection. Checked
        right before the connection is created, with no await in between."""
        limit = self.options.maximum_connections_per_user
        user = identity.user_id
        if limit <= 0 or user is None or self.connections.count_for(user) < limit:
            return False
        self.user_limit_refusals += 1
        return True

    async def _negotiate(self, scope: Scope, send: Send) -> None:
        identity = await self._identify(scope)
        if identity is None:
            await respond(send, 401, _unauthorized_body(), content_type=_PROBLEM)
            return
        query = _query(scope)
        try:
            version = select_version(query, self.options.minimum_negotiate_version)
        except NegotiateVersionError as exc:
            await respond(send, 200, encode_negotiate_error(str(exc)), content_type=_JSON)
            return
        if self._at_user_limit(identity):
            body = _too_many_connections_body(self.options.maximum_connections_per_user)
            await respond(send, 429, body, content_type=_PROBLEM)
            return
        connection = self.connections.create(identity, version=version)
        stateful = (
            self.options.allow_stateful_reconnects
            and version > 0
            and _flag(query, "usestatefulreconnect")
        )
        connection.lifecycle.stateful_negotiated = stateful
        body = NegotiateResponse(
            version=version,
            connection_id=connection.connection_id,
            connection_token=connection.connection_token,
            transports=tuple(t.value for t in self.options.transports),
            use_stateful_reconnect=stateful,
        ).encode()
        await respond(send, 200, body, content_type=_JSON)

    async def _lookup(
        self, scope: Scope, send: Send, *, websocket: bool = False
    ) -> tuple[Connection | None, Identity | None]:
        """Find the connection named by `id` and check the caller; responds on failure."""
        identity = await self._identify(scope)
        reply = _reply_ws(scope, send) if websocket else _reply_http(send)
        if identity is None:
            await reply(401, _unauthorized_body(), _PROBLEM)
            return None, None
        token = _query(scope).get("id")
        if not token:
            await reply(400, b"Connection ID required", b"text/plain")
            return None, None
        connection = self.connections.get(token)
        if connection is None or connection.lifecycle.disposed:
            await reply(404, b"No Connection with that ID", b"text/plain")
            return None, None
        owner = connection.identity.user_id
        if owner is not None and identity.user_id != owner:
            await reply(403, b"Forbidden", b"text/plain")
            return None, None
        return connection, identity

    def _enabled(self, transport: TransportKind) -> bool:
        return transport in self.options.transports

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._enabled(TransportKind.WEBSOCKETS):
            await reject_websocket(
                scope, send, 404, b"WebSockets transport not supported by this end point type"
            )
            return
        origin = header(scope, b"origin")
        allowed = self._origin_allowed
        if origin is not None and allowed is not None and not allowed(origin, scope):
            await reject_websocket(scope, send, 403, b"Origin not allowed")
            return
        token = _query(scope).get("id")
        if token and self.connections.get(token) is None:
            served, stateful = await self._relayed_socket(token, scope, receive, send)
            if served:
                return
            identity = await self._identify(scope)
            if identity is not None:
                if self._at_user_limit(identity):
                    await self._reject_user_limit(scope, send)
                    return
                adopted = self.connections.adopt(token, identity)
                if adopted is not None:
                    adopted.lifecycle.stateful_negotiated = stateful
        if token:
            connection, _ = await self._lookup(scope, send, websocket=True)
            if connection is None:
                return
            if connection.transport not in (None, TransportKind.WEBSOCKETS):
                await reject_websocket(scope, send, 400, b"Cannot change transports mid-connection")
                return
            lifecycle = connection.lifecycle
            if lifecycle.resumable and connection.transport is TransportKind.WEBSOCKETS:
                await self._resume_websocket(scope, connection, receive, send)
                return
            if lifecycle.requests or lifecycle.state is not ConnectionState.NEGOTIATED:
                await reject_websocket(scope, send, 409)
                return
        else:
            identity = await self._identify(scope)
            if identity is None:
                await reject_websocket(scope, send, 401, _unauthorized_body(), _PROBLEM)
                return
            if self._at_user_limit(identity):
                await self._reject_user_limit(scope, send)
                return
            connection = self.connections.create(identity)  # skipNegotiation
        # Claimed before the first await: a second upgrade for this id now gets 409.
        connection.lifecycle.request_started()
        await self._pump_websocket(scope, connection, receive, send, resume=False)

    async def _reject_user_limit(self, scope: Scope, send: Send) -> None:
        body = _too_many_connections_body(self.options.maximum_connections_per_user)
        await reject_websocket(scope, send, 429, body, _PROBLEM)

    async def _pump_websocket(
        self, scope: Scope, connection: Connection, receive: Receive, send: Send, *, resume: bool
    ) -> None:
        """Accept the upgrade, then attach it to the connection: a new one starts the hub,
        a resumed one (stateful reconnect) has the hub replay first. The caller has already
        counted this request in the connection's lifecycle; it is released here."""
        lifecycle = connection.lifecycle
        took_over = False
        handed_off = False
        try:
            message = await receive()
            if message["type"] != "websocket.connect":  # pragma: no cover - ASGI guarantees it
                return
            await send({"type": "websocket.accept"})
            if resume:
                lifecycle.resumed()
                took_over = True
            elif not self.connections.start(connection, TransportKind.WEBSOCKETS):
                return  # another transport started it, or it ended, while this one was accepted
            attach = frame_reader(scope)
            detacher = socket_detacher(scope) if attach is not None else None
            pump = run_websocket(
                connection,
                receive,
                send if detacher is None else detacher.send,
                send_timeout=self.options.transport_send_timeout,
                write_frame=frame_writer(scope),
                attach=attach,
            )
            if detacher is None:
                await pump
                return
            # The socket outlives this request: the pump runs in a task of its own and the
            # ASGI call returns, so an idle connection holds no request task, middleware
            # frames or scope.
            task = asyncio.get_running_loop().create_task(
                self._run_detached(pump, lifecycle, detacher.end)
            )
            self._detached.add(task)
            task.add_done_callback(self._detached.discard)
            detacher.detach()
            handed_off = True
        finally:
            if resume and not took_over:
                lifecycle.resume_failed()
            if not handed_off:
                lifecycle.request_ended()

    @staticmethod
    async def _run_detached(
        pump: Coroutine[Any, Any, None], lifecycle: Lifecycle, end: Callable[[], None]
    ) -> None:
        """A detached socket's pump; the socket is ended however the pump ends (a socket
        superseded by a resume, or whose close frame could not go out, is closed here, as
        the server closes one whose ASGI call returned)."""
        try:
            await pump
        except OSError as exc:  # a send to a socket that is gone (uvicorn: ClientDisconnected)
            logger.debug("WebSocket send failed: %r", exc)
        except Exception:
            logger.exception("WebSocket pump failed")
        finally:
            end()
            lifecycle.request_ended()

    async def _resume_websocket(
        self, scope: Scope, connection: Connection, receive: Receive, send: Send
    ) -> None:
        """A stateful client reconnects with the same id (docs/protocol.md §8.3): the old socket, if
        still open, is retired; the hub replays what the client has not acknowledged."""
        lifecycle = connection.lifecycle
        if not lifecycle.begin_resume():
            await reject_websocket(scope, send, 409)  # another resume is under way
            return
        try:
            async with asyncio.timeout(self.options.disconnect_timeout):
                await lifecycle.until_idle()  # the old socket's pump unwinding
        except TimeoutError:
            lifecycle.resume_failed()
            await reject_websocket(scope, send, 409)
            return
        except BaseException:
            lifecycle.resume_failed()
            raise
        lifecycle.request_started()
        await self._pump_websocket(scope, connection, receive, send, resume=True)

    async def _transport_request(
        self, scope: Scope, send: Send, kind: TransportKind
    ) -> Connection | None:
        """The connection an SSE or long-poll GET is for, or None after an error response
        (transport disabled 404, unknown id 404, transport changed 400)."""
        if not self._enabled(kind):
            text = f"{kind.value} transport not supported by this end point type"
            await respond(send, 404, text.encode())
            return None
        connection, _ = await self._lookup(scope, send)
        if connection is None:
            return None
        if connection.transport not in (None, kind):
            await respond(send, 400, b"Cannot change transports mid-connection")
            return None
        return connection

    async def _server_sent_events(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = await self._transport_request(scope, send, TransportKind.SERVER_SENT_EVENTS)
        if connection is None:
            return
        lifecycle = connection.lifecycle
        if lifecycle.requests or lifecycle.state is not ConnectionState.NEGOTIATED:
            await respond(send, 409, content_type=None)
            return
        lifecycle.request_started()
        self.connections.start(connection, TransportKind.SERVER_SENT_EVENTS)
        try:
            await run_server_sent_events(
                connection, receive, send, send_timeout=self.options.transport_send_timeout
            )
        finally:
            lifecycle.request_ended()

    async def _long_poll(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = await self._transport_request(scope, send, TransportKind.LONG_POLLING)
        if connection is None:
            return
        if connection.lifecycle.state is ConnectionState.NEGOTIATED:
            # First poll: activate the connection and return at once (docs/protocol.md §3.5);
            # it then waits for the next poll.
            self.connections.start(connection, TransportKind.LONG_POLLING)
            await respond(send, 200, content_type=b"application/octet-stream")
            return
        alive = await run_poll(
            connection, receive, send, poll_timeout=self.options.long_poll_timeout
        )
        if not alive:
            self.connections.dispose(connection)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection, _ = await self._lookup(scope, send)
        if connection is None:
            return
        if connection.transport is TransportKind.WEBSOCKETS:
            await respond(send, 405, b"POST requests are not allowed for WebSocket connections.")
            return
        # Some clients (signalrcore on long polling) send the handshake before their first
        # poll; nothing reads the connection until a transport starts it, so such early
        # data may fill the inbound buffer but never wait for room.
        early = connection.transport is None
        connection.lifecycle.request_started()
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    await respond(send, 400, content_type=None)
                    return
                body = message.get("body", b"")
                if early and not connection.inbound.has_room():
                    await respond(send, 400, b"The connection has not been started.")
                    return
                if body and not await connection.inbound.feed(body):
                    await respond(send, 404, content_type=None)
                    return
                if not message.get("more_body", False):
                    break
        finally:
            # Sends do not keep a long-polling connection alive: only polls do (checklist 25).
            connection.lifecycle.request_ended()
        await respond(send, 200, content_type=b"text/plain")

    async def _delete(self, scope: Scope, send: Send) -> None:
        connection, _ = await self._lookup(scope, send)
        if connection is None:
            return
        if connection.transport is not TransportKind.LONG_POLLING:
            await respond(send, 400, b"Cannot terminate this connection using the DELETE endpoint.")
            return
        self.connections.dispose(connection)
        await respond(send, 202, content_type=None)


def _route_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path


def _flag(query: dict[str, str], name: str) -> bool:
    """A boolean query parameter, name matched case-insensitively."""
    return any(k.lower() == name and v.lower() == "true" for k, v in query.items())


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


def _reply_http(send: Send) -> Callable[[int, bytes, bytes], Awaitable[None]]:
    async def reply(status: int, body: bytes, content_type: bytes) -> None:
        await respond(send, status, body, content_type=content_type)

    return reply


def _reply_ws(scope: Scope, send: Send) -> Callable[[int, bytes, bytes], Awaitable[None]]:
    async def reply(status: int, body: bytes, content_type: bytes) -> None:
        await reject_websocket(scope, send, status, body, content_type)

    return reply


__all__ = ["TRANSPORT_ORDER", "Authenticator", "ConnectionEndpoint", "EndpointOptions"]
