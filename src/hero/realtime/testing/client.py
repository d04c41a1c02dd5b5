"""HubTestClient: an in-process SignalR client for integration tests, with no sockets.

It talks to an ASGI app the way ASP.NET Core's TestServer + HubConnection do: negotiate
(version 1), then long polling over `httpx.ASGITransport` (the default, like the kit's
SignalRTestClient) or WebSockets over an in-memory ASGI WebSocket driver. Every byte on the
wire is produced and parsed by the sans-I/O protocol package (`hero.realtime.protocol`); this
module only moves bytes and keeps per-invocation bookkeeping.

    async with lifespan(app), HubTestClient(app, "/chat") as client:
        client.on("GetName", lambda: "alice")          # answers client-result invocations
        assert await client.invoke("Echo", 1) == 1
        await client.send("Broadcast", "Receive", "hi")
        assert await client.next_message("Receive") == ("hi",)

Upload streams: pass any `AsyncIterable` as an argument of `invoke`, `send` or `stream`; it
is sent as a client-to-server stream (`streamIds`, docs/protocol.md §9.4) and pumped in the
background, ending with a Completion (with `error` if the iterable raised).

The access token travels as the official browser client sends it (docs/protocol.md §2.7):
`Authorization: Bearer` on negotiate, polls, sends and DELETE; `?access_token=` on the
WebSocket request. `headers` go on every request, the WebSocket one included.

`httpx` is imported when a client starts, so importing this module does not need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

import msgspec

from hero.realtime.protocol import (
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    HubMessage,
    HubProtocol,
    InvocationMessage,
    JsonHubProtocol,
    MessagePackHubProtocol,
    ProtocolError,
    StreamInvocationMessage,
    StreamItemMessage,
)
from hero.realtime.protocol.handshake import encode_handshake_request, parse_handshake_response
from hero.realtime.testing.asgi import (
    HubConnectionError,
    LifespanError,
    LongPollingTransport,
    Transport,
    WebSocketTransport,
    cancel_task,
    lifespan,
)
from hero.realtime.transports.asgi import ASGIApp

if TYPE_CHECKING:
    import httpx

__all__ = [
    "HubConnectionError",
    "HubInvocationError",
    "HubTestClient",
    "LifespanError",
    "lifespan",
]

logger = logging.getLogger("hero.realtime.testing")

TransportName = Literal["LongPolling", "WebSockets"]
ProtocolName = Literal["json", "messagepack"]

NO_RESULT = "Client didn't provide a result."
MULTIPLE_RESULTS = "Client provided multiple results."
INVOCATION_CANCELED = "Invocation canceled due to the underlying connection being closed."
_HANDSHAKE_VERSION = 1


class HubInvocationError(Exception):
    """The server answered an invocation or a stream with a Completion `error`.

    `str(exc)` is the server's error text, exactly as sent.
    """


@dataclass(frozen=True, slots=True)
class _StreamEnd:
    """Queued after a stream's last item: its Completion, or the connection's end."""

    error: str | None
    connection_closed: bool = False


Handler = Callable[..., Any]


class HubTestClient:
    """An in-process SignalR client for one hub of an ASGI app (no sockets, no threads).

    Construct it, then `await start()` (or `async with`). Not reusable after `stop()`.
    All waits are bounded by `timeout` seconds unless a call takes its own timeout.

    `closed` is set once the connection is over, for whatever reason; then `close_error` is
    the server's Close `error` (or a transport failure), and `close_allow_reconnect` is the
    Close message's `allowReconnect`, or True when the transport ended without any Close
    message and the client did not stop it (the official clients would reconnect then).
    """

    def __init__(
        self,
        app: ASGIApp,
        path: str,
        *,
        transport: TransportName = "LongPolling",
        protocol: ProtocolName = "json",
        headers: Mapping[str, str] | None = None,
        access_token: str | None = None,
        query: Mapping[str, str] | None = None,
        base_url: str = "http://testserver",
        timeout: float = 10.0,
    ) -> None:
        if transport not in ("LongPolling", "WebSockets"):
            raise ValueError(f"unsupported transport {transport!r}")
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        self._app = app
        self._url = base_url.rstrip("/") + path.rstrip("/")
        self._transport_name: TransportName = transport
        self._protocol: HubProtocol = (
            MessagePackHubProtocol() if protocol == "messagepack" else JsonHubProtocol()
        )
        self._headers = dict(headers or {})
        self._access_token = access_token
        self._query = dict(query or {})
        self._timeout = timeout
        self.connection_id: str | None = None
        """The public connection id from negotiate (what the hub sees); None before start."""
        self.closed = asyncio.Event()
        self.close_error: str | None = None
        self.close_allow_reconnect = False
        self._close_received = False
        self._state: Literal["new", "starting", "connected", "stopping", "stopped"] = "new"
        self._http: httpx.AsyncClient | None = None
        self._transport: Transport | None = None
        self._reader: asyncio.Task[None] | None = None
        self._handlers: dict[str, list[Handler]] = {}
        self._inbox: dict[str, asyncio.Queue[tuple[Any, ...]]] = {}
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._streams: dict[str, asyncio.Queue[Any]] = {}
        self._ids = itertools.count()
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> HubTestClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Negotiate (version 1), connect the transport and complete the handshake.

        Raises HubConnectionError carrying the server's text: the negotiate `error`, the
        HTTP status of a refused request (`status_code` set), or
        `Server returned handshake error: <text>`.
        """
        if self._state != "new":
            raise RuntimeError("a HubTestClient can be started only once")
        self._state = "starting"
        try:
            async with asyncio.timeout(self._timeout):
                await self._start()
        except BaseException:
            await self._teardown()
            raise
        self._state = "connected"

    async def _start(self) -> None:
        import httpx

        self._http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self._app))
        token = await self._negotiate(self._http)
        if self._transport_name == "LongPolling":
            self._transport = LongPollingTransport(
                self._http,
                self._connect_url(token, with_access_token=False),
                self._request_headers(),
                self._timeout,
            )
        else:
            self._transport = WebSocketTransport(
                self._app,
                self._connect_url(token, with_access_token=True),
                self._headers,
                self._binary,
                self._timeout,
            )
        await self._transport.connect()
        await self._transport.send(
            encode_handshake_request(self._protocol.name, _HANDSHAKE_VERSION)
        )
        buffer = b""
        while True:
            data = await self._transport.receive()
            if data is None:
                detail = f" {self._transport.error}" if self._transport.error else ""
                raise HubConnectionError(
                    f"The server closed the connection before the handshake completed.{detail}"
                )
            buffer += data
            try:
                parsed = parse_handshake_response(buffer)
            except ProtocolError as exc:
                raise HubConnectionError(str(exc)) from exc
            if parsed is not None:
                break
        error, rest = parsed
        if error is not None:
            raise HubConnectionError(f"Server returned handshake error: {error}")
        self._reader = asyncio.get_running_loop().create_task(
            self._read_loop(self._transport, rest), name="hero-test-client-reader"
        )

    @property
    def _binary(self) -> bool:
        return isinstance(self._protocol, MessagePackHubProtocol)

    def _request_headers(self) -> dict[str, str]:
        headers = {"X-Requested-With": "XMLHttpRequest", **self._headers}
        if self._access_token is not None:
            headers["Authorization"] = f"Bearer {self._access_token}"
        return headers

    def _connect_url(self, token: str | None, *, with_access_token: bool) -> str:
        query = dict(self._query)
        if token is not None:
            query["id"] = token
        if with_access_token and self._access_token is not None:
            query["access_token"] = self._access_token
        return f"{self._url}?{urlencode(query)}" if query else self._url

    async def _negotiate(self, http: httpx.AsyncClient) -> str:
        query = {"negotiateVersion": "1", **self._query}
        url = f"{self._url}/negotiate?{urlencode(query)}"
        response = await http.post(url, headers=self._request_headers())
        if response.status_code != 200:
            raise HubConnectionError(
                "Failed to complete negotiation with the server: "
                f"{response.text or response.reason_phrase}: "
                f"Status code '{response.status_code}'",
                response.status_code,
            )
        try:
            body = msgspec.json.decode(response.content)
        except msgspec.DecodeError as exc:
            raise HubConnectionError(f"Invalid negotiate response: {exc}") from exc
        if not isinstance(body, dict):
            raise HubConnectionError("Invalid negotiate response: not a JSON object.")
        if body.get("error"):
            raise HubConnectionError(str(body["error"]))
        if "url" in body:
            raise HubConnectionError("Negotiate redirects are not supported by HubTestClient.")
        transports = {
            entry.get("transport")
            for entry in body.get("availableTransports", ())
            if isinstance(entry, dict)
        }
        if self._transport_name not in transports:
            raise HubConnectionError(
                f"The server does not offer the '{self._transport_name}' transport "
                f"(offered: {sorted(str(t) for t in transports)})."
            )
        connection_id = body.get("connectionId")
        version = body.get("negotiateVersion", 0)
        token = body.get("connectionToken") if isinstance(version, int) and version >= 1 else None
        token = token or connection_id
        if not isinstance(connection_id, str) or not isinstance(token, str):
            raise HubConnectionError("Invalid negotiate response: no connection id.")
        self.connection_id = connection_id
        return token

    async def stop(self) -> None:
        """Send a Close message, end the transport (DELETE for long polling), clean up.

        Idempotent; safe before `start()` and after the server closed the connection.
        """
        if self._state in ("stopping", "stopped"):
            await self.closed.wait()
            return
        was_connected = self._state == "connected"
        self._state = "stopping"
        graceful = False
        if was_connected and not self.closed.is_set():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._timeout):
                    await self._send_message(CloseMessage(), force=True)
                graceful = True
        await self._teardown(graceful=graceful)

    async def _teardown(self, *, graceful: bool = False) -> None:
        """End the transport (after the server's own close when `graceful`), then clean up."""
        self._state = "stopping"
        try:
            if self._transport is not None:
                await self._transport.close(self._timeout, graceful=graceful)
            if self._reader is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._timeout):
                        await asyncio.shield(self._reader)
                await cancel_task(self._reader)
            for task in list(self._tasks):
                await cancel_task(task)
            if self._http is not None:
                await self._http.aclose()
        finally:
            self._state = "stopped"
            self._on_closed(None)

    def _on_closed(self, transport: Transport | None) -> None:
        """The connection is over: record why and fail whatever still waits."""
        if self.closed.is_set():
            return
        stopping = self._state in ("stopping", "stopped")
        if not self._close_received and transport is not None and not stopping:
            self.close_error = transport.error
            self.close_allow_reconnect = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(HubConnectionError(INVOCATION_CANCELED))
        self._pending.clear()
        for queue in self._streams.values():
            queue.put_nowait(_StreamEnd(INVOCATION_CANCELED, connection_closed=True))
        self.closed.set()

    # -- receiving -------------------------------------------------------------------------

    async def _read_loop(self, transport: Transport, data: bytes) -> None:
        framer = self._protocol.new_framer(None)
        try:
            while True:
                if data:
                    try:
                        messages = self._protocol.parse_all(framer, data)
                    except ProtocolError as exc:
                        logger.error("invalid data from the server: %s", exc)
                        if not self._close_received:
                            self.close_error = f"Invalid data from the server: {exc}"
                            self._close_received = True
                        return
                    for message in messages:
                        self._dispatch(message)
                next_data = await transport.receive()
                if next_data is None:
                    return
                data = next_data
        finally:
            self._on_closed(transport)

    def _dispatch(self, message: HubMessage) -> None:
        if isinstance(message, InvocationMessage):
            self._inbox_for(message.target).put_nowait(message.arguments)
            handlers = list(self._handlers.get(message.target.lower(), ()))
            if message.invocation_id is not None:
                self._spawn(self._answer(message, handlers), f"hero-test-answer-{message.target}")
            else:
                for handler in handlers:
                    self._call_handler(handler, message)
        elif isinstance(message, StreamItemMessage):
            queue = self._streams.get(message.invocation_id)
            if queue is not None:
                queue.put_nowait(message.item)
        elif isinstance(message, CompletionMessage):
            future = self._pending.pop(message.invocation_id, None)
            if future is not None:
                if not future.done():
                    if message.error is not None:
                        future.set_exception(HubInvocationError(message.error))
                    else:
                        future.set_result(message.result)
                return
            queue = self._streams.get(message.invocation_id)
            if queue is not None:
                queue.put_nowait(_StreamEnd(message.error))
        elif isinstance(message, CloseMessage):
            self._close_received = True
            self.close_error = message.error
            self.close_allow_reconnect = message.allow_reconnect
        # Ping needs nothing; Ack/Sequence only come with stateful reconnect (never asked for).

    def _call_handler(self, handler: Handler, message: InvocationMessage) -> None:
        try:
            result = handler(*message.arguments)
        except Exception:
            logger.exception("handler for %r failed", message.target)
            return
        if inspect.isawaitable(result):
            self._spawn(_log_failure(result, message.target), f"hero-test-on-{message.target}")

    async def _answer(self, message: InvocationMessage, handlers: list[Handler]) -> None:
        """Answer a client-result invocation with one Completion (docs/protocol.md §9.5)."""
        invocation_id = message.invocation_id
        assert invocation_id is not None
        completion: CompletionMessage
        if not handlers:
            completion = CompletionMessage.with_error(invocation_id, NO_RESULT)
        else:
            results: list[Any] = []
            error: str | None = None
            for handler in handlers:
                try:
                    result = handler(*message.arguments)
                    if inspect.isawaitable(result):
                        result = await result
                except Exception as exc:
                    error = error or f"{type(exc).__name__}: {exc}"
                    continue
                if result is not None:
                    results.append(result)
            if error is not None:
                completion = CompletionMessage.with_error(invocation_id, error)
            elif len(results) > 1:
                completion = CompletionMessage.with_error(invocation_id, MULTIPLE_RESULTS)
            else:
                completion = CompletionMessage.with_result(
                    invocation_id, results[0] if results else None
                )
        try:
            await self._send_message(completion)
        except HubConnectionError:
            logger.debug("could not answer %s: the connection is closed", message.target)

    def _inbox_for(self, target: str) -> asyncio.Queue[tuple[Any, ...]]:
        key = target.lower()
        queue = self._inbox.get(key)
        if queue is None:
            queue = self._inbox[key] = asyncio.Queue()
        return queue

    # -- public API ------------------------------------------------------------------------

    def on(self, target: str, handler: Callable[..., Any]) -> None:
        """Register a handler for server-to-client invocations of `target` (any case).

        Sync or async. For a client-result invocation (one with an invocation id) the return
        value is the Completion `result`; an exception becomes the Completion `error`
        (`"<ExceptionType>: <message>"`); with no handler the error is
        `Client didn't provide a result.`, with several returning values
        `Client provided multiple results.`. Several handlers per target are allowed.
        """
        self._handlers.setdefault(target.lower(), []).append(handler)

    def off(self, target: str, handler: Callable[..., Any] | None = None) -> None:
        """Remove one handler of `target`, or all of them."""
        key = target.lower()
        if handler is None:
            self._handlers.pop(key, None)
        elif handler in self._handlers.get(key, ()):
            self._handlers[key].remove(handler)

    async def next_message(self, target: str, timeout: float | None = None) -> tuple[Any, ...]:
        """The arguments of the next server-to-client invocation of `target` (any case).

        Every invocation is buffered per target from the start, so one that arrived before
        this call is returned at once, in arrival order. `timeout` defaults to the client's;
        0 returns only what is already buffered. Raises TimeoutError, or HubConnectionError
        if the connection closes with nothing buffered.
        """
        queue = self._inbox_for(target)
        if not queue.empty():
            return queue.get_nowait()
        if self.closed.is_set():
            raise HubConnectionError(f"The connection is closed; no '{target}' message arrived.")
        wait = self._timeout if timeout is None else timeout
        getter = asyncio.ensure_future(queue.get())
        closing = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({getter, closing}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        if self.closed.is_set():
            raise HubConnectionError(f"The connection closed; no '{target}' message arrived.")
        raise TimeoutError(f"no '{target}' message within {wait}s")

    async def invoke(self, target: str, *args: Any) -> Any:
        """Blocking invocation: the Completion's result (None for a void method).

        AsyncIterable arguments are sent as upload streams. Raises HubInvocationError with
        the server's error text, HubConnectionError if the connection closes first,
        TimeoutError after the client's timeout.
        """
        self._ensure_connected()
        invocation_id = self._next_id()
        arguments, uploads = self._split_uploads(args)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[invocation_id] = future
        try:
            await self._send_message(
                InvocationMessage(
                    target=target,
                    arguments=arguments,
                    invocation_id=invocation_id,
                    stream_ids=tuple(uploads),
                )
            )
            self._start_uploads(uploads)
            try:
                async with asyncio.timeout(self._timeout):
                    return await future
            except TimeoutError:
                raise TimeoutError(
                    f"no completion for '{target}' within {self._timeout}s"
                ) from None
        finally:
            self._pending.pop(invocation_id, None)

    async def send(self, target: str, *args: Any) -> None:
        """Non-blocking invocation: returns once sent; the server answers nothing."""
        self._ensure_connected()
        arguments, uploads = self._split_uploads(args)
        await self._send_message(
            InvocationMessage(target=target, arguments=arguments, stream_ids=tuple(uploads))
        )
        self._start_uploads(uploads)

    async def stream(self, target: str, *args: Any) -> AsyncIterator[Any]:
        """Server-to-client stream: `async for item in client.stream("Counter", 5, 0)`.

        The StreamInvocation is sent on first iteration. Leaving the loop early (break,
        exception) sends CancelInvocation when the generator is closed, which CPython does
        at once for `async for` over the call; wrap it in `contextlib.aclosing` to be
        explicit. A stream error raises HubInvocationError; each item waits at most the
        client's timeout.
        """
        self._ensure_connected()
        invocation_id = self._next_id()
        arguments, uploads = self._split_uploads(args)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._streams[invocation_id] = queue
        finished = False
        try:
            await self._send_message(
                StreamInvocationMessage(
                    invocation_id=invocation_id,
                    target=target,
                    arguments=arguments,
                    stream_ids=tuple(uploads),
                )
            )
            self._start_uploads(uploads)
            while True:
                try:
                    async with asyncio.timeout(self._timeout):
                        item = await queue.get()
                except TimeoutError:
                    raise TimeoutError(
                        f"no item of stream '{target}' within {self._timeout}s"
                    ) from None
                if isinstance(item, _StreamEnd):
                    finished = True
                    if item.connection_closed:
                        raise HubConnectionError(item.error or INVOCATION_CANCELED)
                    if item.error is not None:
                        raise HubInvocationError(item.error)
                    return
                yield item
        finally:
            self._streams.pop(invocation_id, None)
            if not finished and self._state == "connected" and not self.closed.is_set():
                with contextlib.suppress(Exception):
                    await self._send_message(CancelInvocationMessage(invocation_id=invocation_id))

    # -- sending ---------------------------------------------------------------------------

    def _ensure_connected(self) -> None:
        if self._state != "connected" or self.closed.is_set():
            raise HubConnectionError("The connection is not active.")

    def _next_id(self) -> str:
        return str(next(self._ids))

    def _split_uploads(
        self, args: tuple[Any, ...]
    ) -> tuple[tuple[Any, ...], dict[str, AsyncIterable[Any]]]:
        arguments: list[Any] = []
        uploads: dict[str, AsyncIterable[Any]] = {}
        for arg in args:
            if isinstance(arg, AsyncIterable):
                uploads[self._next_id()] = arg
            else:
                arguments.append(arg)
        return tuple(arguments), uploads

    def _start_uploads(self, uploads: dict[str, AsyncIterable[Any]]) -> None:
        for stream_id, source in uploads.items():
            self._spawn(self._pump_upload(stream_id, source), f"hero-test-upload-{stream_id}")

    async def _pump_upload(self, stream_id: str, source: AsyncIterable[Any]) -> None:
        try:
            try:
                async for item in source:
                    await self._send_message(StreamItemMessage(invocation_id=stream_id, item=item))
            except HubConnectionError:
                raise
            except Exception as exc:
                await self._send_message(
                    CompletionMessage.with_error(stream_id, f"{type(exc).__name__}: {exc}")
                )
                return
            await self._send_message(CompletionMessage.empty(stream_id))
        except HubConnectionError:
            logger.debug("upload stream %s stopped: the connection is closed", stream_id)

    async def _send_message(self, message: HubMessage, *, force: bool = False) -> None:
        """Encode with the hub protocol and send; sends are serialized to keep their order."""
        transport = self._transport
        if transport is None or (not force and self._state != "connected") or self.closed.is_set():
            raise HubConnectionError("The connection is not active.")
        data = self._protocol.write(message)
        async with self._send_lock:
            await transport.send(data)

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _log_failure(awaitable: Any, target: str) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("handler for %r failed", target)
