"""Python side of `agent.mjs`: drive the official SignalR JS client under Node from a test.

    async with NodeAgent.start(node, unit) as agent:
        await agent.connect("a1", hub_url, tokens=[token], targets=["PresenceChanged"])
        event = await agent.next_message("a1", "PresenceChanged", where=lambda p: ...)
        await agent.invoke("a1", "Typing", channel_id)

Every wait is bounded (multiples of `unit`); a timeout reports what the connection did get.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

AGENT = Path(__file__).with_name("agent.mjs")
INTEROP = Path(__file__).resolve().parents[2] / "interop"


def interop_installed() -> bool:
    """True when tests/interop/node_modules holds the official client."""
    return (INTEROP / "node_modules" / "@microsoft" / "signalr").is_dir()


class AgentError(Exception):
    """A command failed inside the JS client (start() rejected, invoke() rejected, ...)."""

    def __init__(self, error: str, error_type: str | None, status_code: int | None) -> None:
        super().__init__(error)
        self.error = error
        self.error_type = error_type
        self.status_code = status_code


@dataclass
class Event:
    kind: str  # "message" | "reconnecting" | "reconnected" | "close" | "failover"
    target: str | None
    args: list[Any]
    data: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    wall: float = field(default_factory=time.time)

    @property
    def arg(self) -> Any:
        return self.args[0] if self.args else None


class NodeAgent:
    def __init__(self, process: asyncio.subprocess.Process, unit: float) -> None:
        self._process = process
        self.unit = unit
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: dict[str, list[Event]] = {}
        self._changed = asyncio.Event()  # replaced (after being set) on every new event
        self._ready = asyncio.Event()
        self.stderr: list[str] = []

    @classmethod
    @asynccontextmanager
    async def start(cls, node: str, unit: float, *, script: Path = AGENT) -> AsyncIterator[Self]:
        """Run `script` (a line-protocol agent under tests/integration/js) until exit."""
        if not interop_installed():
            raise RuntimeError(f"@microsoft/signalr is not installed under {INTEROP}")
        process = await asyncio.create_subprocess_exec(
            node,
            str(script),
            cwd=str(INTEROP),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ},
            limit=16 * 1024 * 1024,
        )
        agent = cls(process, unit)
        readers = [
            asyncio.create_task(agent._read_stdout()),
            asyncio.create_task(agent._read_stderr()),
        ]
        try:
            async with asyncio.timeout(10 * unit):
                await agent._ready.wait()
            yield agent
        finally:
            assert process.stdin is not None
            try:
                process.stdin.write(b'{"op": "exit"}\n')
                await process.stdin.drain()
                process.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                async with asyncio.timeout(10 * unit):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    async def _read_stdout(self) -> None:
        assert self._process.stdout is not None
        async for raw in self._process.stdout:
            line = raw.decode().strip()
            if not line:
                continue
            data = json.loads(line)
            if "reply" in data:
                future = self._pending.pop(data["reply"], None)
                if future is not None and not future.done():
                    future.set_result(data)
                continue
            if data.get("event") == "ready":
                self._ready.set()
                continue
            event = Event(data["event"], data.get("target"), data.get("args") or [], data)
            self.events.setdefault(data["conn"], []).append(event)
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RuntimeError("node agent exited:\n" + "".join(self.stderr)))

    async def _read_stderr(self) -> None:
        assert self._process.stderr is not None
        async for raw in self._process.stderr:
            self.stderr.append(raw.decode(errors="replace"))

    async def _call(self, op: str, timeout: float, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        command_id = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        assert self._process.stdin is not None
        self._process.stdin.write(
            json.dumps({"id": command_id, "op": op, **params}).encode() + b"\n"
        )
        await self._process.stdin.drain()
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._pending.pop(command_id, None)

    async def call(self, op: str, **params: Any) -> Any:
        """Run one command; its value, or AgentError with the JS client's error text."""
        reply = await self._call(op, 15 * self.unit, **params)
        if not reply["ok"]:
            raise AgentError(reply["error"], reply.get("errorType"), reply.get("statusCode"))
        return reply["value"]

    async def connect(
        self,
        name: str,
        url: str,
        *,
        tokens: Sequence[str] = (),
        transport: str | None = None,
        protocol: str | None = None,
        reconnect: bool | Sequence[int] = False,
        targets: Sequence[str] = (),
        instances: Sequence[str] = (),
        failover: Sequence[str] = (),
        answers: Sequence[str] = (),
        negotiate_on: str | None = None,
        rotate: bool = False,
        stateful: bool = False,
    ) -> str:
        """Start a connection (start() resolved); returns its connection id.
        `failover`: base URLs tried in turn: everything goes to the current one (the first at
        start) until an HTTP request cannot reach it, then to the next (a `failover` event).

        `instances`: base URLs (`http://host:port`) of several servers; every HTTP request,
        EventSource and WebSocket of the connection goes to a random one of them (with
        `negotiate_on`, a base URL too, the negotiate request goes there instead; with
        `rotate`, each WebSocket goes to the instance after the previous one's). `stateful`:
        the client asks for stateful reconnect. `answers`:
        client methods that answer a client-result invocation with `answered <json arg>`."""
        self.events.setdefault(name, [])
        value = await self.call(
            "connect",
            name=name,
            url=url,
            tokens=list(tokens),
            transport=transport,
            protocol=protocol,
            reconnect=reconnect if isinstance(reconnect, bool) else list(reconnect),
            targets=list(targets),
            instances=list(instances),
            failover=list(failover),
            answers=list(answers),
            negotiateOn=negotiate_on,
            rotate=rotate,
            stateful=stateful,
        )
        return str(value["connectionId"])

    async def stream(self, name: str, method: str, *args: Any) -> list[Any]:
        """Every item of a server-to-client stream, once it completes."""
        items: list[Any] = await self.call("stream", name=name, method=method, args=list(args))
        return items

    async def upload(self, name: str, method: str, items: Sequence[Any]) -> Any:
        """Invoke `method` with one client-to-server stream of `items`."""
        return await self.call("upload", name=name, method=method, items=list(items))

    async def invoke(self, name: str, method: str, *args: Any) -> Any:
        return await self.call("invoke", name=name, method=method, args=list(args))

    async def stop(self, name: str) -> None:
        await self.call("stop", name=name)

    async def state(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("state", name=name)
        return result

    def messages(self, name: str, target: str) -> list[Event]:
        return [e for e in self.events.get(name, []) if e.kind == "message" and e.target == target]

    def args_of(self, name: str, target: str) -> list[Any]:
        return [e.arg for e in self.messages(name, target)]

    async def wait_for(
        self,
        name: str,
        predicate: Callable[[Event], bool],
        *,
        count: int = 1,
        timeout: float | None = None,
        what: str = "event",
    ) -> list[Event]:
        """Wait until `count` events of connection `name` satisfy `predicate`; returns them."""
        limit = (10 * self.unit) if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                while True:
                    changed = self._changed
                    found = [e for e in self.events.get(name, []) if predicate(e)]
                    if len(found) >= count:
                        return found
                    await changed.wait()
        except TimeoutError:
            got = [(e.kind, e.target, e.args) for e in self.events.get(name, [])]
            raise AssertionError(
                f"{name}: no {what} within {limit:.1f} s; it got {got}\n" + "".join(self.stderr)
            ) from None

    async def next_message(
        self,
        name: str,
        target: str,
        *,
        where: Callable[[Any], bool] | None = None,
        count: int = 1,
        timeout: float | None = None,
    ) -> Event:
        """The `count`-th message `target` (whose first argument satisfies `where`)."""
        found = await self.wait_for(
            name,
            lambda e: (
                e.kind == "message" and e.target == target and (where is None or where(e.arg))
            ),
            count=count,
            timeout=timeout,
            what=f"{target} message #{count}",
        )
        return found[count - 1]

    async def lifecycle(self, name: str, kind: str, *, timeout: float | None = None) -> Event:
        """The first `reconnecting` / `reconnected` / `close` event of a connection."""
        found = await self.wait_for(name, lambda e: e.kind == kind, timeout=timeout, what=kind)
        return found[0]
