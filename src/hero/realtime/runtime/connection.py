"""HubConnection: one connection as the hub runtime sees it (after the handshake)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from hero.realtime.protocol import (
    CloseMessage,
    HubMessage,
    HubProtocol,
    SequenceMessage,
    SerializedMessage,
)
from hero.realtime.protocol.messages import TRACKABLE_TYPES
from hero.realtime.runtime.limits import TokenBucket
from hero.realtime.runtime.reconnect import ReplayBuffer
from hero.realtime.transports import Connection, Identity

logger = logging.getLogger("hero.realtime.hub")

CLOSED_WITH_ERROR = "Connection closed with an error."


@dataclass(frozen=True, slots=True)
class CloseReason:
    """Why the hub ends a connection: the Close message to send (if any) and the exception
    handed to `on_disconnected` (None for a graceful close)."""

    message: CloseMessage | None
    exception: BaseException | None = None


class UploadStream:
    """A client-to-server stream: items pushed by the read loop, consumed by a hub method.

    Bounded (`capacity` items): when full, the connection's read loop waits (backpressure).
    """

    _END = object()

    def __init__(self, capacity: int, adapter: Any) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=capacity)
        self._adapter = adapter
        self._error: BaseException | None = None
        self._done = False

    async def push(self, item: Any) -> None:
        if self._done:
            return
        if self._adapter is not None:
            item = self._adapter.validate_python(item)
        await self._queue.put(item)

    def complete(self, error: BaseException | None = None) -> None:
        """The client ended the stream (with `error`, or normally)."""
        if self._done:
            return
        self._done = True
        self._error = error
        # When full, the consumer drains the queue first and then finds `_done` set.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(self._END)

    def abandon(self) -> None:
        """Nobody will read on (the invocation finished, or the connection is closing):
        drop what is queued, which also frees a read loop waiting to push."""
        self._done = True
        while True:
            try:
                self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(self._END)  # a consumer still waiting ends its loop

    def __aiter__(self) -> UploadStream:
        return self

    async def __anext__(self) -> Any:
        if self._done and self._queue.empty():
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is self._END:
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        return item


class Flag:
    """A one-way boolean with the Event spelling (`set` / `is_set`); nothing waits on it."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value = False

    def set(self) -> None:
        self._value = True

    def is_set(self) -> bool:
        return self._value


class HubConnection:
    """Protocol-aware wrapper of a transport Connection.

    `write` and `write_serialized` never await: they append framed bytes to the bounded
    send queue. A connection whose queue is full is aborted ("slow consumer") instead of
    buffering forever or slowing the sender.
    """

    __slots__ = (
        "_dropped",
        "_outbound",
        "_protocol",
        "cancelled_streams",
        "close_reason",
        "closing",
        "dispatching",
        "ephemeral_dropped",
        "invocation_bucket",
        "last_received",
        "messages_sent",
        "ping_received",
        "read_cancelled",
        "reader",
        "replay",
        "slots",
        "streams",
        "tasks",
        "transport",
        "uploads",
    )

    def __init__(self, transport: Connection, protocol: HubProtocol) -> None:
        self.transport = transport
        self._outbound = transport.outbound  # a connection keeps its buffer for life
        self._protocol = protocol
        self.last_received = time.monotonic()
        self.ping_received = False
        self.dispatching = 0
        self.closing = Flag()
        self.close_reason: CloseReason | None = None
        self.streams: dict[str, asyncio.Task[None]] = {}
        self.cancelled_streams: set[str] | None = None  # made by the first CancelInvocation
        self.uploads: dict[str, UploadStream] = {}
        self.tasks: set[asyncio.Task[None]] | None = None  # made by the first `spawn`
        self.slots: asyncio.Semaphore
        self.invocation_bucket: TokenBucket | None = None  # made by the dispatcher
        self._dropped = False
        self.messages_sent = 0
        self.ephemeral_dropped = 0
        """Ephemeral messages not queued because the client was behind (a metric)."""
        self.replay: ReplayBuffer | None = None
        self.reader: asyncio.Task[None] | None = None
        """The task running the read loop, while it runs (`abort` cancels it)."""
        self.read_cancelled = False
        """`abort` has cancelled the read loop (the handler takes that request back)."""

    @property
    def items(self) -> dict[str, Any]:
        """The transport connection's items (one dict for the connection's whole life)."""
        return self.transport.items

    @property
    def dropped(self) -> bool:
        """Disconnected as a slow consumer: its send queue filled up, or a write to it
        blocked past the transport's send timeout."""
        return self._dropped or self.transport.lifecycle.stalled

    @property
    def connection_id(self) -> str:
        return self.transport.connection_id

    @property
    def identity(self) -> Identity:
        return self.transport.identity

    @property
    def user_id(self) -> str | None:
        return self.transport.identity.user_id

    @property
    def protocol(self) -> HubProtocol:
        return self._protocol

    def write(self, message: HubMessage) -> None:
        self._enqueue(self._protocol.write(message), isinstance(message, TRACKABLE_TYPES))

    def write_serialized(self, message: SerializedMessage) -> None:
        if message.droppable and self._behind():
            self.ephemeral_dropped += 1
            return
        self._enqueue(message.get(self._protocol))

    def _behind(self) -> bool:
        """Whether an ephemeral message should be dropped rather than queued: the client
        has half its send queue unread, or its stateful connection is suspended (a resume
        replays only what still matters)."""
        outbound = self._outbound
        return outbound.size * 2 > outbound.limit or self.transport.suspended

    def enable_stateful_reconnect(self, buffer_limit: int) -> None:
        """Keep sent messages for replay; the transport keeps the connection across a
        dropped socket and calls `resume` when the client comes back."""
        self.replay = ReplayBuffer(buffer_limit)
        self.transport.lifecycle.allow_resume(self.resume)

    def resume(self) -> None:
        """A new socket for this connection: Sequence, then every unacknowledged message
        (docs/protocol.md §8.3), replacing whatever was queued for the lost socket."""
        replay = self.replay
        if replay is None:
            return
        outbound = self.transport.outbound
        outbound.take()
        outbound.write(
            self._protocol.write(SequenceMessage(replay.first_unacknowledged())), force=True
        )
        for data in replay.unacknowledged():
            outbound.write(data, force=True)

    def _enqueue(self, data: bytes, trackable: bool = True) -> None:
        if self.closing.is_set():
            return
        self.messages_sent += 1
        replay = self.replay
        if replay is not None:
            if trackable and not replay.record(data):
                self._drop("replay buffer full: the client is not acknowledging")
                return
            if self.transport.suspended:
                return  # kept for replay; nothing can be sent until the client resumes
        outbound = self._outbound
        if not outbound.write(data):
            if outbound.closed:
                return
            self._drop(f"send queue full ({outbound.size} bytes queued)")

    def _drop(self, why: str) -> None:
        self._dropped = True
        logger.warning("disconnecting slow consumer %s: %s", self.connection_id, why)
        self.abort(
            CloseReason(
                CloseMessage(error=CLOSED_WITH_ERROR, allow_reconnect=True),
                ConnectionError(f"The client is not reading its messages ({why})."),
            )
        )

    def abort(self, reason: CloseReason | None = None) -> None:
        """End the connection: the handler sends `reason.message` (if any) and cleans up."""
        if self.close_reason is None:
            self.close_reason = reason or CloseReason(CloseMessage())
        self.closing.set()
        reader = self.reader
        if reader is not None and reader is not asyncio.current_task() and not self.read_cancelled:
            self.read_cancelled = True
            reader.cancel()  # the read loop may be waiting (for data, or for a slot)

    def spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)
        tasks = self.tasks
        if tasks is None:
            tasks = self.tasks = set()
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task
