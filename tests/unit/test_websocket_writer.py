"""The WebSocket transport's writer against a plain ASGI send: direct sends, a send that has
to wait (order kept, send timeout), a send that fails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hero.realtime.protocol import TransferFormat
from hero.realtime.transports import ANONYMOUS, Connection, ConnectionState
from hero.realtime.transports.websockets import INTERNAL_ERROR, NORMAL_CLOSURE, run_websocket


class Peer:
    """ASGI receive/send of one socket. Text frames listed in `hold` wait for `gate` before
    they count as sent; a frame listed in `fail` raises."""

    def __init__(self, hold: tuple[str, ...] = (), fail: tuple[str, ...] = ()) -> None:
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.gate = asyncio.Event()
        self.held = asyncio.Event()
        self._hold = hold
        self._fail = fail

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        text = message.get("text")
        if text in self._fail:
            raise ConnectionResetError("peer gone")
        if text in self._hold:
            self.held.set()
            await self.gate.wait()
        self.sent.put_nowait(dict(message))

    async def next_sent(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.sent.get(), 5)


def _connection() -> Connection:
    return Connection("c", "t", ANONYMOUS, inbound_limit=1 << 16, outbound_limit=1 << 20)


async def _idle_writer(connection: Connection, peer: Peer, timeout: float) -> asyncio.Task[None]:
    task = asyncio.ensure_future(
        run_websocket(connection, peer.receive, peer.send, send_timeout=timeout)
    )
    connection.outbound.write(b"hello")  # goes out once the writer runs: it is then idle
    assert await peer.next_sent() == {"type": "websocket.send", "text": "hello"}
    return task


async def test_frames_queued_behind_a_waiting_send_follow_it_in_order() -> None:
    connection, peer = _connection(), Peer(hold=("first",))
    task = await _idle_writer(connection, peer, 10.0)
    connection.outbound.write(b"first")
    await asyncio.wait_for(peer.held.wait(), 5)  # sent from the flusher, now waiting
    connection.outbound.write(b"second;")
    connection.outbound.write(b"third;")
    await asyncio.sleep(0)
    assert peer.sent.empty()
    peer.gate.set()
    assert (await peer.next_sent())["text"] == "first"
    assert (await peer.next_sent())["text"] == "second;third;"  # together, after it
    connection.close()
    assert await peer.next_sent() == {"type": "websocket.close", "code": NORMAL_CLOSURE}
    await asyncio.wait_for(task, 5)


async def test_a_send_waiting_past_the_send_timeout_marks_the_connection_stalled() -> None:
    connection, peer = _connection(), Peer(hold=("stuck",))
    task = await _idle_writer(connection, peer, 0.05)
    connection.outbound.write(b"stuck")
    await asyncio.wait_for(task, 5)
    # Dropped as a slow consumer: nothing more is accepted, and the socket closes with 1011.
    assert connection.outbound.closed
    assert await peer.next_sent() == {"type": "websocket.close", "code": INTERNAL_ERROR}


async def test_a_send_that_fails_ends_the_socket_with_its_error() -> None:
    connection, peer = _connection(), Peer(fail=("boom",))
    task = await _idle_writer(connection, peer, 10.0)
    connection.outbound.write(b"boom")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(task, 5)


async def test_a_send_that_fails_suspends_a_stateful_connection() -> None:
    """The socket died under a send before the reader saw it go: a stateful connection waits
    for its client to resume, as for a socket the reader saw dropped."""
    connection, peer = _connection(), Peer(fail=("boom",))
    connection.lifecycle.stateful_negotiated = True
    connection.lifecycle.allow_resume(lambda: None)
    connection.lifecycle.transition(ConnectionState.ACTIVE)
    task = await _idle_writer(connection, peer, 10.0)
    connection.outbound.write(b"boom")
    await asyncio.wait_for(task, 5)  # no error: the connection lives on
    assert connection.lifecycle.state is ConnectionState.SUSPENDED


async def test_binary_connections_get_binary_frames() -> None:
    connection, peer = _connection(), Peer()
    connection.transfer_format = TransferFormat.BINARY
    task = asyncio.ensure_future(
        run_websocket(connection, peer.receive, peer.send, send_timeout=10.0)
    )
    connection.outbound.write(b"\x01\x02")
    connection.outbound.write(b"\x03")
    assert await peer.next_sent() == {"type": "websocket.send", "bytes": b"\x01\x02\x03"}
    peer.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(task, 5)
