"""The HTTP server's own limits: the ones Kestrel has and uvicorn lacks.

uvicorn (httptools) accepts a request line and a header block of any size and waits forever
for headers that never come; its WebSocket protocol logs a traceback at ERROR when a client
sends a text message that is not UTF-8. The two protocol classes here close those gaps, and
`server_config` builds the one uvicorn configuration that `hero serve`, its workers and the
conformance server share. docs/reliability.md lists each limit with the test that crosses it.

- A request line over `max_request_line` bytes is answered 414, a request head over
  `max_request_line + max_request_headers` bytes 431 (Kestrel: 8 KiB and 32 KiB).
- The head must be complete within `headers_timeout` seconds of the connection opening or of
  its first byte on a kept-alive connection: a client that drips header lines gets 408, one
  that says nothing is closed (Kestrel's RequestHeadersTimeout, 30 s).
- A request body must arrive at `min_body_rate` bytes/s or more once `body_grace` seconds
  have passed, counting only time in which the server is reading (Kestrel's
  MinRequestBodyDataRate: 240 bytes/s after 5 s); a slower one gets 408.
- A text WebSocket message that is not UTF-8 closes the socket with 1007 and an INFO line.
- The WebSocket message size is bounded from the hub's message limit (`websocket_max_size`).

The WebSocket protocol class also answers a plain opening handshake itself (ws_upgrade.py),
and offers the scope extensions that let the hub write, read and detach without ASGI
messages (`GuardedWebSocketProtocol`).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_path_with_query_string,
)
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

from hero.platform.ws_upgrade import switching_protocols, upgrade_key, websocket_scope
from hero.realtime import (
    DETACH_EXTENSION,
    READ_FRAMES_EXTENSION,
    WRITE_FRAME_EXTENSION,
    FrameSink,
)

logger = logging.getLogger("hero.platform.http")

MIN_WEBSOCKET_MESSAGE = 1_048_576
"""The WebSocket message bound never goes below this: a client may pack several hub messages
into one frame (the .NET client sends what its pipe holds, up to 1 MiB)."""
WEBSOCKET_MESSAGES_PER_FRAME = 32
"""…and at most this many maximum-size hub messages."""
UNBOUNDED_WEBSOCKET_MESSAGE = 16 * 1_048_576
"""The bound when the hub sets no message limit."""
EARLY_DATA_LIMIT = 65_536
"""Bytes a client may send between its upgrade request and the 101 before it is cut off."""


def websocket_max_size(maximum_receive_message_size: int | None) -> int:
    """The largest WebSocket message accepted (larger ones close with 1009), from the hub's
    per-message limit: room for a batch of full messages, never the 16 MiB default."""
    if maximum_receive_message_size is None:
        return UNBOUNDED_WEBSOCKET_MESSAGE
    return max(MIN_WEBSOCKET_MESSAGE, WEBSOCKET_MESSAGES_PER_FRAME * maximum_receive_message_size)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The request-reading limits; the defaults are Kestrel's."""

    max_request_line: int = 8_192
    max_request_headers: int = 32_768
    headers_timeout: float = 30.0
    min_body_rate: float = 240.0
    body_grace: float = 5.0
    keep_alive_timeout: float = 5.0


_REASONS = {408: b"Request Timeout", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head size limits, a head timeout and a minimum body
    data rate. `limits` is set on a subclass by `protocols_for`."""

    limits: ClassVar[HttpLimits] = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_bytes = 0
        self._body_reading = 0.0
        self._refusal: int | None = None
        self._after_head = b""

    # -- connection -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timers()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._stop_timers()
        scheme = "wss" if self.scheme == "https" else "ws"
        guarded = self.ws_protocol_class
        key = None
        if isinstance(guarded, type) and issubclass(guarded, GuardedWebSocketProtocol):
            key = upgrade_key(self.scope, self.url, compression=self.config.ws_per_message_deflate)
        # The WebSocket protocol that takes this transport over would look up both
        # addresses again (a pseudo-socket and a system call each): it is handed ours.
        _upgrading.append((self.server, self.client, scheme))
        try:
            if key is None:
                super().handle_websocket_upgrade()  # `websockets` parses and answers it
                return
            # A plain opening handshake (ws_upgrade.py): the request is not rebuilt and
            # parsed again; the new protocol starts from the scope.
            self.connections.discard(self)
            protocol = cast(type[GuardedWebSocketProtocol], guarded)(
                config=self.config, server_state=self.server_state, app_state=self.app_state
            )
            protocol.connection_made(self.transport)
            self.transport.set_protocol(protocol)
            scope = websocket_scope(self.scope, self.url, scheme, self.app_state)
            protocol.open_upgraded(scope, key, self._after_head)
        finally:
            _upgrading.clear()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
            limits = self.limits
            if self._head_bytes > limits.max_request_line + limits.max_request_headers:
                # Counted on raw bytes: it may include the start of a body, which only
                # matters for a head that is already at the limit.
                self._refuse(431)
                return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self._should_upgrade():
                # What followed the request head in this read (its offset is the
                # exception's argument): frames a client sent without waiting for the 101.
                self._after_head = data[upgrade.args[0] :] if upgrade.args else b""
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            if self._refusal is not None:
                self._refuse(self._refusal)
                return
            message = "Invalid HTTP request received."
            logger.info("%s from %s: %s", message, self._peer(), exc)
            self.send_400_response(message)

    # -- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:
            self._start_head()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_request_line:
            self._refusal = 414
            raise _Refused

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel(self._head_timer)
        self._head_timer = None
        super().on_headers_complete()
        if not self.transport.is_closing() and self.cycle is not None and self._has_body():
            self._body_bytes = 0
            self._body_reading = 0.0
            self._body_timer = self.loop.call_later(1.0, self._check_body_rate)

    def _has_body(self) -> bool:
        """Whether the request announced a body (most do not: no timer for them)."""
        for name, value in self.headers:
            if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
                return True
        return False

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel(self._body_timer)
        self._body_timer = None
        super().on_message_complete()

    # -- timers -----------------------------------------------------------------------------

    def _start_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._refusal = None
        self._cancel(self._head_timer)
        self._head_timer = self.loop.call_later(self.limits.headers_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes == 0 and self.cycle is None:
            self.transport.close()  # never said anything: nothing to answer
            return
        self._refuse(408)

    def _check_body_rate(self) -> None:
        """Once a second while a body is being read: the rate counts only the seconds in
        which the server was reading (not paused by flow control for a busy app)."""
        self._body_timer = None
        if self.transport.is_closing():
            return
        if not self.flow.read_paused:
            self._body_reading += 1.0
        limits = self.limits
        allowed = limits.min_body_rate * (self._body_reading - limits.body_grace)
        if self._body_reading > limits.body_grace and self._body_bytes < allowed:
            cycle = self.cycle
            if cycle is not None and cycle.response_started:
                self.transport.close()  # too late for a status: just end it
            else:
                self._refuse(408)
            return
        self._body_timer = self.loop.call_later(1.0, self._check_body_rate)

    def _stop_timers(self) -> None:
        self._cancel(self._head_timer)
        self._cancel(self._body_timer)
        self._head_timer = self._body_timer = None

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()

    # -- answers ----------------------------------------------------------------------------

    def _refuse(self, status: int) -> None:
        """Answer `status` with a short plain-text body and close the connection."""
        self._stop_timers()
        if self.transport.is_closing():
            return
        reason = _REASONS[status]
        logger.info("HTTP %d %s for %s", status, reason.decode(), self._peer())
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        body = reason + b"\n"
        head = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: text/plain; charset=utf-8\r\n")
        head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _peer(self) -> str:
        return _peer(self.client)


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown peer"


_upgrading: list[tuple[Any, Any, Any]] = []
"""The addresses and scheme of the HTTP connection being upgraded, for the WebSocket
protocol's `connection_made` (one event loop thread: at most one entry, for one call)."""

WEBSOCKET_PROTOCOL_LOGGER = "hero.platform.websocket"
"""The logger `websockets`' protocol writes to under `hero serve` (uvicorn's would be
`uvicorn.error`): its "connection open" and "connection closed" INFO lines repeat uvicorn's
own "[accepted]" line, so `hero.platform.logs` keeps this one at WARNING."""


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; `_refusal` says the status."""


class _Inbox:
    """The part of `asyncio.Queue` that uvicorn's WebSocket protocol uses for its ASGI
    receive events (`put_nowait`, `get`, `empty`; one reader), without the queue's three
    deques, `Event` and `__dict__`: about 3 KiB less per open socket. uvicorn pauses reading
    after each message, so it rarely holds more than one or two events.

    While a `FrameSink` is attached (`READ_FRAMES_EXTENSION`), a disconnect event goes to
    its `ended` instead, and data messages never reach the inbox."""

    __slots__ = ("_items", "_waiter", "sink")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None
        self.sink: FrameSink | None = None

    def put_nowait(self, item: Any) -> None:
        sink = self.sink
        if sink is not None and item["type"] == "websocket.disconnect":
            self.sink = None
            sink.ended(item.get("code", 1005))
            return
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def hand_over(self, sink: FrameSink) -> bool:
        """Give `sink` what is queued, in order; False when it asked to stop reading."""
        room = True
        while self._items and self.sink is sink:
            item = self._items.pop(0)
            if item["type"] == "websocket.disconnect":
                self.sink = None
                sink.ended(item.get("code", 1005))
                return room
            data = item.get("bytes")
            binary = data is not None
            if data is None:
                data = item.get("text", "").encode()
            room = sink.message(data, binary) and room
        return room


class _Gate:
    """The part of `asyncio.Event` uvicorn's WebSocket protocol uses for `writable` (`set`,
    `clear`, `is_set`, `wait`), starting set. An event exists only while the gate is shut
    (the transport paused), not for the socket's whole life: about 0.8 KiB less per open
    socket."""

    __slots__ = ("_shut",)

    def __init__(self) -> None:
        self._shut: asyncio.Event | None = None

    def is_set(self) -> bool:
        return self._shut is None

    def set(self) -> None:
        shut, self._shut = self._shut, None
        if shut is not None:
            shut.set()

    def clear(self) -> None:
        if self._shut is None:
            self._shut = asyncio.Event()

    async def wait(self) -> None:
        while (shut := self._shut) is not None:
            await shut.wait()


class _NoTimer:
    """A close timer that is not running (see `GuardedWebSocketProtocol.detach`)."""

    def cancel(self) -> None:
        pass


_NO_TIMER = _NoTimer()


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets (sans-I/O) protocol; a text message that is not UTF-8 ends the
    socket with 1007 (RFC 6455 §8.1) and an INFO line instead of an ERROR traceback.

    Its scopes offer `hero.realtime.WRITE_FRAME_EXTENSION`: the hub writes its frames
    straight to the transport while the socket is open, writable and uncompressed, instead
    of one ASGI `websocket.send` per frame (a message dict, a decode that uvicorn encodes
    again, two coroutines). They also offer `hero.realtime.READ_FRAMES_EXTENSION`: once the
    hub attaches its sink, each message goes to it as bytes from `data_received`, and the
    socket stops reading only while the sink is full, instead of after every message."""

    _owed = 0
    """Bytes at the start of the next read that belong to a frame `websockets` has begun."""
    _head = b""
    """A frame header cut off at the end of the last read (see `data_received`)."""
    _head_fed = False
    """Whether `_head` was given to `websockets` with that read."""
    _detached = False
    """The application detached the socket (`DETACH_EXTENSION`)."""
    _websockets_only = False
    """Set when hero cannot know where `websockets`' parser stands: it reads everything."""
    _upgrade_key: bytes | None = None
    """The client's key when hero answers the opening handshake itself (`open_upgraded`)."""
    _early = b""
    """Bytes that came after such a handshake request and before hero's 101."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Gate()  # type: ignore[assignment]
        conn_logger = logging.getLogger(WEBSOCKET_PROTOCOL_LOGGER)
        self.conn.logger = conn_logger
        self.conn.debug = conn_logger.isEnabledFor(logging.DEBUG)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not _upgrading:
            super().connection_made(transport)
            return
        # uvicorn's, with the addresses the upgraded HTTP connection already has.
        self.connections.add(self)
        self.transport = transport  # type: ignore[assignment]
        self.server, self.client, self.scheme = _upgrading[0]

    # -- the opening handshake answered by hero (ws_upgrade.py) ------------------------------

    def open_upgraded(self, scope: dict[str, Any], key: bytes, early: bytes) -> None:
        """Instead of the request's bytes: the checked request of a plain opening handshake,
        and the bytes that came after it in the same read (`early`). The application starts
        as with uvicorn's `handle_connect`; `websockets` stays in its CONNECTING state, so
        a refusal (`websocket.close`, a denial response) is answered by it as before;
        `websocket.accept` is answered by `_accept_upgraded`."""
        self._upgrade_key = key
        self._early = early
        self.request = None  # type: ignore[assignment]
        self.handshake_initiated = True
        self.scope = scope  # type: ignore[assignment]
        self._offer_extensions()
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    async def send(self, message: Any) -> None:
        if (
            self._upgrade_key is not None
            and message["type"] == "websocket.accept"
            and not self.handshake_complete
            and self.initial_response is None
        ):
            await self.writable.wait()
            if self.disconnected:
                raise ClientDisconnected()
            self._accept_upgraded(message)
            return
        await super().send(message)

    def _accept_upgraded(self, message: Any) -> None:
        key = self._upgrade_key
        assert key is not None
        self.logger.info(
            '%s - "WebSocket %s" [accepted]',
            get_client_addr(self.scope),
            get_path_with_query_string(self.scope),
        )
        if self.transport.is_closing():
            return
        response = switching_protocols(
            key, self.default_headers, message.get("headers") or (), message.get("subprotocol")
        )
        self.handshake_complete = True
        conn = self.conn
        conn.state = State.OPEN
        conn.parser = conn.parse()  # from OPEN, `parse` reads frames straight away
        next(conn.parser)
        self.transport.write(response)
        self.start_keepalive()
        early, self._early = self._early, b""
        if early:  # frames sent before the 101 (RFC 6455 §4.1 says wait): read them now
            self.data_received(early)

    def data_received(self, data: bytes) -> None:
        """Once the socket is open, a read made only of complete, final, masked text or
        binary frames within the message limit (the usual case) is unmasked and delivered
        here. Any other read (a control frame, a fragment, anything malformed or
        oversized, a frame cut across reads) goes to `websockets` whole, as uvicorn does;
        hero keeps track of the frame boundaries so that it knows when `websockets`'
        parser is at one again. Before hero's own 101 (`open_upgraded`) nothing is read."""
        conn = self.conn
        if self._websockets_only or conn.state is not State.OPEN:
            if self._upgrade_key is not None and conn.state is State.CONNECTING:
                if not self.handshake_complete:
                    self._early += data
                    if len(self._early) > EARLY_DATA_LIMIT:
                        self.transport.close()
                return  # refused: `websockets` has answered, the transport is closing
            if conn.state is State.CONNECTING and self.handshake_initiated:
                # Frames before the 101 (RFC 6455 §4.1 forbids them): uvicorn hands over
                # the request alone, so `websockets` may now stop anywhere in a frame.
                self._websockets_only = True
            head = b"" if self._head_fed else self._head
            self._head, self._owed = b"", 0
            super().data_received(head + data if head else data)
            return
        owed = self._owed
        if owed >= len(data):
            self._owed = owed - len(data)
            super().data_received(data)
            return
        head, head_fed = self._head, self._head_fed
        scanned = head + data if head else data
        found: list[tuple[bytes, bool]] | None = [] if not (owed or head_fed) else None
        limit = conn.max_message_size
        pos, end = owed, len(scanned)
        self._owed, self._head, self._head_fed = 0, b"", False
        while pos < end:
            first, length, start = _frame_start(scanned, pos)
            if start < 0:  # the header is cut off: finished by the next read
                self._head = scanned[pos:]
                break
            masked = scanned[pos + 1] & 0x80
            frame_end = start + (4 if masked else 0) + length
            if frame_end > end:
                self._owed = frame_end - end
                found = None
                break
            if found is not None:
                if (
                    first in (0x81, 0x82)  # FIN, no RSV bits, text or binary
                    and masked
                    and (limit is None or length <= limit)
                    and conn.current_size is None  # no fragmented message open
                    and not conn.extensions
                ):
                    mask = scanned[start : start + 4]
                    found.append((apply_mask(scanned[start + 4 : frame_end], mask), first == 0x82))
                else:
                    found = None
            pos = frame_end
        if found is None:
            if self._head:
                self._head_fed = True
            super().data_received(head + data if head and not head_fed else data)
            return
        for payload, binary in found:
            if self.transport.is_closing():
                return
            self._deliver(payload, binary)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if not self.close_sent:  # not refused by `websockets` (which sets no scope then)
            self._offer_extensions()

    def _offer_extensions(self) -> None:
        extensions: dict[str, Any] = self.scope["extensions"]
        extensions[WRITE_FRAME_EXTENSION] = {"write": self.write_frame}
        extensions[READ_FRAMES_EXTENSION] = {"attach": self.attach}
        extensions[DETACH_EXTENSION] = {"detach": self.detach, "send": self.send, "end": self.end}

    def detach(self) -> None:
        """`DETACH_EXTENSION`: the socket outlives the application. uvicorn closes the
        transport when the application returns unless a close timer runs; a placeholder
        stands in for one until a close is sent (which sets the real timer)."""
        self._detached = True
        if self.close_timer is None:
            self.close_timer = _NO_TIMER  # type: ignore[assignment]

    def end(self) -> None:
        """`DETACH_EXTENSION`: the detached socket's application is done with it. As when
        an application returns: close the transport, unless a close frame went out and the
        close timer waits for the peer's answer."""
        if cast(object, self.close_timer) is _NO_TIMER:
            self.close_timer = None
        if self.close_timer is None and not self.transport.is_closing():
            self.transport.close()

    def on_task_complete(self, task: asyncio.Task[None]) -> None:
        super().on_task_complete(task)
        if self._detached:
            # The application has returned: nothing reads the scope (headers and all) now.
            self.scope = None  # type: ignore[assignment]

    def attach(self, sink: FrameSink | None) -> Callable[[], None]:
        """`READ_FRAMES_EXTENSION`: messages go to `sink` from now on (None: back to the
        ASGI receive queue). Returns the callable that resumes reading."""
        inbox = cast(_Inbox, self.queue)
        inbox.sink = sink
        if sink is not None and not inbox.hand_over(sink):
            self._pause()
        else:  # uvicorn paused after the last queued message; ASGI receive resumes too
            self._resume()
        return self._resume

    def _pause(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def start_keepalive(self) -> None:
        """Called once the 101 response is written: uvicorn no longer needs the upgrade
        request and response (about 3.5 KiB of headers), so the socket does not keep them
        for its whole life. `websockets`' parser still holds the request in a local for as
        long as it runs, so its headers are emptied in place too (the scope has a copy)."""
        request = self.request
        if request is not None:
            request.headers.clear()
        self.request = self.response = None  # type: ignore[assignment]
        super().start_keepalive()

    def write_frame(self, data: bytes, binary: bool) -> bool:
        """One unmasked, unfragmented data frame (RFC 6455 §5.2), or False to have the
        caller use ASGI `send` (which waits for the socket, or fails as uvicorn's does).
        `websockets` holds the socket OPEN from the 101 until either side's close frame;
        a lost connection closes the transport first."""
        if (
            self.conn.state is not State.OPEN
            or self.conn.extensions
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        self.transport.writelines((_frame_header(len(data), binary), data))
        return True

    def send_receive_event_to_app(self) -> None:
        """A message `websockets` parsed (its frames gathered by uvicorn)."""
        frames = self.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self.frames = []
        self._deliver(data, self.curr_msg_data_type == "bytes")

    def _deliver(self, data: bytes, binary: bool) -> None:
        """One complete message, to the attached sink or as an ASGI receive event."""
        if self.close_sent:
            return  # past `websocket.close`: discarded while the peer's close is awaited
        text: str | None = None
        if not binary:
            try:
                text = data.decode()
            except UnicodeDecodeError:
                logger.info(
                    "WebSocket text message from %s is not UTF-8: closing (1007)",
                    _peer(self.client),
                )
                self.conn.fail(1007, "invalid UTF-8")
                self.handle_parser_exception()
                return
        sink = cast(_Inbox, self.queue).sink
        if sink is not None:
            if not sink.message(data, binary):
                self._pause()
            return
        if text is not None:
            self.queue.put_nowait({"type": "websocket.receive", "text": text})
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        self._pause()  # uvicorn's rule: one event at a time; ASGI `receive` resumes


def _frame_start(data: bytes, pos: int) -> tuple[int, int, int]:
    """The first header byte, the payload length and where the masking key (or the
    payload) starts, for the frame at `pos`; a start of -1 when the header is incomplete
    (RFC 6455 §5.2: 7, 7+16 or 7+64 bits of length)."""
    available = len(data) - pos
    if available < 2:
        return 0, 0, -1
    length = data[pos + 1] & 0x7F
    if length == 126:
        if available < 4:
            return 0, 0, -1
        return data[pos], int.from_bytes(data[pos + 2 : pos + 4]), pos + 4
    if length == 127:
        if available < 10:
            return 0, 0, -1
        return data[pos], int.from_bytes(data[pos + 2 : pos + 10]), pos + 10
    return data[pos], length, pos + 2


def _frame_header(length: int, binary: bool) -> bytes:
    """FIN and the opcode (0x2 binary, 0x1 text), then the payload length in 7, 7+16 or
    7+64 bits; a server's frames carry no mask."""
    first = 0x82 if binary else 0x81
    if length < 126:
        return bytes((first, length))
    if length < 65_536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def protocols_for(limits: HttpLimits) -> tuple[type[GuardedHttpProtocol], type[Any]]:
    """The HTTP and WebSocket protocol classes for uvicorn, with `limits` applied."""
    if limits == GuardedHttpProtocol.limits:
        return GuardedHttpProtocol, GuardedWebSocketProtocol
    http = type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"limits": limits})
    return http, GuardedWebSocketProtocol


def server_config(
    app: Any,
    *,
    limits: HttpLimits,
    maximum_receive_message_size: int | None,
    access_log: bool = False,
    websocket_compression: bool = False,
    **extra: Any,
) -> uvicorn.Config:
    """The uvicorn configuration every hero server runs with. WebSocket compression
    (permessage-deflate) is accepted only when asked for (`Realtime:WebSocketCompression`):
    uvicorn's default would accept it from every browser and Node client."""
    http, ws = protocols_for(limits)
    return uvicorn.Config(
        app,
        http=http,
        ws=ws,
        log_config=None,
        access_log=access_log,
        ws_max_size=websocket_max_size(maximum_receive_message_size),
        ws_per_message_deflate=websocket_compression,
        # No WebSocket pings of uvicorn's own: the hub pings every KeepAliveInterval and
        # closes a connection silent for ClientTimeoutInterval (a timer per socket saved).
        ws_ping_interval=None,
        timeout_keep_alive=max(1, round(limits.keep_alive_timeout)),
        lifespan="on",
        timeout_graceful_shutdown=10,
        **extra,
    )
