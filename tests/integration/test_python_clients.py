"""The unmodified Python SignalR clients against the real `hero conformance-server`.

`pysignalr` 1.3.3 is asyncio based and only speaks WebSockets; it negotiates with version 0
(no `negotiateVersion`), handshakes with version 1, and copies its HTTP header dict into the
`headers` of every invocation. `signalrcore` 1.0.2 is thread based; it negotiates with
version 0 and sends that same 0 as its handshake version; its callbacks are bridged here with
`threading.Event` waits.

Not covered, because of client library bugs (docs/protocol.md §11.9):
- `signalrcore` MessagePack over long polling: `LongPollingBinaryClient.__init__` calls
  `super(LongPollingTextClient, self)` (a TypeError), and the transport is never told it is
  binary anyway, so it uses the text client, which only delivers data up to a 0x1E record
  separator. MessagePack messages contain none, so after the `{}\x1e` handshake nothing more
  is ever delivered.
- `signalrcore` MessagePack over Server-Sent Events does not exist: SSE is Text-only, and the
  client silently falls back to JSON there (checked below).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from pysignalr.client import SignalRClient
from pysignalr.messages import CompletionMessage as PyCompletion
from pysignalr.protocol.json import JSONProtocol
from pysignalr.protocol.messagepack import MessagepackProtocol
from signalrcore.hub.base_hub_connection import BaseHubConnection
from signalrcore.hub_connection_builder import HubConnectionBuilder
from signalrcore.protocol.json_hub_protocol import JsonHubProtocol as ScJson
from signalrcore.protocol.messagepack_protocol import MessagePackHubProtocol as ScMsgpack
from signalrcore.types import HttpTransportType, HubProtocolEncoding

from tests.support.servers import RunningServer

PAYLOAD: dict[str, Any] = {
    "text": "héllo \u001e wörld",
    "numbers": [1, -2, 3.5],
    "nested": {"flag": True, "nothing": None},
}

# --------------------------------------------------------------------------------------
# pysignalr (asyncio)
# --------------------------------------------------------------------------------------


class PySession:
    """A running pysignalr client with awaitable invocations."""

    def __init__(self, client: SignalRClient, unit: float) -> None:
        self.client = client
        self.unit = unit
        self.errors: list[PyCompletion] = []

    async def invoke(self, method: str, *args: Any) -> PyCompletion:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[PyCompletion] = loop.create_future()

        async def on_completion(message: Any) -> None:
            if not done.done():
                done.set_result(message)

        await self.client.send(method, list(args), on_invocation=on_completion)
        return await asyncio.wait_for(done, 5 * self.unit)


@asynccontextmanager
async def pysignalr_session(
    hub_url: str, protocol: JSONProtocol | MessagepackProtocol, unit: float
) -> AsyncIterator[PySession]:
    client = SignalRClient(
        hub_url,
        protocol=protocol,
        headers={"X-Hero-Test": "python-clients"},
        connection_timeout=max(1, round(10 * unit)),
        retry_count=1,
    )
    session = PySession(client, unit)
    opened = asyncio.Event()

    async def on_open() -> None:
        opened.set()

    async def on_error(message: PyCompletion) -> None:
        session.errors.append(message)

    client.on_open(on_open)
    client.on_error(on_error)
    runner = asyncio.create_task(client.run(), name="pysignalr-run")
    waiter = asyncio.create_task(opened.wait())
    try:
        done, _ = await asyncio.wait(
            {runner, waiter}, timeout=10 * unit, return_when=asyncio.FIRST_COMPLETED
        )
        if runner in done:
            runner.result()  # raises the client's connection error
            pytest.fail("pysignalr stopped before the connection opened")
        assert waiter in done, "pysignalr did not connect in time"
        yield session
    finally:
        waiter.cancel()
        runner.cancel()
        await asyncio.gather(runner, waiter, return_exceptions=True)


PY_PROTOCOLS = [
    pytest.param(JSONProtocol, id="json"),
    pytest.param(MessagepackProtocol, id="messagepack"),
]


@pytest.mark.parametrize("protocol", PY_PROTOCOLS)
async def test_pysignalr_echo_and_add(
    conformance_server: RunningServer, unit: float, protocol: type
) -> None:
    hub_url = conformance_server.base_url + "/conformance"
    async with pysignalr_session(hub_url, protocol(), unit) as session:
        echoed = await session.invoke("Echo", PAYLOAD)
        assert echoed.error is None
        assert echoed.result == PAYLOAD

        added = await session.invoke("Add", 2, 40)
        assert added.error is None
        assert added.result == 42

        fractional = await session.invoke("Add", 0.5, 0.25)
        assert fractional.result == pytest.approx(0.75)

        # Method names match case-insensitively (checklist 12 of docs/protocol.md §11).
        lower = await session.invoke("echo", "x")
        assert lower.result == "x"
        assert session.errors == []


@pytest.mark.parametrize("protocol", PY_PROTOCOLS)
async def test_pysignalr_hub_error_reaches_the_client(
    conformance_server: RunningServer, unit: float, protocol: type
) -> None:
    hub_url = conformance_server.base_url + "/conformance"
    async with pysignalr_session(hub_url, protocol(), unit) as session:
        failed = await session.invoke("Fail", "room is full")
        assert failed.error == (
            "An unexpected error occurred invoking 'Fail' on the server. HubException: room is full"
        )
        # The connection survives the error.
        assert (await session.invoke("Add", 1, 1)).result == 2
        assert [e.error for e in session.errors] == [failed.error]


@pytest.mark.parametrize("protocol", PY_PROTOCOLS)
async def test_pysignalr_server_stream(
    conformance_server: RunningServer, unit: float, protocol: type
) -> None:
    hub_url = conformance_server.base_url + "/conformance"
    async with pysignalr_session(hub_url, protocol(), unit) as session:
        items: list[Any] = []
        finished: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def on_next(item: Any) -> None:
            items.append(item)

        async def on_complete(message: Any) -> None:
            if not finished.done():
                finished.set_result(message)

        await session.client.stream("Counter", [3, 0], on_next=on_next, on_complete=on_complete)
        completion = await asyncio.wait_for(finished, 5 * unit)
        assert completion.error is None
        assert items == [0, 1, 2]


# --------------------------------------------------------------------------------------
# signalrcore (threads)
# --------------------------------------------------------------------------------------


class ScSession:
    """A started signalrcore connection; invocations wait on threading.Events."""

    def __init__(self, connection: BaseHubConnection, unit: float) -> None:
        self.connection = connection
        self.unit = unit
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}
        self._results: dict[str, Any] = {}
        connection.on_error(self._on_error)

    def _store(self, invocation_id: str, message: Any) -> None:
        with self._lock:
            self._results[invocation_id] = message
            event = self._events.get(invocation_id)
        if event is not None:
            event.set()

    def _on_error(self, message: Any) -> None:
        invocation_id = getattr(message, "invocation_id", None)
        if invocation_id is not None:
            self._store(invocation_id, message)

    def invoke(self, method: str, *args: Any) -> Any:
        invocation_id = str(uuid.uuid4())
        event = threading.Event()
        with self._lock:
            self._events[invocation_id] = event
        self.connection.invoke(
            method,
            list(args),
            on_invocation=lambda message: self._store(invocation_id, message),
            invocation_id=invocation_id,
        )
        assert event.wait(5 * self.unit), f"no completion for {method} within {5 * self.unit}s"
        with self._lock:
            return self._results.pop(invocation_id)


@contextmanager
def signalrcore_session(
    hub_url: str,
    unit: float,
    *,
    encoding: HubProtocolEncoding | None = None,
    transport: HttpTransportType | None = None,
) -> Iterator[ScSession]:
    options: dict[str, Any] = {"headers": {"X-Hero-Test": "python-clients"}}
    if transport is not None:
        options["transport"] = transport
    builder = HubConnectionBuilder().with_url(hub_url, options=options)
    if encoding is not None:
        builder = builder.with_hub_protocol(encoding)
    connection = builder.build()
    opened = threading.Event()
    closed = threading.Event()
    connection.on_open(opened.set)
    connection.on_close(closed.set)
    session = ScSession(connection, unit)
    connection.start()
    try:
        assert opened.wait(10 * unit), "signalrcore did not complete its handshake in time"
        yield session
    finally:
        # signalrcore's stop() neither sends a Close message nor shuts its socket down: it
        # closes the socket and joins the receive thread, which stays blocked in recv() until
        # the server next writes (the 15 s keep-alive). So ask the server to end the
        # connection first (`Abort`: Close message, then the transport ends), which the
        # client handles by disposing itself; stop() is then immediate.
        if opened.is_set() and not closed.is_set():
            connection.send("Abort", [])
            assert closed.wait(10 * unit), "signalrcore did not see the server close"
        stopper = threading.Thread(target=connection.stop, daemon=True)
        stopper.start()
        stopper.join(10 * unit)
        assert not stopper.is_alive(), "signalrcore stop() did not return"


def _assert_echo_and_add(session: ScSession) -> None:
    echoed = session.invoke("Echo", PAYLOAD)
    assert echoed.error is None
    assert echoed.result == PAYLOAD

    added = session.invoke("Add", 2, 40)
    assert added.error is None
    assert added.result == 42

    failed = session.invoke("Add", "x", {})
    assert failed.error == "Failed to invoke 'Add' due to an error on the server."

    # Still usable after the binding error.
    assert session.invoke("Add", 1, 2).result == 3


@pytest.mark.parametrize(
    ("encoding", "protocol_type"),
    [
        pytest.param(None, ScJson, id="json"),
        pytest.param(HubProtocolEncoding.binary, ScMsgpack, id="messagepack"),
    ],
)
def test_signalrcore_websockets_echo_and_add(
    conformance_server: RunningServer,
    unit: float,
    encoding: HubProtocolEncoding | None,
    protocol_type: type,
) -> None:
    hub_url = conformance_server.base_url + "/conformance"
    with signalrcore_session(hub_url, unit, encoding=encoding) as session:
        protocol = session.connection.protocol
        assert type(protocol) is protocol_type
        # Negotiate version 0 (no `negotiateVersion`), reused as handshake version 0.
        assert protocol.version == 0
        _assert_echo_and_add(session)


@pytest.mark.parametrize(
    "transport",
    [
        pytest.param(HttpTransportType.long_polling, id="long-polling"),
        pytest.param(HttpTransportType.server_sent_events, id="server-sent-events"),
    ],
)
def test_signalrcore_http_transports_json_echo_and_add(
    conformance_server: RunningServer, unit: float, transport: HttpTransportType
) -> None:
    hub_url = conformance_server.base_url + "/conformance"
    with signalrcore_session(hub_url, unit, transport=transport) as session:
        assert type(session.connection.protocol) is ScJson
        assert session.connection.protocol.version == 0
        _assert_echo_and_add(session)


def test_signalrcore_messagepack_request_over_sse_falls_back_to_json(
    conformance_server: RunningServer, unit: float
) -> None:
    """SSE lists only `Text`, so asking for Binary there gives JSON (docs/protocol.md §2.3)."""
    hub_url = conformance_server.base_url + "/conformance"
    with signalrcore_session(
        hub_url,
        unit,
        encoding=HubProtocolEncoding.binary,
        transport=HttpTransportType.server_sent_events,
    ) as session:
        assert type(session.connection.protocol) is ScJson
        assert session.invoke("Echo", "over sse").result == "over sse"
