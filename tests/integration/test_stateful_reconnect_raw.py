"""Stateful reconnect on the wire (checklist 55, 56), with a raw WebSocket peer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from hero.realtime import EndpointOptions, HubServer, HubServerOptions
from hero.realtime.testing import ConformanceHub
from hero.realtime.transports import ConnectionState, Lifecycle
from tests.integration.conftest import serve_in_process
from tests.support.servers import UNIT

RS = "\x1e"
TIMEOUT = 10 * UNIT


@pytest.fixture
def hub() -> HubServer:
    return HubServer(
        ConformanceHub,
        options=HubServerOptions(
            endpoint=EndpointOptions(allow_stateful_reconnects=True, disconnect_timeout=1.0 * UNIT)
        ),
    )


@pytest.fixture
async def base_url(hub: HubServer) -> AsyncIterator[str]:
    async with serve_in_process(hub, "/hub") as base:
        yield base


class Peer:
    """A JSON peer that keeps a record of every message it received."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []

    async def send(self, *messages: dict[str, Any]) -> None:
        await self.ws.send("".join(json.dumps(m) + RS for m in messages))

    async def next(self, predicate: Any = lambda m: m.get("type") != 6) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            while True:
                for message in self.messages:
                    if predicate(message):
                        self.messages.remove(message)
                        return message
                for record in str(await self.ws.recv()).split(RS)[:-1]:
                    self.messages.append(json.loads(record))


async def negotiate(base: str) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as http:
        response = await http.post(
            "/hub/negotiate", params={"negotiateVersion": "1", "useStatefulReconnect": "true"}
        )
    body = response.json()
    assert body["useStatefulReconnect"] is True
    return str(body["connectionToken"])


def lifecycle_of(hub: HubServer, token: str) -> Lifecycle:
    connection = hub.endpoint.connections.get(token)
    assert connection is not None
    return connection.lifecycle


def ws_url(base: str, token: str) -> str:
    return "ws" + base.removeprefix("http") + f"/hub?id={token}"


def invocation(invocation_id: str, target: str, *args: Any) -> dict[str, Any]:
    return {"type": 1, "invocationId": invocation_id, "target": target, "arguments": list(args)}


def completion_of(invocation_id: str) -> Any:
    return lambda m: m.get("type") == 3 and m.get("invocationId") == invocation_id


async def connect(base: str) -> tuple[str, Peer]:
    token = await negotiate(base)
    peer = Peer(await websockets.connect(ws_url(base, token), compression=None))
    await peer.ws.send('{"protocol":"json","version":2}' + RS)
    assert await asyncio.wait_for(peer.ws.recv(), TIMEOUT) == "{}" + RS
    return token, peer


async def test_checklist_55_resume_replays_unacknowledged_and_drops_duplicates(
    base_url: str,
) -> None:
    token, first = await connect(base_url)
    await first.send(invocation("1", "Add", 1, 2))
    assert (await first.next(completion_of("1")))["result"] == 3
    # The server acknowledges what it processed, about once a second (56).
    assert (await first.next(lambda m: m.get("type") == 8))["sequenceId"] == 1
    connection_id_probe = invocation("2", "ConnectionId")
    await first.send(connection_id_probe)
    connection_id = (await first.next(completion_of("2")))["result"]
    first.ws.transport.abort()  # a network drop: no close frame

    second = Peer(await websockets.connect(ws_url(base_url, token), compression=None))
    # No handshake on the new socket: the server starts with Sequence, then replays the
    # two completions we never acknowledged.
    assert await second.next() == {"type": 9, "sequenceId": 1}
    assert (await second.next())["invocationId"] == "1"
    assert (await second.next())["invocationId"] == "2"
    # We processed #1 and #2 but the server saw no Ack: replay from 1. Invocation "2" is a
    # duplicate (not dispatched again); "3" is new.
    await second.send(
        {"type": 8, "sequenceId": 2},
        {"type": 9, "sequenceId": 2},
        connection_id_probe,
        invocation("3", "ConnectionId"),
    )
    assert (await second.next(completion_of("3")))["result"] == connection_id
    assert not [m for m in second.messages if m.get("invocationId") == "2"]
    await second.ws.close()


async def test_checklist_56_sequence_beyond_received_closes_with_error(base_url: str) -> None:
    token, first = await connect(base_url)
    await first.send(invocation("1", "Echo", "x"))
    await first.next(completion_of("1"))
    first.ws.transport.abort()
    second = Peer(await websockets.connect(ws_url(base_url, token), compression=None))
    assert (await second.next())["type"] == 9
    await second.send({"type": 9, "sequenceId": 7})
    close = await second.next(lambda m: m.get("type") == 7)
    assert close == {
        "type": 7,
        "error": "Connection closed with an error.",
        "allowReconnect": True,
    }


async def test_an_unresumed_connection_is_gone_after_the_disconnect_timeout(
    base_url: str, hub: HubServer
) -> None:
    token, first = await connect(base_url)
    await first.send(invocation("1", "Echo", "x"))
    await first.next(completion_of("1"))
    first.ws.transport.abort()
    # Suspended, not gone: the hub still holds the connection while it may resume ...
    lifetime: Any = hub.lifetime
    assert lifetime.connection_count == 1
    # ... until the reaper ends it after the disconnect timeout.
    async with asyncio.timeout(TIMEOUT):
        while lifetime.connection_count:  # noqa: ASYNC110 - watching the server's state
            await asyncio.sleep(0.05)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(ws_url(base_url, token), compression=None)
    assert refused.value.response.status_code == 404


async def test_a_clean_close_ends_a_stateful_connection_for_good(
    base_url: str, hub: HubServer
) -> None:
    token, first = await connect(base_url)
    lifecycle = lifecycle_of(hub, token)
    await first.ws.close()  # a close frame: not a drop
    await asyncio.wait_for(lifecycle.until_disposed(), TIMEOUT)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(ws_url(base_url, token), compression=None)
    assert refused.value.response.status_code == 404


async def test_a_dropped_socket_suspends_the_connection_until_the_client_resumes(
    base_url: str, hub: HubServer
) -> None:
    token, first = await connect(base_url)
    lifecycle = lifecycle_of(hub, token)
    assert lifecycle.state is ConnectionState.ACTIVE
    first.ws.transport.abort()
    await asyncio.wait_for(lifecycle.until(ConnectionState.SUSPENDED), TIMEOUT)
    second = Peer(await websockets.connect(ws_url(base_url, token), compression=None))
    assert await second.next() == {"type": 9, "sequenceId": 1}
    assert lifecycle.state is ConnectionState.ACTIVE
    await second.send(invocation("1", "Add", 2, 3))
    assert (await second.next(completion_of("1")))["result"] == 5
    await second.ws.close()


async def test_a_resume_while_the_old_socket_is_still_open_retires_that_socket(
    base_url: str, hub: HubServer
) -> None:
    token, first = await connect(base_url)
    await first.send(invocation("1", "Add", 1, 2))
    assert (await first.next(completion_of("1")))["result"] == 3
    lifecycle = lifecycle_of(hub, token)
    second = Peer(await websockets.connect(ws_url(base_url, token), compression=None))
    assert await second.next() == {"type": 9, "sequenceId": 1}
    assert (await second.next())["invocationId"] == "1"  # replayed: never acknowledged
    assert lifecycle.state is ConnectionState.ACTIVE
    with pytest.raises(websockets.ConnectionClosed):
        async with asyncio.timeout(TIMEOUT):
            while True:  # the server let go of the first socket
                await first.ws.recv()
    await second.send(invocation("2", "Add", 2, 2))
    assert (await second.next(completion_of("2")))["result"] == 4
    await second.ws.close()


async def test_a_resumed_socket_can_itself_be_retired_by_a_later_resume(
    base_url: str, hub: HubServer
) -> None:
    token, first = await connect(base_url)
    await first.send(invocation("1", "Add", 1, 2))
    await first.next(completion_of("1"))
    lifecycle = lifecycle_of(hub, token)
    second = Peer(await websockets.connect(ws_url(base_url, token), compression=None))
    assert await second.next() == {"type": 9, "sequenceId": 1}
    third = Peer(await websockets.connect(ws_url(base_url, token), compression=None))
    assert await third.next() == {"type": 9, "sequenceId": 1}
    assert (await third.next())["invocationId"] == "1"
    assert lifecycle.state is ConnectionState.ACTIVE
    await third.send(invocation("2", "Add", 2, 2))
    assert (await third.next(completion_of("2")))["result"] == 4
    await third.ws.close()
