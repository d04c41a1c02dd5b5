"""A client that stops reading is disconnected and never slows the others (real server)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from typing import Any

import pytest
import websockets

from hero.realtime import EndpointOptions, HubServer, HubServerOptions, hub_method
from hero.realtime.runtime import ConnectionObserver, HubConnection
from hero.realtime.testing import ConformanceHub
from tests.integration.conftest import serve_in_process
from tests.support.servers import UNIT

RS = "\x1e"
MESSAGES = 1_000
PAYLOAD = base64.b64encode(os.urandom(6_144)).decode()  # 8 KB, incompressible
"""8 MB in all: past the 128 KB send queue plus what the kernel buffers on loopback (the
server's send buffer autotunes up to 4 MB; the stuck client's receive buffer is made small)."""


class Drops(ConnectionObserver):
    def __init__(self) -> None:
        self.dropped: asyncio.Queue[str] = asyncio.Queue()

    def slow_consumer(self, connection: HubConnection) -> None:
        self.dropped.put_nowait(connection.connection_id)


async def open_client(url: str, *, stuck: bool = False) -> tuple[Any, str]:
    options: dict[str, Any] = {}
    if stuck:
        # A small receive buffer, so the server's writes back up soon after we stop reading.
        host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        options = {"sock": sock}
    # No permessage-deflate: the payloads must cost the socket what they weigh.
    ws = await websockets.connect(url, max_size=None, compression=None, **options)
    await ws.send('{"protocol":"json","version":1}' + RS)
    assert await asyncio.wait_for(ws.recv(), 10 * UNIT) == "{}" + RS
    await ws.send(
        json.dumps({"type": 1, "target": "ConnectionId", "arguments": [], "invocationId": "id"})
        + RS
    )
    connection_id = await result_of(ws, "id")
    await ws.send(
        json.dumps({"type": 1, "target": "JoinGroup", "arguments": ["g"], "invocationId": "join"})
        + RS
    )
    await result_of(ws, "join")
    if stuck:
        ws.transport.pause_reading()  # the client stops reading its socket from here on
    return ws, connection_id


async def result_of(ws: Any, invocation_id: str) -> Any:
    async with asyncio.timeout(10 * UNIT):
        while True:
            for record in str(await ws.recv()).split(RS)[:-1]:
                message = json.loads(record)
                if message.get("type") == 3 and message.get("invocationId") == invocation_id:
                    return message.get("result")


@pytest.mark.parametrize(
    ("queue_bytes", "send_timeout"),
    [
        pytest.param(128 * 1024, 30.0, id="send-queue-full"),
        pytest.param(64 * 1024 * 1024, 0.5, id="write-blocked-past-send-timeout"),
    ],
)
async def test_a_client_that_stops_reading_is_dropped_and_others_get_everything(
    queue_bytes: int, send_timeout: float
) -> None:
    """Either bound ends the stuck connection: hero's own send queue filling up, or one
    write to the socket staying blocked longer than the transport send timeout."""
    drops = Drops()
    hub = HubServer(
        ConformanceHub,
        options=HubServerOptions(
            endpoint=EndpointOptions(
                outbound_buffer_size=queue_bytes, transport_send_timeout=send_timeout * UNIT
            )
        ),
        connection_observer=drops,
    )
    async with serve_in_process(hub, "/hub") as base:
        url = "ws" + base.removeprefix("http") + "/hub"
        stuck, stuck_id = await open_client(url, stuck=True)
        healthy, _ = await open_client(url)
        publisher, _ = await open_client(url)
        received = 0

        async def read_healthy() -> None:
            nonlocal received
            while received < MESSAGES:
                for record in str(await healthy.recv()).split(RS)[:-1]:
                    message = json.loads(record)
                    if message.get("type") == 1 and message.get("target") == "Tick":
                        received += 1

        reader = asyncio.create_task(read_healthy())
        try:
            for index in range(MESSAGES):
                body = {
                    "type": 1,
                    "target": "SendToGroup",
                    "arguments": ["g", "Tick", PAYLOAD],
                    "invocationId": f"p{index}",
                }
                await publisher.send(json.dumps(body) + RS)
                await result_of(publisher, f"p{index}")
            async with asyncio.timeout(20 * UNIT):
                await reader
                dropped = await drops.dropped.get()
        finally:
            reader.cancel()
        assert received == MESSAGES
        assert dropped == stuck_id
        assert not hub.lifetime.is_local(stuck_id)  # type: ignore[attr-defined]
        # The healthy connection still works after the drop.
        await healthy.send(
            json.dumps({"type": 1, "target": "Echo", "arguments": [1], "invocationId": "e"}) + RS
        )
        assert await result_of(healthy, "e") == 1
        stuck.transport.abort()  # it never reads again: no closing handshake
        for ws in (healthy, publisher):
            await ws.close()


class Watch(Drops):
    def __init__(self) -> None:
        super().__init__()
        self.connections: dict[str, HubConnection] = {}

    def connected(self, connection: HubConnection) -> None:
        self.connections[connection.connection_id] = connection


class EphemeralHub(ConformanceHub):
    @hub_method
    async def send_ephemeral(self, name: str, target: str, arg: Any) -> None:
        await self.clients.group(name).send(target, arg, ephemeral=True)


async def test_ephemeral_events_are_dropped_for_a_client_that_is_behind_not_the_client() -> None:
    """Per message class (docs/reliability.md): a flood of ephemeral events (typing,
    presence) to a client that stopped reading is dropped for it — it is not disconnected,
    and everyone else gets every event; the first durable send that overflows its queue
    then disconnects it, so it resyncs."""
    drops = Watch()
    hub = HubServer(
        EphemeralHub,
        options=HubServerOptions(endpoint=EndpointOptions(outbound_buffer_size=128 * 1024)),
        connection_observer=drops,
    )
    async with serve_in_process(hub, "/hub") as base:
        url = "ws" + base.removeprefix("http") + "/hub"
        stuck, stuck_id = await open_client(url, stuck=True)
        healthy, _ = await open_client(url)
        publisher, _ = await open_client(url)
        received: dict[str, int] = {"Typing": 0, "Tick": 0}

        async def read_healthy(target: str, count: int) -> None:
            while received[target] < count:
                for record in str(await healthy.recv()).split(RS)[:-1]:
                    message = json.loads(record)
                    if message.get("type") == 1 and message.get("target") in received:
                        received[message["target"]] += 1

        async def publish(method: str, target: str, index: int) -> None:
            body = {
                "type": 1,
                "target": method,
                "arguments": ["g", target, PAYLOAD],
                "invocationId": f"{target}{index}",
            }
            await publisher.send(json.dumps(body) + RS)
            await result_of(publisher, f"{target}{index}")

        reader = asyncio.create_task(read_healthy("Typing", MESSAGES))
        try:
            for index in range(MESSAGES):  # 8 MB of ephemeral events
                await publish("SendEphemeral", "Typing", index)
            async with asyncio.timeout(20 * UNIT):
                await reader
        finally:
            reader.cancel()
        assert received["Typing"] == MESSAGES
        assert drops.dropped.empty()  # the stuck client was not disconnected ...
        assert hub.lifetime.is_local(stuck_id)  # type: ignore[attr-defined]
        # ... its events were dropped for it instead.
        assert drops.connections[stuck_id].ephemeral_dropped > 0

        reader = asyncio.create_task(read_healthy("Tick", MESSAGES))
        try:
            for index in range(MESSAGES):  # durable ones: these overflow its queue
                await publish("SendToGroup", "Tick", index)
            async with asyncio.timeout(20 * UNIT):
                await reader
                dropped = await drops.dropped.get()
        finally:
            reader.cancel()
        assert received["Tick"] == MESSAGES
        assert dropped == stuck_id
        stuck.transport.abort()
        for ws in (healthy, publisher):
            await ws.close()
