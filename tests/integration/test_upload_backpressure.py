"""The upload-stream buffer limit (`HubOptions.stream_buffer_capacity`): a client that streams
items faster than its hub method takes them is held back — its read loop waits, nothing
piles up past the buffer — while every other connection keeps working."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from hero.realtime import HubOptions, HubServer, HubServerOptions, hub_method
from hero.realtime.testing import ConformanceHub
from tests.integration.conftest import serve_in_process
from tests.integration.raw_peer import RawPeer, assert_healthy

CAPACITY = 2
ITEMS = 50


class SlowConsumerHub(ConformanceHub):
    gate: asyncio.Event
    most_waiting: int = 0

    @hub_method
    async def collect(self, stream: AsyncIterator[int]) -> list[int]:
        await SlowConsumerHub.gate.wait()  # takes nothing until the test opens the gate
        # What the read loop managed to buffer meanwhile (the stream's internal queue).
        SlowConsumerHub.most_waiting = stream._queue.qsize()  # type: ignore[attr-defined]
        return [item async for item in stream]


async def test_an_upload_past_its_buffer_holds_back_only_its_own_connection(
    unit: float,
) -> None:
    SlowConsumerHub.gate = asyncio.Event()
    hub = HubServer(
        SlowConsumerHub,
        options=HubServerOptions(
            hub=HubOptions(
                stream_buffer_capacity=CAPACITY, maximum_parallel_invocations_per_client=2
            )
        ),
    )
    async with serve_in_process(hub, "/conformance") as base:
        uploader = await RawPeer.connect(base, unit)
        await uploader.handshake()
        healthy = await RawPeer.connect(base, unit)
        await healthy.handshake()
        await uploader.send_json(
            {
                "type": 1,
                "target": "Collect",
                "arguments": [],
                "invocationId": "up",
                "streamIds": ["s"],
            },
            *({"type": 2, "invocationId": "s", "item": n} for n in range(ITEMS)),
            {"type": 3, "invocationId": "s"},
            {"type": 1, "target": "Echo", "arguments": ["after"], "invocationId": "echo"},
        )
        # The uploader's read loop now waits on the full buffer; the others go on.
        for _ in range(5):
            await assert_healthy(healthy)
        SlowConsumerHub.gate.set()
        answers: dict[str, object] = {}
        async with asyncio.timeout(30 * unit):
            while len(answers) < 2:  # "up" and "echo", in either order
                message = await uploader.next_message()
                if message.get("type") == 3:
                    answers[message["invocationId"]] = message.get("result")
        assert SlowConsumerHub.most_waiting == CAPACITY  # held back at the buffer, not 50
        assert answers == {"up": list(range(ITEMS)), "echo": "after"}
        await assert_healthy(healthy)
        await uploader.close()
        await healthy.close()
