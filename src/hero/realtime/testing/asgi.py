"""In-memory ASGI drivers for the test kit: lifespan, long polling, WebSockets. No sockets.

`lifespan(app)` runs an app's ASGI lifespan around a block. The two transports move bytes
between a HubTestClient and an ASGI app: long polling over `httpx.ASGITransport` (each poll
is one complete, buffered response; every request runs the app in its own task, so a pending
poll never blocks a POST), and WebSockets through an in-memory ASGI `websocket` scope with
queues for both directions. They know nothing of hub messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from hero.realtime.transports.asgi import ASGIApp, Message, Scope

if TYPE_CHECKING:
    import httpx

__all__ = [
    "HubConnectionError",
    "LifespanError",
    "LongPollingTransport",
    "Transport",
    "WebSocketTransport",
    "cancel_task",
    "lifespan",
    "websocket_scope",
]

logger = logging.getLogger("hero.realtime.testing")


class HubConnectionError(Exception):
    """The connection could not be started or is not usable.

    `status_code` is the HTTP status when a request was refused (negotiate 401, WebSocket
    rejection, failed POST); None for errors reported in a body (negotiate `error`,
    handshake error) or for a closed connection.
    """

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class LifespanError(RuntimeError):
    """The ASGI app reported `lifespan.startup.failed` / `lifespan.shutdown.failed`."""


@contextlib.asynccontextmanager
async def lifespan(app: ASGIApp, *, timeout: float = 10.0) -> AsyncIterator[None]:
    """Drive the ASGI lifespan protocol of `app` around the block (startup, then shutdown).

    `httpx.ASGITransport` never sends lifespan events, so use this when the app does work at
    startup or shutdown (a HubServer needs neither to serve, but its `aclose()` ends open
    connections and background tasks cleanly). Raises LifespanError when the app reports a
    failure, and re-raises what the app raised if it crashed before startup completed.
    """
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    started: asyncio.Future[None] = loop.create_future()
    stopped: asyncio.Future[None] = loop.create_future()

    async def receive() -> Message:
        return await inbox.get()

    async def send(message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete" and not started.done():
            started.set_result(None)
        elif kind == "lifespan.startup.failed" and not started.done():
            started.set_exception(LifespanError(message.get("message", "startup failed")))
        elif kind == "lifespan.shutdown.complete" and not stopped.done():
            stopped.set_result(None)
        elif kind == "lifespan.shutdown.failed" and not stopped.done():
            stopped.set_exception(LifespanError(message.get("message", "shutdown failed")))

    scope: Scope = {
        "type": "lifespan",
        "asgi": {"version": "3.0", "spec_version": "2.0"},
        "state": {},
    }

    async def run() -> None:
        await app(scope, receive, send)

    task = loop.create_task(run(), name="hero-test-lifespan")
    inbox.put_nowait({"type": "lifespan.startup"})
    try:
        await _first_of(started, task, timeout, "lifespan startup")
    except BaseException:
        await cancel_task(task)
        raise
    try:
        yield
    finally:
        inbox.put_nowait({"type": "lifespan.shutdown"})
        try:
            await _first_of(stopped, task, timeout, "lifespan shutdown")
        finally:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.shield(task)
            await cancel_task(task)


async def _first_of(
    future: asyncio.Future[None], task: asyncio.Task[None], timeout: float, what: str
) -> None:
    """Wait for `future`; if `task` ends first, surface its exception (or a LifespanError)."""
    done, _ = await asyncio.wait(
        {future, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
    )
    if future in done:
        future.result()
        return
    if task in done:
        exc = task.exception()
        if exc is not None:
            raise exc
        raise LifespanError(f"the app returned during {what}")
    raise TimeoutError(f"{what} did not complete within {timeout}s")


async def cancel_task(task: asyncio.Task[Any] | None) -> None:
    if task is None or task.done():
        if task is not None and not task.cancelled():
            task.exception()  # mark retrieved
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


class Transport(ABC):
    """Moves bytes; `receive()` returns None once the transport has ended."""

    error: str | None = None
    """Why the transport ended abnormally (None for a normal end)."""

    def __init__(self) -> None:
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def send(self, data: bytes) -> None: ...

    @abstractmethod
    async def close(self, timeout: float, *, graceful: bool) -> None:
        """End the transport; `graceful`: a Close message was sent, let the server end first."""

    async def receive(self) -> bytes | None:
        data = await self._incoming.get()
        if data is None:
            self._incoming.put_nowait(None)  # stay at end of stream for later readers
        return data


class LongPollingTransport(Transport):
    """GET polls in one background task, POST sends, DELETE to terminate (docs/protocol.md §3.5).

    `httpx.ASGITransport` buffers each response, which suits long polling: a poll is one
    complete response. Each request runs the app in its own task, so a pending poll never
    blocks a POST.
    """

    def __init__(
        self, http: httpx.AsyncClient, url: str, headers: dict[str, str], timeout: float
    ) -> None:
        super().__init__()
        self._http = http
        self._url = url
        self._headers = headers
        self._timeout = timeout
        self._poller: asyncio.Task[None] | None = None
        self._stopping = False

    async def connect(self) -> None:
        async with asyncio.timeout(self._timeout):
            response = await self._http.get(self._url, headers=self._headers)
        if response.status_code != 200:
            raise HubConnectionError(
                f"Unexpected status code returned from the first poll: {response.status_code} "
                f"{response.text}".rstrip(),
                response.status_code,
            )
        self._poller = asyncio.get_running_loop().create_task(
            self._poll_loop(), name="hero-test-long-poll"
        )

    async def _poll_loop(self) -> None:
        try:
            while True:
                response = await self._http.get(self._url, headers=self._headers)
                if response.status_code == 204:
                    return
                if response.status_code != 200:
                    if not self._stopping:
                        self.error = (
                            f"Unexpected status code returned from poll: {response.status_code}"
                        )
                    return
                if response.content:
                    self._incoming.put_nowait(response.content)
        except Exception as exc:
            if not self._stopping:
                self.error = f"Long polling failed: {type(exc).__name__}: {exc}"
        finally:
            self._incoming.put_nowait(None)

    async def send(self, data: bytes) -> None:
        async with asyncio.timeout(self._timeout):
            response = await self._http.post(self._url, content=data, headers=self._headers)
        if response.status_code != 200:
            raise HubConnectionError(
                f"Send failed with status code {response.status_code}: {response.text}",
                response.status_code,
            )

    async def close(self, timeout: float, *, graceful: bool) -> None:
        self._stopping = True
        if self._poller is None:
            return
        if not self._poller.done():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await self._http.delete(self._url, headers=self._headers)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._poller)
        await cancel_task(self._poller)


def websocket_scope(url: str, headers: Mapping[str, str]) -> Scope:
    """The ASGI scope of a WebSocket request to `url` (http(s) or ws(s)), offering the
    `websocket.http.response` extension so the app can refuse with an HTTP status."""
    parts = urlsplit(url)
    secure = parts.scheme in ("https", "wss")
    raw_headers: list[tuple[bytes, bytes]] = [
        (b"host", parts.netloc.encode("latin-1")),
        (b"connection", b"Upgrade"),
        (b"upgrade", b"websocket"),
        (b"sec-websocket-version", b"13"),
    ]
    raw_headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "wss" if secure else "ws",
        "server": (parts.hostname or "testserver", parts.port or (443 if secure else 80)),
        "client": ("127.0.0.1", 123),
        "path": parts.path or "/",
        "raw_path": (parts.path or "/").encode("latin-1"),
        "root_path": "",
        "query_string": parts.query.encode("latin-1"),
        "headers": raw_headers,
        "subprotocols": [],
        "state": {},
        "extensions": {"websocket.http.response": {}},
    }


class WebSocketTransport(Transport):
    """An in-memory ASGI WebSocket: the app runs in a task, queues carry both directions.

    Offers the `websocket.http.response` extension, so a refusal with an HTTP status
    (401, 404, ...) raises HubConnectionError with that status.
    """

    def __init__(
        self, app: ASGIApp, url: str, headers: Mapping[str, str], binary: bool, timeout: float
    ) -> None:
        super().__init__()
        self._app = app
        self._scope = websocket_scope(url, headers)
        self._binary = binary
        self._timeout = timeout
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._accepted: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._server_closed = asyncio.Event()
        self._client_closed = False
        self._reject_status = 0
        self._reject_body = bytearray()

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._accepted = loop.create_future()
        self._to_app.put_nowait({"type": "websocket.connect"})
        self._task = loop.create_task(self._run_app(), name="hero-test-websocket")
        try:
            async with asyncio.timeout(self._timeout):
                await self._accepted
        except BaseException:
            await self.close(self._timeout, graceful=False)
            raise

    async def _run_app(self) -> None:
        try:
            await self._app(self._scope, self._to_app.get, self._from_app)
        except Exception as exc:
            logger.exception("the ASGI app failed on a WebSocket")
            self.error = f"The server failed: {type(exc).__name__}: {exc}"
        finally:
            if self._accepted is not None and not self._accepted.done():
                self._accepted.set_exception(
                    HubConnectionError(
                        "The server ended the WebSocket request without accepting it."
                    )
                )
            self._server_closed.set()
            self._incoming.put_nowait(None)

    async def _from_app(self, message: Message) -> None:
        kind = message["type"]
        accepted = self._accepted
        assert accepted is not None
        if kind == "websocket.accept":
            if not accepted.done():
                accepted.set_result(None)
        elif kind == "websocket.send":
            if self._server_closed.is_set() or self._client_closed:
                return
            data = message.get("bytes")
            if data is None:
                data = str(message.get("text") or "").encode("utf-8")
            self._incoming.put_nowait(bytes(data))
        elif kind == "websocket.close":
            code = int(message.get("code", 1000))
            if not accepted.done():
                accepted.set_exception(
                    HubConnectionError(
                        f"The server closed the WebSocket before accepting it (code {code}).", 403
                    )
                )
            elif code != 1000 and not self._client_closed:
                self.error = f"WebSocket closed with status code {code}"
            self._server_closed.set()
            self._incoming.put_nowait(None)
        elif kind == "websocket.http.response.start":
            self._reject_status = int(message["status"])
        elif kind == "websocket.http.response.body":
            self._reject_body += message.get("body", b"")
            if not message.get("more_body", False) and not accepted.done():
                body = self._reject_body.decode("utf-8", "replace")
                accepted.set_exception(
                    HubConnectionError(
                        f"WebSocket connection rejected with status code "
                        f"{self._reject_status}: {body}".rstrip(": "),
                        self._reject_status,
                    )
                )

    async def send(self, data: bytes) -> None:
        if self._server_closed.is_set() or self._client_closed:
            raise HubConnectionError("The WebSocket connection is closed.")
        if self._binary:
            self._to_app.put_nowait({"type": "websocket.receive", "bytes": data})
        else:
            self._to_app.put_nowait({"type": "websocket.receive", "text": data.decode("utf-8")})

    async def close(self, timeout: float, *, graceful: bool) -> None:
        if self._task is None:
            return
        if graceful:  # the server answers a Close message by closing the socket
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._server_closed.wait()
        if not self._client_closed:
            self._client_closed = True
            self._to_app.put_nowait({"type": "websocket.disconnect", "code": 1000})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._task)
        await cancel_task(self._task)
