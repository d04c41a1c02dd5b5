"""The CLI's listening socket gets TCP_NODELAY on accepted connections."""

from __future__ import annotations

import asyncio
import socket

from hero.cli import _bind


async def test_accepted_connections_have_tcp_nodelay() -> None:
    """asyncio sets TCP_NODELAY only when the listening socket's proto is IPPROTO_TCP;
    without it each HTTP response (headers, then body) waits for a delayed ACK."""
    listener = _bind("127.0.0.1", 0)
    assert listener.proto == socket.IPPROTO_TCP
    accepted: asyncio.Queue[int] = asyncio.Queue()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        await accepted.put(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_client, sock=listener)
    try:
        port = listener.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        nodelay = await asyncio.wait_for(accepted.get(), 10)
        writer.close()
        assert nodelay != 0
    finally:
        server.close()
        await server.wait_closed()
