"""Separate broadcasts queued for a connection leave in shared WebSocket frames, in order, and
a lone message still leaves on its own (real server, real clients)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from hero.realtime import HubServer
from hero.realtime.testing import ConformanceHub
from tests.integration.conftest import serve_in_process
from tests.support.servers import UNIT

RS = "\x1e"
BROADCASTS = 20


async def _open(url: str, join: bool) -> Any:
    ws = await websockets.connect(url, max_size=None, compression=None)
    await ws.send('{"protocol":"json","version":1}' + RS)
    assert await asyncio.wait_for(ws.recv(), 10 * UNIT) == "{}" + RS
    if join:
        await ws.send(
            json.dumps({"type": 1, "target": "JoinGroup", "arguments": ["g"], "invocationId": "j"})
            + RS
        )
        async with asyncio.timeout(10 * UNIT):
            while '"invocationId":"j"' not in str(await ws.recv()):
                pass
    return ws


def _send_to_group(index: int) -> str:
    return json.dumps({"type": 1, "target": "SendToGroup", "arguments": ["g", "Tick", index]}) + RS


async def _ticks(ws: Any, count: int) -> tuple[list[int], int]:
    """The Tick arguments of the next `count` Ticks, and how many frames carried them."""
    ticks: list[int] = []
    frames = 0
    async with asyncio.timeout(10 * UNIT):
        while len(ticks) < count:
            records = [json.loads(r) for r in str(await ws.recv()).split(RS)[:-1]]
            found = [m["arguments"][0] for m in records if m.get("target") == "Tick"]
            if found:
                frames += 1
                ticks += found
    return ticks, frames


async def test_separate_invocations_share_frames_and_keep_their_order() -> None:
    hub = HubServer(ConformanceHub)
    async with serve_in_process(hub, "/hub") as base:
        url = "ws" + base.removeprefix("http") + "/hub"
        subscribers = [await _open(url, join=True) for _ in range(3)]
        publisher = await _open(url, join=False)
        try:
            # Twenty separate invocations, each its own broadcast, arriving together.
            await publisher.send("".join(_send_to_group(i) for i in range(BROADCASTS)))
            for ws in subscribers:
                ticks, frames = await _ticks(ws, BROADCASTS)
                assert ticks == list(range(BROADCASTS))
                assert frames <= BROADCASTS // 4  # one frame per message before coalescing

            # A lone broadcast is not held back waiting for company.
            await publisher.send(_send_to_group(BROADCASTS))
            for ws in subscribers:
                assert await _ticks(ws, 1) == ([BROADCASTS], 1)
        finally:
            for ws in (*subscribers, publisher):
                await ws.close()
