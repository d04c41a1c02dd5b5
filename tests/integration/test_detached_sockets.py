"""The hub's WebSocket path on hero's own uvicorn protocol class, where a socket outlives
its ASGI call (`DETACH_EXTENSION`) and reads go straight into the inbound channel
(`READ_FRAMES_EXTENSION`): a socket the hub is done with is still closed by the server, and
a flood of invocations through a small inbound channel pauses and resumes the socket without
losing or reordering anything."""

from __future__ import annotations

import asyncio
import json

import httpx
import websockets

from hero.realtime import EndpointOptions, HubServer, HubServerOptions
from hero.realtime.testing import ConformanceHub
from tests.integration.conftest import serve_in_process
from tests.support.servers import launch

RS = "\x1e"


async def _negotiate(base: str, **params: str) -> str:
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post(
            "/conformance/negotiate", params={"negotiateVersion": "1", **params}
        )
    token: str = response.json()["connectionToken"]
    return "ws" + base.removeprefix("http") + f"/conformance?id={token}"


async def test_a_socket_superseded_by_a_resume_is_closed_by_the_server(unit: float) -> None:
    """A stateful client that comes back on a new socket while its old one is still open
    (half-open, as after a network change): the old socket's pump stops, and the server
    closes that socket rather than leaving it open for the peer to notice."""
    hub = HubServer(
        ConformanceHub,
        options=HubServerOptions(
            endpoint=EndpointOptions(allow_stateful_reconnects=True, disconnect_timeout=30.0)
        ),
    )
    async with serve_in_process(hub, "/conformance") as base:
        url = await _negotiate(base, useStatefulReconnect="true")
        old = await websockets.connect(url, compression=None, ping_interval=None)
        await old.send('{"protocol":"json","version":2}' + RS)
        assert await asyncio.wait_for(old.recv(), 10 * unit) == "{}" + RS
        async with websockets.connect(url, compression=None, ping_interval=None) as new:
            first = (await asyncio.wait_for(new.recv(), 10 * unit)).split(RS)[0]
            assert json.loads(first)["type"] == 9  # Sequence: the resume was taken
            await asyncio.wait_for(old.wait_closed(), 10 * unit)
            await new.send(
                json.dumps({"type": 1, "invocationId": "1", "target": "Echo", "arguments": ["x"]})
                + RS
            )
            while True:
                for record in str(await asyncio.wait_for(new.recv(), 10 * unit)).split(RS)[:-1]:
                    if json.loads(record).get("type") == 3:
                        break
                else:
                    continue
                break


async def test_a_flood_through_a_small_inbound_channel_keeps_order(unit: float) -> None:
    """3000 invocations from a client that writes as fast as it can, into a 2 KiB inbound
    channel: the socket pauses whenever the channel is full and resumes as the hub reads;
    every Completion comes back, in order."""
    count = 3000
    hub = HubServer(
        ConformanceHub,
        options=HubServerOptions(endpoint=EndpointOptions(inbound_buffer_size=2048)),
    )
    async with serve_in_process(hub, "/conformance") as base:
        url = await _negotiate(base)
        async with websockets.connect(
            url, compression=None, ping_interval=None, max_size=None
        ) as client:
            await client.send('{"protocol":"json","version":1}' + RS)
            assert await asyncio.wait_for(client.recv(), 10 * unit) == "{}" + RS

            async def flood() -> None:
                for n in range(count):
                    invocation = {"type": 1, "invocationId": str(n), "target": "Add"}
                    await client.send(json.dumps({**invocation, "arguments": [n, 1]}) + RS)

            writer = asyncio.create_task(flood())
            seen: list[tuple[int, int]] = []
            async with asyncio.timeout(60 * unit):
                while len(seen) < count:
                    for record in str(await client.recv()).split(RS)[:-1]:
                        message = json.loads(record)
                        if message.get("type") == 3:
                            seen.append((int(message["invocationId"]), message["result"]))
            await writer
            assert seen == [(n, n + 1) for n in range(count)]


async def test_a_graceful_stop_closes_every_detached_socket_and_logs_no_error(
    unit: float,
) -> None:
    """SIGTERM to `hero conformance-server` with idle hub sockets open (each pump detached
    from its ASGI call): every client gets a close frame, the process exits on its own,
    and its log has no ERROR, traceback or task destroyed while pending."""
    with launch(
        ["-m", "hero", "conformance-server", "--host", "127.0.0.1", "--port", "0"]
    ) as server:
        url = "ws" + server.base_url.removeprefix("http") + "/conformance"
        clients = []
        for _ in range(20):
            client = await websockets.connect(url, compression=None, ping_interval=None)
            await client.send('{"protocol":"json","version":1}' + RS)
            assert await asyncio.wait_for(client.recv(), 10 * unit) == "{}" + RS
            clients.append(client)
        server.process.terminate()
        for client in clients:
            await asyncio.wait_for(client.wait_closed(), 15 * unit)
            assert client.close_code is not None  # a close frame came, not just EOF
        await asyncio.to_thread(server.process.wait, 15 * unit)
        log = server.log()
    bad = [
        line
        for line in log.splitlines()
        if line.startswith(("ERROR", "CRITICAL")) or "Traceback" in line or "destroyed" in line
    ]
    assert bad == [], log
