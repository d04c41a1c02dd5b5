"""The WebSockets transport (docs/protocol.md §3.3): full duplex, one connection per socket.

Outgoing frames follow the connection's transfer format (Text for JSON, Binary for
MessagePack); incoming opcodes do not matter. Each frame carries everything queued at the
time, i.e. one or more complete hub messages.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from hero.realtime.protocol import TransferFormat
from hero.realtime.transports.asgi import Receive, Send
from hero.realtime.transports.pipe import Connection

NORMAL_CLOSURE = 1000
INTERNAL_ERROR = 1011
CLOSE_TIMEOUT = 5.0
"""How long the close frame may take to go out (the .NET WebSockets.CloseTimeout)."""
LOST_WITHOUT_CLOSE = (1005, 1006)
"""Disconnect codes ASGI servers report when no close frame arrived (a network drop)."""
MAX_FRAME_BYTES = 65_536
"""Coalescing stops here, so frames stay far below clients' message limits (pysignalr's is
1 MiB); a single larger message still goes out whole."""


async def run_websocket(
    connection: Connection, receive: Receive, send: Send, *, send_timeout: float
) -> None:
    """Pump bytes both ways until either side ends. Called after `websocket.accept`."""

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
        while True:
            data = await connection.outbound.read(MAX_FRAME_BYTES)
            if data is None:
                return NORMAL_CLOSURE
            if connection.transfer_format is TransferFormat.BINARY:
                frame = {"type": "websocket.send", "bytes": data}
            else:
                frame = {"type": "websocket.send", "text": data.decode("utf-8")}
            try:
                async with asyncio.timeout(send_timeout):
                    await send(frame)
            except TimeoutError:
                connection.stalled()
                return INTERNAL_ERROR

    reader = asyncio.ensure_future(pump_in())
    writer = asyncio.ensure_future(pump_out())
    tasks: set[asyncio.Future[Any]] = {reader, writer}
    lifecycle = connection.lifecycle
    holder = None
    if lifecycle.stateful_negotiated:
        # Only a stateful connection can be taken over by a new socket (a resume).
        holder = lifecycle.take_over()
        tasks.add(asyncio.ensure_future(holder.wait()))
    replaced = tasks - {reader, writer}
    suspend = False
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if replaced & done:
            # A stateful client resumed on a new socket: this one just stops.
            suspend = True
        elif writer in done:
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
        for task in tasks:
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
