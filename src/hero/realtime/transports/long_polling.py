"""The long-polling transport (docs/protocol.md §3.5): one poll request at a time per connection.

The logical connection outlives each poll. A poll returns everything queued (200), an empty
200 after the poll timeout, or 204 once the connection is over or a newer poll replaced it.
"""

from __future__ import annotations

import asyncio
import contextlib

from hero.realtime.transports.asgi import NO_CACHE_HEADERS, Receive, Send, respond
from hero.realtime.transports.pipe import Connection

_OCTETS = b"application/octet-stream"


async def run_poll(
    connection: Connection, receive: Receive, send: Send, *, poll_timeout: float
) -> bool:
    """Serve one poll. Returns False when the connection is over (204 was sent)."""
    holder = connection.lifecycle.begin_poll()
    try:
        reader = asyncio.ensure_future(connection.outbound.read())
        replaced = asyncio.ensure_future(holder.wait())
        gone = asyncio.ensure_future(_client_disconnect(receive))
        try:
            done, _ = await asyncio.wait(
                {reader, replaced, gone}, timeout=poll_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (replaced, gone):
                task.cancel()
            if not reader.done():
                reader.cancel()
            await asyncio.gather(replaced, gone, return_exceptions=True)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(reader, return_exceptions=True)
        if reader in done and not reader.cancelled():
            data = reader.result()
            if data is None:
                await respond(send, 204, content_type=None, headers=NO_CACHE_HEADERS)
                return False
            await respond(send, 200, data, content_type=_OCTETS, headers=NO_CACHE_HEADERS)
            return True
        if replaced in done:
            await respond(send, 204, content_type=None, headers=NO_CACHE_HEADERS)
            return True
        if gone in done:
            return True
        await respond(send, 200, content_type=b"text/plain", headers=NO_CACHE_HEADERS)
        return True
    finally:
        connection.lifecycle.end_poll(holder)


async def _client_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
