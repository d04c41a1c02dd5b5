"""Requests to a real ConnectionEndpoint move the connection through its lifecycle states.

Driven in memory: httpx over ASGI for negotiate and polls, and a WebSocket request whose
`receive` the test feeds, so it can hold an upgrade between its claim and its accept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hero.realtime.connections import ConnectionEndpoint
from hero.realtime.testing.asgi import websocket_scope
from hero.realtime.transports import Connection, ConnectionState, TransportKind

S = ConnectionState
WAIT = 5.0


async def read_to_the_end(connection: Connection) -> None:
    while await connection.receive() is not None:
        pass


@pytest.fixture
async def endpoint() -> AsyncIterator[ConnectionEndpoint]:
    app = ConnectionEndpoint(read_to_the_end)
    try:
        yield app
    finally:
        await app.aclose()


@pytest.fixture
async def http(endpoint: ConnectionEndpoint) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=endpoint)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def negotiated(endpoint: ConnectionEndpoint, http: httpx.AsyncClient) -> Connection:
    response = await http.post("/hub/negotiate", params={"negotiateVersion": "1"})
    connection = endpoint.connections.get(response.json()["connectionToken"])
    assert connection is not None
    assert connection.lifecycle.state is S.NEGOTIATED
    return connection


async def test_polls_move_a_connection_between_waiting_and_active(
    endpoint: ConnectionEndpoint, http: httpx.AsyncClient
) -> None:
    connection = await negotiated(endpoint, http)
    params = {"id": connection.connection_token}
    assert (await http.get("/hub", params=params)).status_code == 200  # the first poll
    assert connection.lifecycle.state is S.WAITING_FOR_POLL
    first = asyncio.create_task(http.get("/hub", params=params))
    await asyncio.wait_for(connection.lifecycle.until(S.ACTIVE), WAIT)
    second = asyncio.create_task(http.get("/hub", params=params))
    assert (await asyncio.wait_for(first, WAIT)).status_code == 204  # superseded
    assert connection.lifecycle.state is S.ACTIVE  # the second poll is pending
    assert (await http.delete("/hub", params=params)).status_code == 202
    assert connection.lifecycle.state is S.DISPOSED
    assert (await asyncio.wait_for(second, WAIT)).status_code == 204
    assert connection.lifecycle.requests == 0


async def test_an_upgrade_overtaken_by_a_first_poll_lets_the_poll_keep_the_connection(
    endpoint: ConnectionEndpoint, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    connection = await negotiated(endpoint, http)
    token = connection.connection_token
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = websocket_scope(f"ws://test/hub?id={token}", {})
    upgrade = asyncio.create_task(endpoint(scope, incoming.get, send))
    await asyncio.sleep(0)  # the upgrade claims the connection, then waits for its connect
    assert connection.lifecycle.requests == 1
    assert (await http.get("/hub", params={"id": token})).status_code == 200
    assert connection.lifecycle.state is S.WAITING_FOR_POLL
    with caplog.at_level(logging.WARNING):
        await incoming.put({"type": "websocket.connect"})
        await asyncio.wait_for(upgrade, WAIT)
    assert sent == [{"type": "websocket.accept"}]  # accepted, then let go: nothing pumped
    assert connection.transport is TransportKind.LONG_POLLING
    assert (connection.lifecycle.state, connection.lifecycle.requests) == (S.WAITING_FOR_POLL, 0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
