"""The WebSockets transport (docs/protocol.md §3.3): full duplex, one connection per socket.

Outgoing frames follow the connection's transfer format (Text for JSON, Binary for
MessagePack); incoming opcodes do not matter. Each frame carries everything queued at the
time, i.e. one or more complete hub messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

from hero.realtime.protocol import TransferFormat
from hero.realtime.transports.asgi import AttachSink, Receive, Send, WriteFrame
from hero.realtime.transports.pipe import Connection, InboundChannel
from hero.realtime.transports.sends import Blocked, finish, first_step, raise_later

NORMAL_CLOSURE = 1000
INTERNAL_ERROR = 1011
CLOSE_TIMEOUT = 5.0
"""How long the close frame may take to go out (the .NET WebSockets.CloseTimeout)."""
LOST_WITHOUT_CLOSE = (1005, 1006)
"""Disconnect codes ASGI servers report when no close frame arrived (a network drop)."""
MAX_FRAME_BYTES = 65_536
"""Coalescing stops here, so frames stay far below clients' message limits (pysignalr's is
1 MiB); a single larger message still goes out whole."""


class FrameWriter:
    """Sends a WebSocket connection's queued data as frames.

    `flush` is the outbound buffer's sink: called when queued data is released, it sends
    right there (no task switch) while the connection's writer task is idle and the ASGI
    send completes without waiting, which is the normal case. A send that has to wait (the
    peer is slow) or fails is handed to the writer task (`take_blocked`), which finishes it
    under the send timeout; data that arrives while the writer task is busy waits for it,
    so frames leave in order.
    """

    __slots__ = ("_blocked", "_connection", "_send", "_write_frame", "idle")

    def __init__(
        self, connection: Connection, send: Send, write_frame: WriteFrame | None = None
    ) -> None:
        self._connection = connection
        self._send = send
        self._write_frame = write_frame
        self._blocked: Blocked | None = None
        self.idle = False

    def frame(self, data: bytes) -> dict[str, Any]:
        if self._connection.transfer_format is TransferFormat.BINARY:
            return {"type": "websocket.send", "bytes": data}
        return {"type": "websocket.send", "text": data.decode("utf-8")}

    def start(self, data: bytes) -> Blocked | None:
        """Begin sending `data` as one frame; what still has to be awaited, if anything.
        The server's direct frame writer goes first when it has one and can write now."""
        write_frame = self._write_frame
        if write_frame is not None and write_frame(
            data, self._connection.transfer_format is TransferFormat.BINARY
        ):
            return None
        return first_step(self._send(self.frame(data)))

    def take_blocked(self) -> Blocked | None:
        blocked, self._blocked = self._blocked, None
        return blocked

    def flush(self) -> None:
        outbound = self._connection.outbound
        if not self.idle or self._blocked is not None:
            outbound.wake()
            return
        while outbound.has_data:
            try:
                blocked = self.start(outbound.take(MAX_FRAME_BYTES))
            except Exception as exc:  # the writer task raises it, as its own send would
                blocked = (raise_later(exc).__await__(), None)
            if blocked is not None:
                self._blocked = blocked
                outbound.wake()
                return


def _resolve(first: asyncio.Future[None], _: object) -> None:
    if not first.done():
        first.set_result(None)


class SocketMessages:
    """The `FrameSink` a WebSocket hands its messages to when the server offers
    `READ_FRAMES_EXTENSION`: straight into the connection's inbound channel, with no task
    and no ASGI event per message. `done` resolves when the socket ends, True when it was
    lost without a close frame (what the receive loop would return)."""

    __slots__ = ("_inbound", "done")

    def __init__(self, inbound: InboundChannel, done: asyncio.Future[bool]) -> None:
        self._inbound = inbound
        self.done = done

    def message(self, data: bytes, binary: bool) -> bool:
        inbound = self._inbound
        if inbound.ended:  # the application side has ended: as the receive loop stops
            self._settle(False)
            return True
        return inbound.push(data)

    def ended(self, code: int) -> None:
        self._settle(code in LOST_WITHOUT_CLOSE)

    def _settle(self, lost: bool) -> None:
        if not self.done.done():
            self.done.set_result(lost)


async def run_websocket(
    connection: Connection,
    receive: Receive,
    send: Send,
    *,
    send_timeout: float,
    write_frame: WriteFrame | None = None,
    attach: AttachSink | None = None,
) -> None:
    """Pump bytes both ways until either side ends. Called after `websocket.accept`.
    `write_frame` is the server's direct frame writer and `attach` its direct message
    reader, if its scope offered them."""

    async def pump_in() -> bool:
        """Returns True when the socket was lost without a close frame."""
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                data = message.get("bytes")
                if data is None:
                    text = message.get("text")
                    data = text.encode("utf-8") if text is not None else b""
                if not await connection.inbound.feed(data):
                    return False
            elif kind == "websocket.disconnect":
                return message.get("code") in LOST_WITHOUT_CLOSE

    async def pump_out() -> int:
        writer = FrameWriter(connection, send, write_frame)
        outbound = connection.outbound
        outbound.sink = writer.flush
        try:
            while True:
                blocked = writer.take_blocked()
                if blocked is None and outbound.has_data:
                    blocked = writer.start(outbound.take(MAX_FRAME_BYTES))
                if blocked is not None:
                    try:
                        async with asyncio.timeout(send_timeout):
                            await finish(*blocked)
                    except TimeoutError:
                        connection.stalled()
                        return INTERNAL_ERROR
                elif outbound.has_data:
                    continue
                elif outbound.closed:
                    return NORMAL_CLOSURE
                else:
                    writer.idle = True
                    try:
                        await outbound.wait()
                    finally:
                        writer.idle = False
        finally:
            if outbound.sink == writer.flush:  # not a newer socket's (stateful resume)
                outbound.sink = None

    inbound = connection.inbound
    resume = None
    reader: asyncio.Future[bool]
    if attach is not None:
        reader = asyncio.get_running_loop().create_future()
        resume = inbound.on_room = attach(SocketMessages(inbound, reader))
    else:
        reader = asyncio.ensure_future(pump_in())
    writer = asyncio.ensure_future(pump_out())
    lifecycle = connection.lifecycle
    holder = None
    replaced = None
    if lifecycle.stateful_negotiated:
        # Only a stateful connection can be taken over by a new socket (a resume).
        holder = lifecycle.take_over()
        replaced = asyncio.ensure_future(holder.wait())
    tasks = (reader, writer) if replaced is None else (reader, writer, replaced)
    # Waits like asyncio.wait(FIRST_COMPLETED), without its per-call coroutine, waiter and
    # sets, which an idle connection would hold for its whole life: one future, resolved by
    # whichever task ends first (several may be done by the time this one wakes).
    first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ended = functools.partial(_resolve, first)
    for task in tasks:
        task.add_done_callback(ended)
    suspend = False
    try:
        await first
        if replaced is not None and replaced.done():
            # A stateful client resumed on a new socket: this one just stops.
            suspend = True
        elif (
            writer.done()
            and lifecycle.resumable
            and not writer.cancelled()
            and writer.exception() is not None
        ):
            # A send failed under the writer of a stateful connection: its socket is gone,
            # as when the reader sees it go; the connection waits for its client to resume.
            reader.cancel()
            suspend = True
        elif writer.done():
            code = writer.result()
            reader.cancel()
            connection.client_gone()
            # A peer that stopped reading may never let the close frame out: bounded.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await send({"type": "websocket.close", "code": code})
        else:
            writer.cancel()
            with contextlib.suppress(BaseException):
                await writer
            with contextlib.suppress(BaseException):
                suspend = reader.result() and lifecycle.resumable
    finally:
        if attach is not None:
            attach(None)  # a later message must not reach a newer socket's channel
            if inbound.on_room is resume:
                inbound.on_room = None
        for task in tasks:
            task.remove_done_callback(ended)
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if holder is not None:
            lifecycle.release(holder)
        if suspend:
            # Stateful reconnect: keep the hub connection; the client comes back with the
            # same id (or the reaper ends it after the disconnect timeout).
            lifecycle.touch()
            lifecycle.socket_lost()
        else:
            connection.client_gone()
