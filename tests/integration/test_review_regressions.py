"""Regression tests for defects found in review (each names the failure it guards)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from hero.realtime import Hub, HubServer, hub_method
from hero.realtime.lifetime import MemoryLifetimeManager
from hero.realtime.testing import ConformanceHub
from hero.realtime.testing.asgi import lifespan
from tests.integration.conftest import serve_in_process
from tests.support.servers import UNIT

RS = "\x1e"
TIMEOUT = 10 * UNIT

_shared_job: dict[str, asyncio.Future[None]] = {}


class ReviewHub(ConformanceHub):
    @hub_method
    async def first_item(self, stream: AsyncIterator[int]) -> int:
        async for item in stream:
            return item
        return -1

    @hub_method
    async def wait_for_job(self) -> None:
        job = asyncio.get_running_loop().create_future()
        _shared_job["job"] = job
        await job  # another task cancels the job: CancelledError, but we were not cancelled

    @hub_method
    async def cancel_job(self) -> None:
        _shared_job["job"].cancel()


def frame(*messages: dict[str, Any]) -> str:
    return "".join(json.dumps(m) + RS for m in messages)


async def open_peer(base: str) -> Any:
    ws = await websockets.connect("ws" + base.removeprefix("http") + "/hub", compression=None)
    await ws.send('{"protocol":"json","version":1}' + RS)
    assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "{}" + RS
    return ws


async def messages_until(ws: Any, predicate: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            for record in str(await ws.recv()).split(RS)[:-1]:
                message = json.loads(record)
                if message.get("type") == 6:
                    continue
                seen.append(message)
                if predicate(message):
                    return seen


def completion(invocation_id: str) -> Any:
    return lambda m: m.get("type") == 3 and m.get("invocationId") == invocation_id


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, HubServer]]:
    hub = HubServer(ReviewHub)
    async with serve_in_process(hub, "/hub") as base:
        yield base, hub


async def test_upload_items_past_the_buffer_after_the_method_returned_do_not_wedge_the_connection(
    server: tuple[str, HubServer],
) -> None:
    base, hub = server
    ws = await open_peer(base)
    items = [{"type": 2, "invocationId": "s", "item": n} for n in range(15)]
    await ws.send(
        frame(
            {
                "type": 1,
                "invocationId": "1",
                "target": "FirstItem",
                "arguments": [],
                "streamIds": ["s"],
            },
            *items,
            {"type": 1, "invocationId": "2", "target": "Echo", "arguments": ["alive"]},
        )
    )
    seen = await messages_until(ws, completion("2"))
    assert [m.get("result") for m in seen if m.get("type") == 3] == [0, "alive"]
    await ws.close()
    lifetime: Any = hub.lifetime
    async with asyncio.timeout(TIMEOUT):
        while lifetime.connection_count:  # noqa: ASYNC110 - watching the server's state
            await asyncio.sleep(0.01)


async def test_a_method_hit_by_someone_elses_cancellation_still_completes(
    server: tuple[str, HubServer],
) -> None:
    base, _ = server
    waiter, canceller = await open_peer(base), await open_peer(base)
    await waiter.send(
        frame({"type": 1, "invocationId": "w", "target": "WaitForJob", "arguments": []})
    )
    async with asyncio.timeout(TIMEOUT):
        while "job" not in _shared_job:  # noqa: ASYNC110 - the method has started
            await asyncio.sleep(0.01)
    await canceller.send(
        frame({"type": 1, "invocationId": "c", "target": "CancelJob", "arguments": []})
    )
    done = (await messages_until(waiter, completion("w")))[-1]
    assert done["error"] == "An unexpected error occurred invoking 'WaitForJob' on the server."
    await waiter.close()
    await canceller.close()


async def test_stream_invocation_and_its_cancel_in_one_frame_complete_and_free_the_id(
    server: tuple[str, HubServer],
) -> None:
    base, _ = server
    ws = await open_peer(base)
    stream = {"type": 4, "invocationId": "7", "target": "Counter", "arguments": [1000, 20]}
    await ws.send(frame(stream, {"type": 5, "invocationId": "7"}))
    await messages_until(ws, lambda m: m.get("type") == 3 and m.get("invocationId") == "7")
    await ws.send(frame(stream))  # the id is free again
    await messages_until(ws, lambda m: m.get("type") == 2 and m.get("invocationId") == "7")
    await ws.close()


async def test_duplicate_upload_stream_ids_are_refused(server: tuple[str, HubServer]) -> None:
    base, _ = server
    ws = await open_peer(base)
    await ws.send(
        frame(
            {"type": 1, "invocationId": "a", "target": "Sum", "arguments": [], "streamIds": ["s"]},
            {"type": 1, "invocationId": "b", "target": "Sum", "arguments": [], "streamIds": ["s"]},
        )
    )
    refused = (await messages_until(ws, completion("b")))[-1]
    assert refused["error"] == "Invocation ID 's' is already in use."
    await ws.send(
        frame({"type": 2, "invocationId": "s", "item": 5}, {"type": 3, "invocationId": "s"})
    )
    assert (await messages_until(ws, completion("a")))[-1]["result"] == 5
    await ws.close()


async def test_posts_before_the_connection_started_never_wait_forever(
    server: tuple[str, HubServer],
) -> None:
    """Early data is buffered (signalrcore sends its handshake before the first poll), but
    once the inbound buffer is full a POST is refused instead of waiting for a reader that
    does not exist yet."""
    base, _ = server
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as http:
        token = (await http.post("/hub/negotiate?negotiateVersion=1")).json()["connectionToken"]
        first = await http.post("/hub", params={"id": token}, content=b"x" * 70_000)
        second = await http.post("/hub", params={"id": token}, content=b"y")
    assert first.status_code == 200
    assert second.status_code == 400


class Tracking(MemoryLifetimeManager):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")


async def test_a_hub_server_that_is_the_root_app_runs_its_lifespan() -> None:
    tracking = Tracking()

    class Empty(Hub):
        pass

    server = HubServer(Empty, lifetime_manager=tracking)
    async with lifespan(server):
        assert tracking.events == ["start"]
    assert tracking.events == ["start", "stop"]
