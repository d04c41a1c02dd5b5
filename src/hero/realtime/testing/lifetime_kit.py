"""Building blocks of the lifetime-manager conformance suite: connections, protocols, clusters.

Nothing here mocks anything. `FakeConnection` is a real implementation of the `LocalConnection`
protocol whose "socket" is a list: it keeps the framed bytes it is handed, decodes them with
its own hub protocol (JSON or MessagePack) and records the invocations. `CountingProtocol`
is a real hub protocol (it delegates to one) that counts how often a message is encoded.
`Cluster` holds the managers of one test and places FakeConnections on them.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

from hero.realtime.lifetime.base import HubLifetimeManager
from hero.realtime.protocol import (
    CompletionMessage,
    Framer,
    HubMessage,
    HubProtocol,
    InvocationMessage,
    JsonHubProtocol,
    MessagePackHubProtocol,
    SerializedMessage,
)

FENCE_TARGET = "__hero_lifetime_fence__"
"""Target of the invocations a conformance suite uses as delivery fences.

A FakeConnection records such an invocation in `fences` (by its first argument), never in
`received`, so fences never show up in what a test asserts about.
"""

Answer = Callable[[InvocationMessage], CompletionMessage | None]
"""How a FakeConnection answers a client-result invocation: a Completion, or None for silence."""


def answer_with_result(result: Any) -> Answer:
    """An `Answer` that returns `result` to every client-result invocation."""

    def answer(invocation: InvocationMessage) -> CompletionMessage:
        assert invocation.invocation_id is not None
        return CompletionMessage.with_result(invocation.invocation_id, result)

    return answer


def answer_with_error(error: str) -> Answer:
    """An `Answer` that fails every client-result invocation with `error`."""

    def answer(invocation: InvocationMessage) -> CompletionMessage:
        assert invocation.invocation_id is not None
        return CompletionMessage.with_error(invocation.invocation_id, error)

    return answer


class CountingProtocol(HubProtocol):
    """A hub protocol that delegates to `inner` and counts `write` calls.

    `writes` counts encodes per invocation target (other messages by class name). It has
    the inner protocol's `name`, so a SerializedMessage caches its bytes under that name
    exactly as it would for the inner protocol.
    """

    def __init__(self, inner: HubProtocol) -> None:
        self.inner = inner
        self.name = inner.name
        self.version = inner.version
        self.transfer_format = inner.transfer_format
        self.writes: Counter[str] = Counter()

    def is_version_supported(self, version: int) -> bool:
        return self.inner.is_version_supported(version)

    def new_framer(self, max_message_size: int | None) -> Framer:
        return self.inner.new_framer(max_message_size)

    def parse(self, payload: bytes) -> HubMessage | None:
        return self.inner.parse(payload)

    def write(self, message: HubMessage) -> bytes:
        key = message.target if isinstance(message, InvocationMessage) else type(message).__name__
        self.writes[key] += 1
        return self.inner.write(message)


class FakeConnection:
    """A `LocalConnection` served by `home` that records what the lifetime manager sends it.

    Invariants:
    - `write` / `write_serialized` never await and never raise: the bytes are appended to
      `frames`, decoded with `protocol`, and invocations are appended to `received` (fences
      to `fences`, anything else to `unexpected`). Bytes keep their identity, so a test can
      check that recipients share one encoded object.
    - With `capacity` set, the connection accepts at most that many frames; the next one
      marks it `overflowed`, is dropped, and the connection disconnects itself from `home`
      in a background task — what a real connection does with a full send queue.
    - With `answer` set, a client-result invocation (one with an invocation id) is answered
      from a background task: the Completion is encoded and decoded with `protocol` (as if
      it came over the wire) and handed to `home.set_connection_result`; the returned
      booleans are appended to `answers`.
    - Records keep arriving after a disconnect, so a test can see a manager that still
      writes to a connection it was told is gone.
    """

    def __init__(
        self,
        connection_id: str,
        home: HubLifetimeManager,
        protocol: HubProtocol,
        *,
        user_id: str | None = None,
        answer: Answer | None = None,
        capacity: int | None = None,
    ) -> None:
        self._connection_id = connection_id
        self._user_id = user_id
        self._protocol = protocol
        self._framer: Framer = protocol.new_framer(None)
        self.home = home
        self.answer = answer
        self.capacity = capacity
        self.frames: list[bytes] = []
        self.received: list[InvocationMessage] = []
        self.fences: set[str] = set()
        self.unexpected: list[HubMessage] = []
        self.answers: list[bool] = []
        self.accepted = 0
        self.dropped = 0
        self.overflowed = False
        self.connected = False
        self.closed = False
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"<FakeConnection {self._connection_id} {self._protocol.name} user={self._user_id}>"

    # -- LocalConnection -----------------------------------------------------------------

    @property
    def connection_id(self) -> str:
        return self._connection_id

    @property
    def user_id(self) -> str | None:
        return self._user_id

    @property
    def protocol(self) -> HubProtocol:
        return self._protocol

    def write(self, message: HubMessage) -> None:
        """Queue one message (encoded here, with this connection's protocol); never awaits."""
        self._receive(self._protocol.write(message))

    def write_serialized(self, message: SerializedMessage) -> None:
        """Queue the bytes `message` holds for this connection's protocol; never awaits."""
        self._receive(message.get(self._protocol))

    # -- lifecycle -----------------------------------------------------------------------

    async def connect(self) -> None:
        """Register with the home manager (`on_connected`)."""
        await self.home.on_connected(self)
        self.connected = True
        self._notify()

    async def disconnect(self) -> None:
        """Unregister from the home manager (`on_disconnected`); idempotent."""
        if not self.connected:
            return
        self.connected = False
        try:
            await self.home.on_disconnected(self)
        finally:
            self.closed = True
            self._notify()

    async def aclose(self, timeout: float) -> None:
        """Let background answers finish (cancel them after `timeout`), then disconnect."""
        try:
            async with asyncio.timeout(timeout):
                while self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
        except TimeoutError:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.disconnect()

    # -- client results ------------------------------------------------------------------

    async def complete(self, completion: CompletionMessage) -> bool:
        """Send `completion` as this connection's client would: through the home manager."""
        decoded = self._round_trip(completion)
        return await self.home.set_connection_result(self._connection_id, decoded)

    # -- waiting -------------------------------------------------------------------------

    async def wait_for(self, count: int, timeout: float) -> list[InvocationMessage]:
        """Wait until at least `count` invocations were received; return a copy of them."""
        await self.wait_until(
            lambda: len(self.received) >= count, timeout, f"{count} invocation(s)"
        )
        return list(self.received)

    async def wait_for_fence(self, fence: str, timeout: float) -> None:
        await self.wait_until(lambda: fence in self.fences, timeout, f"fence {fence!r}")

    async def wait_for_answers(self, count: int, timeout: float) -> list[bool]:
        await self.wait_until(lambda: len(self.answers) >= count, timeout, f"{count} answer(s)")
        return list(self.answers)

    async def wait_closed(self, timeout: float) -> None:
        await self.wait_until(lambda: self.closed, timeout, "disconnect to finish")

    async def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait (on an event, never by polling) until `predicate()` holds.

        Raises TimeoutError describing what was awaited and what had arrived.
        """
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            raise TimeoutError(
                f"{self!r}: no {what} within {timeout}s; received {self.received!r}"
            ) from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def clear(self) -> None:
        """Forget what was received so far (frames, invocations, answers); keep fences."""
        self.frames.clear()
        self.received.clear()
        self.answers.clear()

    # -- internals -----------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        if self.overflowed:
            self.dropped += 1
            return
        if self.capacity is not None and self.accepted >= self.capacity:
            self.overflowed = True
            self.dropped += 1
            self._spawn(self.disconnect())
            return
        self.accepted += 1
        fence_only = True
        for message in self._protocol.parse_all(self._framer, data):
            if isinstance(message, InvocationMessage) and message.target == FENCE_TARGET:
                self.fences.add(str(message.arguments[0]))
                continue
            fence_only = False
            if isinstance(message, InvocationMessage):
                self.received.append(message)
                if message.invocation_id is not None and self.answer is not None:
                    completion = self.answer(message)
                    if completion is not None:
                        self._spawn(self._answer(completion))
            else:
                self.unexpected.append(message)
        if not fence_only:
            self.frames.append(data)
        self._notify()

    async def _answer(self, completion: CompletionMessage) -> None:
        self.answers.append(await self.complete(completion))
        self._notify()

    def _round_trip(self, message: CompletionMessage) -> CompletionMessage:
        framer = self._protocol.new_framer(None)
        decoded = self._protocol.parse_all(framer, self._protocol.write(message))
        assert len(decoded) == 1 and isinstance(decoded[0], CompletionMessage), decoded
        return decoded[0]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _notify(self) -> None:
        for predicate, future in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(None)


PROTOCOLS = ("json", "messagepack")
TARGET = "Receive"


def note(label: str) -> InvocationMessage:
    """A non-blocking invocation whose first argument identifies it in assertions."""
    return InvocationMessage(target=TARGET, arguments=(label,))


def every(
    connections: Iterable[FakeConnection], items: Iterable[str]
) -> dict[FakeConnection, tuple[str, ...]]:
    """The same expected labels for each of `connections`."""
    expected = tuple(items)
    return {connection: expected for connection in connections}


def labels(connection: FakeConnection) -> list[str]:
    return [str(message.arguments[0]) for message in connection.received]


class Cluster:
    """The managers of one test and the FakeConnections placed on them.

    `managers[i]` is instance i as `make_cluster` returned it; `instances` holds each
    distinct manager once. Both protocols are `CountingProtocol`s shared by every connection
    of the test, so a test can count encodes per protocol across the whole cluster.
    """

    def __init__(self, managers: Sequence[HubLifetimeManager], timeout: float) -> None:
        self.managers = list(managers)
        self.instances = list({id(m): m for m in self.managers}.values())
        self.timeout = timeout
        self.protocols = {
            "json": CountingProtocol(JsonHubProtocol()),
            "messagepack": CountingProtocol(MessagePackHubProtocol()),
        }
        self.connections: list[FakeConnection] = []
        self._token = uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()

    def manager(self, index: int) -> HubLifetimeManager:
        """Instance `index`, wrapping around."""
        return self.managers[index % len(self.managers)]

    def caller(self, index: int) -> HubLifetimeManager:
        """The instance that operates on the `index`-th connection of a round-robin placement.

        Callers alternate so that, with two instances, half of the operations are issued on
        the connection's own instance and half on the other one.
        """
        return self.manager(index // 2)

    def new_id(self, prefix: str = "c") -> str:
        return f"{prefix}{next(self._ids)}-{self._token}"

    async def connect(
        self,
        instance: int = 0,
        *,
        protocol: str = "json",
        user: str | None = None,
        answer: Answer | None = None,
        capacity: int | None = None,
    ) -> FakeConnection:
        """A new connection on instance `instance`, registered with its manager."""
        connection = FakeConnection(
            self.new_id(),
            self.manager(instance),
            self.protocols[protocol],
            user_id=user,
            answer=answer,
            capacity=capacity,
        )
        self.connections.append(connection)
        await connection.connect()
        return connection

    async def connect_many(
        self, count: int, *, user: str | None = None, answer: Answer | None = None
    ) -> list[FakeConnection]:
        """`count` connections, round-robin over the instances, alternating protocols."""
        spread = len(self.managers)
        return [
            await self.connect(
                k, protocol=PROTOCOLS[(k // spread) % len(PROTOCOLS)], user=user, answer=answer
            )
            for k in range(count)
        ]

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A task the teardown cancels if the test did not await it."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def clear(self) -> None:
        """Forget everything received and every encode counted so far."""
        for connection in self.connections:
            connection.clear()
        for protocol in self.protocols.values():
            protocol.writes.clear()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for connection in self.connections:
            await connection.aclose(self.timeout)
