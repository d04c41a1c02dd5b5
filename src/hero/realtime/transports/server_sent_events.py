"""The Server-Sent Events transport (docs/protocol.md §3.4): server to client only.

Client-to-server data arrives by POST (handled by the endpoint). Each drained chunk of hub
data becomes one unnamed event: one `data:` line per LF-separated line, then a blank line.
"""

from __future__ import annotations

import asyncio
import contextlib

from hero.realtime.transports.asgi import Receive, Send
from hero.realtime.transports.pipe import Connection
from hero.realtime.transports.sends import finish, first_step

SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache,no-store"),
    (b"pragma", b"no-cache"),
    (b"content-encoding", b"identity"),
    (b"x-accel-buffering", b"no"),
]


MAX_EVENT_BYTES = 65_536
"""Hub data per SSE event, at most (unless one message is larger)."""


def format_event(data: bytes) -> bytes:
    """Encode one payload as an SSE event (CR before LF dropped)."""
    out = bytearray()
    for raw in data.split(b"\n"):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        out += b"data: " + line + b"\r\n"
    out += b"\r\n"
    return bytes(out)


async def run_server_sent_events(
    connection: Connection, receive: Receive, send: Send, *, send_timeout: float
) -> None:
    """Stream the connection's outbound data until the app closes it or the client leaves."""
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    await send({"type": "http.response.body", "body": b":\r\n", "more_body": True})

    async def wait_disconnect() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    async def pump_out() -> None:
        while True:
            data = await connection.outbound.read(MAX_EVENT_BYTES)
            if data is None:
                return
            event = {"type": "http.response.body", "body": format_event(data), "more_body": True}
            blocked = first_step(send(event))
            if blocked is None:
                continue  # sent without waiting: no timeout needed
            try:
                async with asyncio.timeout(send_timeout):
                    await finish(*blocked)
            except TimeoutError:
                connection.stalled()
                return

    watcher = asyncio.ensure_future(wait_disconnect())
    writer = asyncio.ensure_future(pump_out())
    try:
        done, _ = await asyncio.wait({watcher, writer}, return_when=asyncio.FIRST_COMPLETED)
        if writer in done:
            connection.client_gone()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(send_timeout):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        for task in (watcher, writer):
            if not task.done():
                task.cancel()
        await asyncio.gather(watcher, writer, return_exceptions=True)
        connection.client_gone()
