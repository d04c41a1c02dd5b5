"""The logical connection between a transport and the hub: two bounded byte channels.

A transport (WebSockets, Server-Sent Events, long polling) moves bytes between ASGI and a
`Connection`; the hub reads `receive()` and writes to `outbound`. The logical connection
outlives any single HTTP request (long polling polls many times per connection).

Bounds (habit 7): inbound is limited in bytes and makes the transport wait (backpressure);
outbound is limited in bytes and refuses writes past the limit, which the hub turns into a
slow-consumer disconnect. Outbound writes never await, so a broadcast never waits on a
recipient, and the transport drains everything queued in one write (several complete
messages per frame, docs/protocol.md §3.2).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from hero.realtime.protocol import TransferFormat
from hero.realtime.transports.flush import FRAME_BYTES, Flusher, flusher_for
from hero.realtime.transports.identity import ANONYMOUS, Identity, TransportKind
from hero.realtime.transports.lifecycle import Lifecycle

__all__ = [
    "ANONYMOUS",
    "Connection",
    "Identity",
    "InboundChannel",
    "OutboundBuffer",
    "TransportKind",
]


class _Wakeup:
    """Waiters woken together: cheaper than an asyncio.Event when idle (nothing allocated
    while nobody waits) and with one waiter (a bare future, no list), which is the common
    case: thousands of idle connections, each with one writer. Callers re-check their
    condition after waking."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: asyncio.Future[None] | list[asyncio.Future[None]] | None = None

    def wake(self) -> None:
        waiters = self._waiters
        if waiters is None:
            return
        self._waiters = None
        if isinstance(waiters, list):
            for future in waiters:
                if not future.done():
                    future.set_result(None)
        elif not waiters.done():
            waiters.set_result(None)

    async def wait(self) -> None:
        future = self.add_waiter()
        try:
            await future
        finally:
            self.forget(future)

    def add_waiter(self) -> asyncio.Future[None]:
        """A future the next `wake` resolves (the caller awaits it, then `forget`s it)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters
        if waiters is None:
            self._waiters = future
        elif isinstance(waiters, list):
            waiters.append(future)
        else:
            self._waiters = [waiters, future]
        return future

    def forget(self, future: asyncio.Future[None]) -> None:
        waiters = self._waiters
        if waiters is future:
            self._waiters = None
        elif isinstance(waiters, list) and future in waiters:
            waiters.remove(future)


class OutboundBuffer:
    """Complete framed messages waiting for the transport, bounded in bytes.

    Writes never wake the transport themselves: the buffer becomes pending with its loop's
    `Flusher`, which releases it once the loop has moved on from producing messages (see
    flush.py), so messages queued together leave in one frame. On release the transport's
    `sink` (when one is set) is called, otherwise waiting readers are woken.
    """

    __slots__ = (
        "_chunks",
        "_closed",
        "_flusher",
        "_limit",
        "_pending",
        "_ready",
        "_size",
        "last_write",
        "sink",
    )

    def __init__(self, limit_bytes: int) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._limit = limit_bytes
        self._ready = _Wakeup()
        self._closed = False
        self._pending = False
        self._flusher: Flusher | None = None
        self.last_write = time.monotonic()
        """When queued data was last released to the transport (time.monotonic())."""
        self.sink: Callable[[], None] | None = None
        """Called (instead of waking readers) when queued data is released, and when the
        buffer closes: a transport that can send without awaiting does so right there."""

    @property
    def size(self) -> int:
        return self._size

    @property
    def limit(self) -> int:
        """The most bytes that may be queued (one larger message always fits)."""
        return self._limit

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, data: bytes, *, force: bool = False) -> bool:
        """Queue `data`. False when closed or when it would pass the limit (nothing queued);
        `force` skips the limit (a replay the hub already bounded elsewhere)."""
        if self._closed:
            return False
        size = self._size
        if not force and size and size + len(data) > self._limit:
            return False
        self._chunks.append(data)
        self._size = size = size + len(data)
        if self._pending:
            flusher = self._flusher
            if flusher is not None:
                flusher.writes += 1
                if size >= FRAME_BYTES:
                    flusher.full = True
        else:
            self._schedule()
        return True

    def _schedule(self) -> None:
        flusher = self._flusher
        if flusher is None:  # the first write: the loop is the connection's for good
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a synchronous caller): nobody to defer to
                self.release(time.monotonic())
                return
            flusher = self._flusher = flusher_for(loop)
        self._pending = True
        flusher.add(self)

    def release(self, now: float) -> None:
        """Called by the flusher: hand what is queued to the transport."""
        self._pending = False
        self.last_write = now
        sink = self.sink
        if sink is not None and self._chunks:
            sink()
        else:
            self._ready.wake()

    def close(self) -> None:
        """No more writes; what is queued is still delivered, then readers get None. The
        `sink` hears of it too."""
        if self._closed:
            return
        self._closed = True
        self._ready.wake()
        if self.sink is not None:
            self.sink()

    def wake(self) -> None:
        """Wake whoever waits in `wait` or `read` (a transport's sink handing work back)."""
        self._ready.wake()

    async def wait(self) -> None:
        """Until data is released, the buffer closes or `wake` is called (re-check after)."""
        await self._ready.wait()

    @property
    def has_data(self) -> bool:
        return bool(self._chunks)

    def take(self, max_bytes: int | None = None) -> bytes:
        """Queued chunks joined, up to `max_bytes` (at least one whole chunk; chunks are
        complete messages, so a cut never splits one)."""
        chunks = self._chunks
        if max_bytes is None or self._size <= max_bytes:
            count = len(chunks)
        else:
            count, total = 0, 0
            while count < len(chunks) and (count == 0 or total + len(chunks[count]) <= max_bytes):
                total += len(chunks[count])
                count += 1
        if count == len(chunks):
            self._chunks = []
            taken = chunks
        else:
            taken = chunks[:count]
            del chunks[:count]
        data = taken[0] if count == 1 else b"".join(taken)
        self._size -= len(data)
        return data

    async def read(self, max_bytes: int | None = None) -> bytes | None:
        """What is queued (waiting for something), at most `max_bytes` of it unless one
        message is larger; None once closed and drained."""
        while not self._chunks:
            if self._closed:
                return None
            await self._ready.wait()
        return self.take(max_bytes)


class InboundChannel:
    """Bytes from the client in arrival order, bounded in bytes (the transport waits)."""

    __slots__ = ("_chunks", "_eof", "_full", "_limit", "_readable", "_size", "_writable", "on_room")

    def __init__(self, limit_bytes: int) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._limit = limit_bytes
        self._eof = False
        self._full = False
        self._readable = _Wakeup()
        self._writable = _Wakeup()
        self.on_room: Callable[[], None] | None = None
        """Called when a `push` had filled the channel and reading made room again."""

    async def feed(self, data: bytes) -> bool:
        """Append `data`, waiting while over the limit. False if the channel has ended."""
        while self._size >= self._limit and not self._eof:
            await self._writable.wait()
        if self._eof:
            return False
        self._append(data)
        return True

    def _append(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
            self._size += len(data)
            self._readable.wake()

    def push(self, data: bytes) -> bool:
        """Append `data` without waiting (a transport that has already read it); False
        when the channel is now full, and the transport should stop reading until
        `on_room` is called. Nothing is kept once the channel has ended."""
        if self._eof:
            return True
        self._append(data)
        if self._size >= self._limit:
            self._full = True
            return False
        return True

    @property
    def ended(self) -> bool:
        return self._eof

    def has_room(self) -> bool:
        """Whether `feed` would append without waiting."""
        return self._size < self._limit

    def feed_eof(self) -> None:
        self._eof = True
        self._readable.wake()
        self._writable.wake()

    async def receive(self) -> bytes | None:
        """The next chunk, or None at end of stream (after everything queued was read)."""
        while not self._chunks:
            if self._eof:
                return None
            # Not `_readable.wait()`: one coroutine less held by every idle connection.
            readable = self._readable
            waiter = readable.add_waiter()
            try:
                await waiter
            finally:
                readable.forget(waiter)
        data = self._chunks.pop(0)
        self._size -= len(data)
        if self._size < self._limit:
            self._writable.wake()
            if self._full:
                self._full = False
                if self.on_room is not None:
                    self.on_room()
        return data


class Connection:
    """One logical connection (negotiated or created by a WebSocket without `id`).

    Holds no reference to any request: transports attach to it, move bytes and detach.
    `transfer_format` is set by the hub once the handshake picked a protocol; the
    WebSocket transport then sends Text or Binary frames accordingly.
    """

    __slots__ = (
        "_items",
        "connection_id",
        "connection_token",
        "created_at",
        "identity",
        "inbound",
        "lifecycle",
        "outbound",
        "transfer_format",
        "transport",
    )

    def __init__(
        self,
        connection_id: str,
        connection_token: str,
        identity: Identity,
        *,
        inbound_limit: int,
        outbound_limit: int,
    ) -> None:
        self.connection_id = connection_id
        self.connection_token = connection_token
        self.identity = identity
        self.inbound = InboundChannel(inbound_limit)
        self.outbound = OutboundBuffer(outbound_limit)
        self.transport: TransportKind | None = None
        self.transfer_format = TransferFormat.TEXT
        self._items: dict[str, Any] | None = None
        self.created_at = time.monotonic()
        # Every change of the connection's state goes through this (transports/lifecycle.py):
        # stateful reconnect (docs/protocol.md §8) is agreed at negotiate and switched on by
        # the hub after a version-2 handshake on WebSockets; a dropped socket then only
        # suspends the connection until the client resumes it (or it is reaped).
        self.lifecycle = Lifecycle()

    @property
    def items(self) -> dict[str, Any]:
        """Per-connection state for the application (made on first use: most connections
        never store anything)."""
        items = self._items
        if items is None:
            items = self._items = {}
        return items

    @property
    def suspended(self) -> bool:
        """Messages cannot go out now (stateful reconnect, waiting for a resume)."""
        return self.lifecycle.suspended

    @property
    def supported_formats(self) -> TransferFormat:
        if self.transport is None:
            return TransferFormat.TEXT | TransferFormat.BINARY
        return self.transport.formats

    @property
    def has_inherent_keep_alive(self) -> bool:
        """Long polling needs no Ping messages (docs/protocol.md §3.5)."""
        return self.transport is TransportKind.LONG_POLLING

    async def receive(self) -> bytes | None:
        return await self.inbound.receive()

    def close(self) -> None:
        """The application side is done: flush what is queued, then end the transport."""
        self.outbound.close()

    def stalled(self) -> None:
        """A write to the client blocked past the transport send timeout: the client is not
        reading. The connection ends like one whose client left (a slow consumer)."""
        self.lifecycle.stalled = True
        self.close()
        self.client_gone()

    def client_gone(self) -> None:
        """The transport ended on the client side: the application reads end of stream."""
        self.inbound.feed_eof()
