"""ConformanceHub: the fixture hub of docs/platform.md §6 (`hero conformance-server`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from hero.realtime.hubs import Hub, HubException, hub_method


class ConformanceHub(Hub):
    """Every behaviour a SignalR client needs to see, one method each. No authentication."""

    @hub_method
    async def echo(self, value: Any) -> Any:
        return value

    @hub_method
    async def add(self, a: int | float, b: int | float) -> int | float:
        return a + b

    @hub_method
    async def fail(self, message: str) -> None:
        raise HubException(message)

    @hub_method
    async def crash(self) -> None:
        raise RuntimeError("conformance-secret-detail")

    @hub_method
    async def counter(self, count: int, delay_ms: int) -> AsyncIterator[int]:
        for value in range(count):
            if value and delay_ms > 0:
                await asyncio.sleep(delay_ms / 1000)
            yield value

    @hub_method
    async def sum(self, stream: AsyncIterator[float]) -> float:
        total: float = 0
        async for item in stream:
            total += item
        return total

    @hub_method(name="ConnectionId")
    async def connection_id(self) -> str:
        return self.context.connection_id

    @hub_method
    async def broadcast(self, target: str, arg: Any) -> None:
        await self.clients.all.send(target, arg)

    @hub_method
    async def send_to_others(self, target: str, arg: Any) -> None:
        await self.clients.others.send(target, arg)

    @hub_method
    async def join_group(self, name: str) -> None:
        await self.groups.add(self.context.connection_id, name)

    @hub_method
    async def leave_group(self, name: str) -> None:
        await self.groups.remove(self.context.connection_id, name)

    @hub_method
    async def send_to_group(self, name: str, target: str, arg: Any) -> None:
        await self.clients.group(name).send(target, arg)

    @hub_method
    async def ask_client(self, method: str, arg: Any) -> Any:
        return await self.clients.caller.invoke(method, arg)

    @hub_method
    async def abort(self) -> None:
        self.context.abort()
