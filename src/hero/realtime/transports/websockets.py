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
from hero.realtime.transports.sends import Blocked, finish, first_step

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
    """Sends a WebSocket connection's queued data as frames, with a task only while a
    send has to wait.

    `flush` is the outbound buffer's sink: called when queued data is released or the
    buffer closes, it sends right there (no task switch), which is the normal case: the
    server's direct frame writer, or an ASGI send that completes without waiting. A send
    that has to wait (the peer is slow) is finished by a drain task under the send timeout;
    data released meanwhile stays queued for that task, so frames leave in order, and the
    task ends once the buffer is empty again. `done` resolves with the close code to send
    (1000 once the buffer closed and drained, 1011 for a stalled peer) or the exception a
    send raised.
    """

    __slots__ = ("_connection", "_send", "_send_timeout", "_task", "_write_frame", "done")

    def __init__(
        self,
        connection: Connection,
        send: Send,
        write_frame: WriteFrame | None = None,
        *,
        send_timeout: float,
    ) -> None:
        self._connection = connection
        self._send = send
        self._write_frame = write_frame
        self._send_timeout = send_timeout
        self._task: asyncio.Task[None] | None = None
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

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

    def attach(self) -> None:
        """Become the outbound buffer's sink and send what is already queued."""
        self._connection.outbound.sink = self.flush
        self.flush()

    def stop(self) -> None:
        """The socket is done with: no more sends from here."""
        outbound = self._connection.outbound
        if outbound.sink == self.flush:  # not a newer socket's (stateful resume)
            outbound.sink = None
        if self._task is not None:
            self._task.cancel()
        if not self.done.done():
            self.done.cancel()

    def flush(self) -> None:
        if self._task is not None or self.done.done():
            return  # the drain task takes what was released once its send is through
        outbound = self._connection.outbound
        while outbound.has_data:
            try:
                blocked = self.start(outbound.take(MAX_FRAME_BYTES))
            except Exception as exc:
                self._settle(exc)
                return
            if blocked is not None:
                self._task = asyncio.ensure_future(self._drain(blocked))
                return
        if outbound.closed:
            self._settle(NORMAL_CLOSURE)

    async def _drain(self, blocked: Blocked | None) -> None:
        outbound = self._connection.outbound
        try:
            while blocked is not None:
                try:
                    async with asyncio.timeout(self._send_timeout):
                        await finish(*blocked)
                except TimeoutError:
                    self._connection.stalled()
                    self._settle(INTERNAL_ERROR)
                    return
                blocked = None
                if outbound.has_data:
                    blocked = self.start(outbound.take(MAX_FRAME_BYTES))
        except Exception as exc:
            self._settle(exc)
            return
        finally:
            self._task = None
        if outbound.has_data or outbound.closed:
            self.flush()  # what came in with the last send (in this task no longer)

    def _settle(self, outcome: int | Exception) -> None:
        """`done` gets the close code to send, or the exception a send raised (once)."""
        if self.done.done():
            return
        if isinstance(outcome, Exception):
            self.done.set_exception(outcome)
        else:
            self.done.set_result(outcome)


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


async def _pump_in(connection: Connection, receive: Receive) -> bool:
    """Move ASGI receive events into the connection's inbound channel (when the server
    offers no direct reader). Returns True when the socket was lost without a close frame."""
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

    inbound = connection.inbound
    resume = None
    reader: asyncio.Future[bool]
    if attach is not None:
        reader = asyncio.get_running_loop().create_future()
        resume = inbound.on_room = attach(SocketMessages(inbound, reader))
    else:
        reader = asyncio.ensure_future(_pump_in(connection, receive))
    frames = FrameWriter(connection, send, write_frame, send_timeout=send_timeout)
    writer = frames.done
    frames.attach()
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
        frames.stop()
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
