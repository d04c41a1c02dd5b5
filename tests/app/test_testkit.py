"""The public test kit: HubTestClient against a real ASGI app, in process, no sockets.

Every behaviour runs for both transports (long polling, WebSockets) and both hub protocols
(json, messagepack). Waits are bounded by multiples of UNIT; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, Literal

import pytest
from starlette.applications import Starlette

from hero.realtime import (
    ClientResultError,
    EndpointOptions,
    HubOptions,
    HubRoute,
    HubServer,
    HubServerOptions,
    Identity,
    hub_method,
)
from hero.realtime.testing import (
    ConformanceHub,
    HubConnectionError,
    HubInvocationError,
    HubTestClient,
    LifespanError,
    lifespan,
)
from hero.realtime.transports import TransportKind
from tests.support.servers import UNIT

TIMEOUT = 10 * UNIT
SHORT = 2 * UNIT

Transport = Literal["LongPolling", "WebSockets"]
Protocol = Literal["json", "messagepack"]
Kind = tuple[Transport, Protocol]

KINDS = [
    pytest.param(("LongPolling", "json"), id="longpolling-json"),
    pytest.param(("LongPolling", "messagepack"), id="longpolling-messagepack"),
    pytest.param(("WebSockets", "json"), id="websockets-json"),
    pytest.param(("WebSockets", "messagepack"), id="websockets-messagepack"),
]
TRANSPORTS = ["LongPolling", "WebSockets"]


class ProbeHub(ConformanceHub):
    """ConformanceHub plus probes for what the conformance surface cannot show a client."""

    stream_cancelled: asyncio.Event
    client_result_failures: asyncio.Queue[str]

    @hub_method
    async def endless(self) -> AsyncIterator[int]:
        """Streams forever; records that the server-side generator was cancelled."""
        value = 0
        try:
            while True:
                yield value
                value += 1
                await asyncio.sleep(0.005)
        finally:
            self.stream_cancelled.set()

    @hub_method
    async def ask_client_error(self, method: str, arg: Any) -> str:
        """Returns the text of the ClientResultError a client answer produced."""
        try:
            await self.clients.caller.invoke(method, arg)
        except ClientResultError as exc:
            return str(exc)
        return "no error"

    @hub_method
    async def ask_and_record(self, method: str) -> None:
        """Awaits a client result; records the ClientResultError text, if any."""
        try:
            await self.clients.caller.invoke(method)
        except ClientResultError as exc:
            self.client_result_failures.put_nowait(str(exc))


def hub_app(server: HubServer, path: str = "/conformance") -> Starlette:
    """The hub mounted in a Starlette app whose lifespan runs the server's."""

    @contextlib.asynccontextmanager
    async def app_lifespan(_: Starlette) -> AsyncIterator[None]:
        async with server.lifespan():
            yield

    return Starlette(routes=[HubRoute(path, server)], lifespan=app_lifespan)


@pytest.fixture
def probe_event() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
def failures() -> asyncio.Queue[str]:
    return asyncio.Queue()


def probe_server(
    probe_event: asyncio.Event, failures: asyncio.Queue[str], options: HubOptions | None = None
) -> HubServer:
    def factory() -> ProbeHub:
        hub = ProbeHub()
        hub.stream_cancelled = probe_event
        hub.client_result_failures = failures
        return hub

    return HubServer(
        ProbeHub,
        hub_factory=factory,
        options=HubServerOptions(hub=options or HubOptions()),
    )


@pytest.fixture
async def app(probe_event: asyncio.Event, failures: asyncio.Queue[str]) -> AsyncIterator[Starlette]:
    application = hub_app(probe_server(probe_event, failures))
    async with lifespan(application):
        yield application


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Kind:
    value: Kind = request.param
    return value


Connect = Callable[..., Awaitable[HubTestClient]]


@pytest.fixture
async def connect(app: Starlette, kind: Kind) -> AsyncIterator[Connect]:
    """Start clients of the current transport/protocol; all are stopped at teardown."""
    clients: list[HubTestClient] = []

    async def make(**kwargs: Any) -> HubTestClient:
        client = HubTestClient(
            app, "/conformance", transport=kind[0], protocol=kind[1], timeout=TIMEOUT, **kwargs
        )
        await client.start()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.stop()


async def numbers(*values: float) -> AsyncIterator[float]:
    for value in values:
        yield value


async def assert_nothing_buffered(client: HubTestClient, target: str, marker: str) -> None:
    """Prove `client` got no `target` message: a later `marker` broadcast arrived first."""
    await client.invoke("Broadcast", marker, "mark")
    assert await client.next_message(marker) == ("mark",)
    with pytest.raises(TimeoutError):
        await client.next_message(target, timeout=0)


# -- invocations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["hi", 42, 1.5, None, True, [1, "a", None], {"k": [1, 2], "n": {"x": "y"}}]
)
async def test_echo(connect: Connect, value: Any) -> None:
    client = await connect()
    assert await client.invoke("Echo", value) == value


async def test_add_and_case_insensitive_target(connect: Connect) -> None:
    client = await connect()
    assert await client.invoke("Add", 2, 3) == 5
    assert await client.invoke("add", 1.5, 2) == 3.5


async def test_connection_id_matches_the_server(connect: Connect) -> None:
    client = await connect()
    assert client.connection_id
    assert await client.invoke("ConnectionId") == client.connection_id


async def test_fail_raises_with_the_server_text(connect: Connect) -> None:
    client = await connect()
    with pytest.raises(HubInvocationError) as info:
        await client.invoke("Fail", "boom")
    assert str(info.value) == (
        "An unexpected error occurred invoking 'Fail' on the server. HubException: boom"
    )


async def test_crash_hides_the_detail(connect: Connect) -> None:
    client = await connect()
    with pytest.raises(HubInvocationError) as info:
        await client.invoke("Crash")
    assert str(info.value) == "An unexpected error occurred invoking 'Crash' on the server."


async def test_unknown_method(connect: Connect) -> None:
    client = await connect()
    with pytest.raises(HubInvocationError, match=r"^Unknown hub method 'Nope'$"):
        await client.invoke("Nope")


async def test_concurrent_invocations_keep_working(connect: Connect) -> None:
    """Many sends while a poll is pending: no deadlock, every completion is matched."""
    client = await connect()
    results = await asyncio.gather(*(client.invoke("Echo", n) for n in range(25)))
    assert results == list(range(25))


async def test_send_is_non_blocking(connect: Connect) -> None:
    client = await connect()
    assert await client.send("Broadcast", "Receive", "fire-and-forget") is None
    assert await client.next_message("Receive") == ("fire-and-forget",)


# -- streams ------------------------------------------------------------------------------


async def test_counter_stream(connect: Connect) -> None:
    client = await connect()
    assert [item async for item in client.stream("Counter", 5, 0)] == [0, 1, 2, 3, 4]


async def test_empty_stream(connect: Connect) -> None:
    client = await connect()
    assert [item async for item in client.stream("Counter", 0, 0)] == []


async def test_breaking_out_of_a_stream_cancels_it(
    connect: Connect, probe_event: asyncio.Event
) -> None:
    client = await connect()
    received = []
    async for item in client.stream("Endless"):
        received.append(item)
        if len(received) == 3:
            break
    assert received == [0, 1, 2]
    async with asyncio.timeout(TIMEOUT):
        await probe_event.wait()
    assert await client.invoke("Echo", "still alive") == "still alive"


async def test_breaking_out_of_counter_keeps_the_connection(connect: Connect) -> None:
    client = await connect()
    async with contextlib.aclosing(client.stream("Counter", 10_000, 1)) as items:
        async for item in items:
            if item == 1:
                break
    assert await client.invoke("Add", 1, 1) == 2


async def test_stream_error_and_wrong_invocation_kind(connect: Connect) -> None:
    client = await connect()
    with pytest.raises(HubInvocationError, match="non-streaming 'Echo' method"):
        async for _ in client.stream("Echo", 1):
            pass
    with pytest.raises(HubInvocationError, match="streaming 'Counter' method"):
        await client.invoke("Counter", 1, 0)


async def test_sum_upload_stream(connect: Connect) -> None:
    client = await connect()
    assert await client.invoke("Sum", numbers(1, 2, 3.5)) == 6.5
    assert await client.invoke("Sum", numbers()) == 0


async def test_failing_upload_stream_reaches_the_hub_method(connect: Connect) -> None:
    async def broken() -> AsyncIterator[float]:
        yield 1
        raise ValueError("source broke")

    client = await connect()
    with pytest.raises(HubInvocationError) as info:
        await client.invoke("Sum", broken())
    assert "ValueError: source broke" in str(info.value)


# -- client results -------------------------------------------------------------------------


async def test_ask_client_sync_handler(connect: Connect) -> None:
    client = await connect()
    client.on("getvalue", lambda x: x * 2)
    assert await client.invoke("AskClient", "GetValue", 21) == 42


async def test_ask_client_async_handler(connect: Connect) -> None:
    client = await connect()

    async def answer(arg: str) -> dict[str, str]:
        return {"got": arg}

    client.on("Answer", answer)
    assert await client.invoke("AskClient", "Answer", "x") == {"got": "x"}
    assert await client.next_message("Answer") == ("x",)


async def test_ask_client_none_is_a_result(connect: Connect) -> None:
    client = await connect()
    client.on("Nothing", lambda arg: None)
    assert await client.invoke("AskClient", "Nothing", 1) is None


async def test_client_result_error_texts(connect: Connect) -> None:
    client = await connect()

    def broken(arg: Any) -> Any:
        raise ValueError(f"cannot answer {arg}")

    client.on("Broken", broken)
    client.on("Twice", lambda arg: 1)
    client.on("Twice", lambda arg: 2)
    assert await client.invoke("AskClientError", "Broken", 7) == "ValueError: cannot answer 7"
    assert await client.invoke("AskClientError", "Missing", 7) == "Client didn't provide a result."
    assert await client.invoke("AskClientError", "Twice", 7) == "Client provided multiple results."


async def test_ask_client_error_reaches_the_caller(connect: Connect) -> None:
    client = await connect()
    with pytest.raises(HubInvocationError) as info:
        await client.invoke("AskClient", "Missing", 1)
    assert str(info.value) == (
        "An unexpected error occurred invoking 'AskClient' on the server. "
        "HubException: Client didn't provide a result."
    )

    def broken(arg: Any) -> Any:
        raise KeyError(arg)

    client.on("Broken", broken)
    with pytest.raises(HubInvocationError) as info:
        await client.invoke("AskClient", "Broken", "k")
    assert str(info.value).endswith("HubException: KeyError: 'k'")


# -- fan-out -----------------------------------------------------------------------------


async def test_broadcast_between_two_clients(connect: Connect) -> None:
    alice = await connect()
    bob = await connect()
    await alice.invoke("Broadcast", "Receive", {"text": "hi"})
    assert await alice.next_message("Receive") == ({"text": "hi"},)
    assert await bob.next_message("receive") == ({"text": "hi"},)


async def test_handlers_see_broadcasts_in_order(connect: Connect) -> None:
    alice = await connect()
    bob = await connect()
    seen: list[Any] = []
    done = asyncio.Event()

    async def on_async(value: Any) -> None:
        if value == 2:
            done.set()

    bob.on("Receive", seen.append)
    bob.on("RECEIVE", on_async)
    for value in range(3):
        await alice.invoke("Broadcast", "Receive", value)
    async with asyncio.timeout(TIMEOUT):
        await done.wait()
    assert seen == [0, 1, 2]


async def test_send_to_others(connect: Connect) -> None:
    alice = await connect()
    bob = await connect()
    await alice.invoke("SendToOthers", "Note", "for bob")
    assert await bob.next_message("Note") == ("for bob",)
    await assert_nothing_buffered(alice, "Note", "Marker")


async def test_group_messages(connect: Connect) -> None:
    alice = await connect()
    bob = await connect()
    await alice.invoke("JoinGroup", "room")
    await bob.invoke("SendToGroup", "room", "Room", "first")
    assert await alice.next_message("Room") == ("first",)
    await assert_nothing_buffered(bob, "Room", "Marker")

    await alice.invoke("LeaveGroup", "room")
    await bob.invoke("SendToGroup", "room", "Room", "second")
    await assert_nothing_buffered(alice, "Room", "Marker")


async def test_next_message_times_out(connect: Connect) -> None:
    client = await connect()
    with pytest.raises(TimeoutError):
        await client.next_message("Never", timeout=0.05 * UNIT)


# -- closing -------------------------------------------------------------------------------


async def test_abort_closes_without_error(connect: Connect) -> None:
    client = await connect()
    await client.send("Abort")
    async with asyncio.timeout(TIMEOUT):
        await client.closed.wait()
    assert client.close_error is None
    assert client.close_allow_reconnect is False
    with pytest.raises(HubConnectionError):
        await client.invoke("Echo", 1)
    with pytest.raises(HubConnectionError):
        await client.next_message("Receive", timeout=SHORT)


async def test_oversized_message_closes_with_a_reconnectable_error(connect: Connect) -> None:
    client = await connect()
    with pytest.raises(HubConnectionError, match="underlying connection being closed"):
        await client.invoke("Echo", "x" * 40_000)
    assert client.closed.is_set()
    assert client.close_error == "Connection closed with an error."
    assert client.close_allow_reconnect is True


async def test_pending_invocation_fails_when_the_connection_closes(kind: Kind) -> None:
    # A short drain: the server waits for the stuck AskClient only briefly (see the xfail below).
    server = probe_server(
        asyncio.Event(), asyncio.Queue(), HubOptions(invocation_drain_timeout=0.05 * UNIT)
    )
    application = hub_app(server)
    started = asyncio.Event()

    async def never_answers(arg: Any) -> Any:
        started.set()
        await asyncio.Event().wait()

    async with lifespan(application):
        client = HubTestClient(
            application, "/conformance", transport=kind[0], protocol=kind[1], timeout=TIMEOUT
        )
        await client.start()
        client.on("Slow", never_answers)
        pending = asyncio.ensure_future(client.invoke("AskClient", "Slow", 1))
        async with asyncio.timeout(TIMEOUT):
            await started.wait()
        await client.stop()
        with pytest.raises(HubConnectionError, match="underlying connection being closed"):
            await pending


async def test_closing_fails_pending_client_results_promptly(
    app: Starlette, failures: asyncio.Queue[str]
) -> None:
    started = asyncio.Event()

    async def never_answers() -> Any:
        started.set()
        await asyncio.Event().wait()

    client = HubTestClient(app, "/conformance", timeout=TIMEOUT)
    await client.start()
    client.on("Slow", never_answers)
    await client.send("AskAndRecord", "Slow")
    async with asyncio.timeout(TIMEOUT):
        await started.wait()
    stopping = asyncio.ensure_future(client.stop())
    try:
        async with asyncio.timeout(SHORT):
            text = await failures.get()
        assert text == f"Connection '{client.connection_id}' disconnected."
    finally:
        await stopping


async def test_off_removes_handlers(connect: Connect) -> None:
    client = await connect()
    client.on("Value", lambda: 1)
    client.off("value")
    with pytest.raises(HubInvocationError):
        await client.invoke("AskClient", "Value", None)
    assert await client.invoke("AskClientError", "Value", None) == (
        "Client didn't provide a result."
    )


async def test_stop_is_idempotent_and_closes(kind: Kind, app: Starlette) -> None:
    client = HubTestClient(app, "/conformance", transport=kind[0], protocol=kind[1])
    await client.stop()  # before start: nothing to do
    assert client.closed.is_set()
    with pytest.raises(RuntimeError):
        await client.start()

    async with HubTestClient(
        app, "/conformance", transport=kind[0], protocol=kind[1], timeout=TIMEOUT
    ) as client:
        assert await client.invoke("Echo", 1) == 1
    assert client.closed.is_set()
    assert client.close_error is None
    await client.stop()


async def test_stop_ends_the_server_connection(kind: Kind, app: Starlette) -> None:
    watcher = HubTestClient(app, "/conformance", transport=kind[0], protocol=kind[1])
    leaving = HubTestClient(app, "/conformance", transport=kind[0], protocol=kind[1])
    async with watcher:
        await leaving.start()
        await watcher.invoke("JoinGroup", "g")
        await leaving.invoke("JoinGroup", "g")
        await leaving.stop()
        # The server dropped the connection from the group: only the watcher gets this.
        await watcher.invoke("SendToGroup", "g", "G", 1)
        assert await watcher.next_message("G") == (1,)


# -- start errors, authentication, options ---------------------------------------------------

_Scope = MutableMapping[str, Any]


def _bearer(scope: _Scope, *, allow_query: bool) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization" and value.startswith(b"Bearer "):
            return bytes(value[7:]).decode()
    if allow_query:
        for part in scope.get("query_string", b"").decode().split("&"):
            key, _, value = part.partition("=")
            if key == "access_token":
                return value
    return None


def auth_app(*, allow_query: bool, seen: list[str] | None = None) -> Starlette:
    async def authenticate(scope: _Scope) -> Identity | None:
        if seen is not None:
            seen.append(scope.get("query_string", b"").decode())
        token = _bearer(scope, allow_query=allow_query)
        return Identity(user_id=token[5:]) if token and token.startswith("good-") else None

    server = HubServer(
        ConformanceHub,
        authenticate=authenticate,
        options=HubServerOptions(endpoint=EndpointOptions(require_authentication=True)),
    )
    return hub_app(server)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_access_token_and_query(transport: Transport) -> None:
    seen: list[str] = []
    application = auth_app(allow_query=True, seen=seen)
    async with (
        lifespan(application),
        HubTestClient(
            application,
            "/conformance",
            transport=transport,
            access_token="good-alice",
            query={"room": "lobby"},
            timeout=TIMEOUT,
        ) as client,
    ):
        assert await client.invoke("Echo", "authorized") == "authorized"
    assert seen
    assert all("room=lobby" in query for query in seen)
    assert "negotiateVersion=1" in seen[0]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_negotiate_401(transport: Transport) -> None:
    application = auth_app(allow_query=True)
    async with lifespan(application):
        client = HubTestClient(
            application, "/conformance", transport=transport, access_token="bad", timeout=TIMEOUT
        )
        with pytest.raises(HubConnectionError, match="Status code '401'") as info:
            await client.start()
        assert info.value.status_code == 401
        assert client.closed.is_set()


async def test_websocket_rejection_carries_the_status() -> None:
    """Browsers put the token in the query for WebSockets; a header-only server refuses."""
    application = auth_app(allow_query=False)
    async with lifespan(application):
        client = HubTestClient(
            application,
            "/conformance",
            transport="WebSockets",
            access_token="good-alice",
            timeout=TIMEOUT,
        )
        with pytest.raises(HubConnectionError, match="status code 401") as info:
            await client.start()
        assert info.value.status_code == 401


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_negotiate_error_text(transport: Transport) -> None:
    server = HubServer(
        ConformanceHub,
        options=HubServerOptions(endpoint=EndpointOptions(minimum_negotiate_version=2)),
    )
    application = hub_app(server)
    async with lifespan(application):
        client = HubTestClient(application, "/conformance", transport=transport, timeout=TIMEOUT)
        with pytest.raises(HubConnectionError) as info:
            await client.start()
        assert str(info.value) == (
            "The client requested version '1', but the server does not support this version."
        )
        assert info.value.status_code is None


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_handshake_error_text(transport: Transport) -> None:
    server = HubServer(
        ConformanceHub,
        options=HubServerOptions(hub=HubOptions(supported_protocols=("json",))),
    )
    application = hub_app(server)
    async with lifespan(application):
        client = HubTestClient(
            application,
            "/conformance",
            transport=transport,
            protocol="messagepack",
            timeout=TIMEOUT,
        )
        with pytest.raises(HubConnectionError) as info:
            await client.start()
        assert str(info.value) == (
            "Server returned handshake error: The protocol 'messagepack' is not supported."
        )


async def test_transport_not_offered() -> None:
    server = HubServer(
        ConformanceHub,
        options=HubServerOptions(
            endpoint=EndpointOptions(transports=(TransportKind.LONG_POLLING,))
        ),
    )
    application = hub_app(server)
    async with lifespan(application):
        client = HubTestClient(application, "/conformance", transport="WebSockets")
        with pytest.raises(HubConnectionError, match="does not offer the 'WebSockets'"):
            await client.start()


async def test_wrong_path_is_a_404() -> None:
    application = hub_app(HubServer(ConformanceHub))
    async with lifespan(application):
        client = HubTestClient(application, "/elsewhere", timeout=TIMEOUT)
        with pytest.raises(HubConnectionError) as info:
            await client.start()
        assert info.value.status_code == 404


# -- lifespan helper and FastAPI -------------------------------------------------------------


async def test_lifespan_helper_runs_startup_and_shutdown() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def app_lifespan(_: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    application = Starlette(lifespan=app_lifespan)
    async with lifespan(application):
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


async def test_lifespan_helper_reports_startup_failure() -> None:
    @contextlib.asynccontextmanager
    async def app_lifespan(_: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    application = Starlette(lifespan=app_lifespan)
    with pytest.raises(LifespanError, match="no database"):
        async with lifespan(application):
            pytest.fail("startup failed; the block must not run")


async def test_hub_server_works_without_lifespan() -> None:
    server = HubServer(ConformanceHub)
    application = Starlette(routes=[HubRoute("/conformance", server)])
    try:
        async with HubTestClient(application, "/conformance", timeout=TIMEOUT) as client:
            assert await client.invoke("Echo", "lazy") == "lazy"
    finally:
        await server.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_fastapi_example(transport: Transport) -> None:
    """How an application's own test looks: the hub mounted in a FastAPI app."""
    from fastapi import FastAPI

    server = HubServer(ConformanceHub)

    @contextlib.asynccontextmanager
    async def app_lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with server.lifespan():
            yield

    application = FastAPI(lifespan=app_lifespan)

    @application.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    application.router.routes.append(HubRoute("/hub", server))

    async with (
        lifespan(application),
        HubTestClient(application, "/hub", transport=transport, timeout=TIMEOUT) as client,
    ):
        assert await client.invoke("Echo", {"from": "fastapi"}) == {"from": "fastapi"}
