"""One connection's input never freezes the others (docs/reliability.md, fairness).

A WebSocket message may carry many hub messages. Before the read loop yielded, one frame of
~80 000 pings kept every other connection waiting until the last was handled; now a second
connection keeps completing round trips while the batch is worked through. The WebSocket
message size is bounded from the hub's 32 KB message limit (1 MiB), not 16 MiB.
"""

from __future__ import annotations

import asyncio

from hero.platform.http_server import websocket_max_size
from tests.integration.raw_peer import MAX_MESSAGE_SIZE, RawPeer, assert_healthy, record
from tests.support.servers import RunningServer

FRAMES = 4
"""Frames of pings sent back to back, the last one ending with an Echo invocation."""
FEWEST_ROUND_TRIPS = 20
"""Round trips the second connection must complete meanwhile: before the fix it got at most
a handful (those that happened to run before the first frame arrived)."""


async def test_a_frame_full_of_pings_does_not_freeze_another_connection(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    frame_limit = websocket_max_size(MAX_MESSAGE_SIZE)
    ping = record({"type": 6})
    last = record({"type": 1, "target": "Echo", "arguments": ["last"], "invocationId": "last"})
    pings = ping * ((frame_limit - len(last) - 64) // len(ping))
    attacker = await RawPeer.connect(conformance_server.base_url, unit)
    await attacker.handshake()

    async def flood() -> object:
        for _ in range(FRAMES - 1):
            await attacker.send(pings)
        await attacker.send(pings + last)
        return await attacker.completion("last", timeout=60 * unit)

    flooding = asyncio.create_task(flood())
    round_trips = 0
    while not flooding.done():
        await assert_healthy(healthy)
        round_trips += 1
    assert await flooding == {"type": 3, "invocationId": "last", "result": "last"}
    assert round_trips >= FEWEST_ROUND_TRIPS, (
        f"only {round_trips} round trips on the other connection while "
        f"{FRAMES} frames of {len(pings) // len(ping)} pings were handled"
    )
    await attacker.close()
    await assert_healthy(healthy)


async def test_a_websocket_message_over_the_frame_limit_closes_with_1009(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    frame_limit = websocket_max_size(MAX_MESSAGE_SIZE)
    assert frame_limit == 1_048_576
    attacker = await RawPeer.connect(conformance_server.base_url, unit)
    await attacker.handshake()
    ping = record({"type": 6})
    await attacker.send(ping * (frame_limit // len(ping) + 1))
    assert await attacker.expect_closed() == 1009  # RFC 6455 §7.4.1: message too big
    await assert_healthy(healthy)
