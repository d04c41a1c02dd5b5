"""Hub runtime options seen from a client: detailed errors, invocation slots, the
client-result deadlock rule, hub factories and per-connection items."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.applications import Starlette

from hero.realtime import Hub, HubOptions, HubRoute, HubServer, HubServerOptions, hub_method
from hero.realtime.lifetime import MemoryLifetimeManager
from hero.realtime.testing import (
    ConformanceHub,
    HubConnectionError,
    HubInvocationError,
    HubTestClient,
)
from tests.support.servers import UNIT

TIMEOUT = 10 * UNIT


def app_for(server: HubServer) -> Starlette:
    return Starlette(routes=[HubRoute("/hub", server)])


class OrderHub(Hub):
    """Records when invocations start and end (the log is shared through the factory)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @hub_method
    async def slow(self, tag: str) -> None:
        self.log.append(f"start {tag}")
        await asyncio.sleep(0.05)
        self.log.append(f"end {tag}")

    @hub_method
    async def fast(self, tag: str) -> None:
        self.log.append(f"start {tag}")
        self.log.append(f"end {tag}")

    @hub_method
    async def remember(self, value: str) -> None:
        self.context.items["remembered"] = value

    @hub_method
    async def recall(self) -> str | None:
        value = self.context.items.get("remembered")
        return value if isinstance(value, str) else None


async def test_detailed_errors_show_exception_text() -> None:
    server = HubServer(
        ConformanceHub, options=HubServerOptions(hub=HubOptions(enable_detailed_errors=True))
    )
    async with HubTestClient(app_for(server), "/hub", timeout=TIMEOUT) as client:
        with pytest.raises(HubInvocationError) as crash:
            await client.invoke("Crash")
        assert str(crash.value) == (
            "An unexpected error occurred invoking 'Crash' on the server. "
            "RuntimeError: conformance-secret-detail"
        )
        with pytest.raises(HubInvocationError) as binding:
            await client.invoke("Add", 1)
        text = str(binding.value)
        assert text.startswith("Failed to invoke 'Add' due to an error on the server. ")
        assert "Invocation provides 1 argument(s) but target expects 2." in text


async def run_order(parallel: int) -> list[str]:
    log: list[str] = []
    server = HubServer(
        OrderHub,
        options=HubServerOptions(hub=HubOptions(maximum_parallel_invocations_per_client=parallel)),
        hub_factory=lambda: OrderHub(log),
    )
    async with HubTestClient(
        app_for(server), "/hub", transport="WebSockets", timeout=TIMEOUT
    ) as client:
        await asyncio.gather(client.invoke("Slow", "a"), client.invoke("Fast", "b"))
    return log


async def test_one_invocation_at_a_time_by_default() -> None:
    assert await run_order(1) == ["start a", "end a", "start b", "end b"]


async def test_parallel_invocations_when_allowed() -> None:
    assert await run_order(2) == ["start a", "start b", "end b", "end a"]


async def test_client_result_handler_may_call_the_hub_while_the_hub_waits() -> None:
    """The deadlock rule (docs/protocol.md §9.5): AskClient holds the only invocation slot until
    it awaits the client, which then invokes Echo on the same connection."""
    server = HubServer(ConformanceHub)
    async with HubTestClient(
        app_for(server), "/hub", transport="WebSockets", timeout=TIMEOUT
    ) as client:

        async def double_through_the_server(value: int) -> int:
            echoed = await client.invoke("Echo", value)
            return int(echoed) * 2

        client.on("double", double_through_the_server)
        assert await client.invoke("AskClient", "double", 21) == 42


async def test_items_persist_per_connection_and_hubs_come_from_the_factory() -> None:
    log: list[str] = []
    server = HubServer(OrderHub, hub_factory=lambda: OrderHub(log))
    app = app_for(server)
    async with (
        HubTestClient(app, "/hub", timeout=TIMEOUT) as first,
        HubTestClient(app, "/hub", timeout=TIMEOUT) as second,
    ):
        await first.invoke("Remember", "mine")
        assert await first.invoke("Recall") == "mine"
        assert await second.invoke("Recall") is None


class FailingResults(MemoryLifetimeManager):
    """A lifetime manager whose client-result relay breaks (as a backplane outage would)."""

    async def set_connection_result(self, connection_id: str, completion: Any) -> bool:
        raise RuntimeError("relay down")


async def test_a_server_side_dispatch_failure_closes_only_that_connection() -> None:
    server = HubServer(ConformanceHub, lifetime_manager=FailingResults())
    app = app_for(server)
    async with (
        HubTestClient(app, "/hub", transport="WebSockets", timeout=TIMEOUT) as victim,
        HubTestClient(app, "/hub", transport="WebSockets", timeout=TIMEOUT) as bystander,
    ):
        victim.on("answer", lambda value: value)
        with pytest.raises(HubConnectionError):
            await victim.invoke("AskClient", "answer", 1)
        async with asyncio.timeout(TIMEOUT):
            await victim.closed.wait()
        assert victim.close_error == "Connection closed with an error."
        assert victim.close_allow_reconnect
        assert await bystander.invoke("Echo", "still here") == "still here"


async def test_concurrent_streams_per_connection_are_bounded() -> None:
    server = HubServer(
        ConformanceHub,
        options=HubServerOptions(hub=HubOptions(maximum_concurrent_streams=2)),
    )
    async with HubTestClient(
        app_for(server), "/hub", transport="WebSockets", timeout=TIMEOUT
    ) as client:
        open_streams = [client.stream("Counter", 1000, 50) for _ in range(2)]
        for stream in open_streams:
            assert await anext(stream) == 0  # both running
        with pytest.raises(HubInvocationError) as refused:
            await anext(client.stream("Counter", 1, 0))
        assert str(refused.value).endswith("HubException: Too many concurrent streams (at most 2).")
        for stream in open_streams:
            await stream.aclose()  # type: ignore[attr-defined]  # an async generator
        # Once they are cancelled, a new stream may start again.
        async with asyncio.timeout(TIMEOUT):
            while True:
                try:
                    assert await anext(client.stream("Counter", 1, 0)) == 0
                    break
                except HubInvocationError:
                    await asyncio.sleep(0.01)  # the cancellations are still landing
