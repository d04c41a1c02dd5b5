"""The transport pipe's bounded buffers."""

from __future__ import annotations

import asyncio

from hero.realtime.transports import InboundChannel, OutboundBuffer


async def test_outbound_coalesces_whole_chunks_up_to_the_cap() -> None:
    buffer = OutboundBuffer(limit_bytes=1_000)
    for chunk in (b"a" * 40, b"b" * 40, b"c" * 40):
        assert buffer.write(chunk)
    assert await buffer.read(100) == b"a" * 40 + b"b" * 40
    assert buffer.size == 40
    assert await buffer.read(100) == b"c" * 40
    assert buffer.size == 0


async def test_a_chunk_larger_than_the_cap_still_goes_whole() -> None:
    buffer = OutboundBuffer(limit_bytes=10_000)
    buffer.write(b"x" * 500)
    buffer.write(b"y")
    assert await buffer.read(100) == b"x" * 500
    assert await buffer.read(100) == b"y"


async def test_outbound_refuses_writes_past_its_limit_and_drains_after_close() -> None:
    buffer = OutboundBuffer(limit_bytes=100)
    assert buffer.write(b"a" * 60)
    assert not buffer.write(b"b" * 60)  # would pass the limit: refused, nothing queued
    buffer.close()
    assert not buffer.write(b"c")
    assert await buffer.read() == b"a" * 60
    assert await buffer.read() is None


async def test_inbound_applies_backpressure_and_ends_with_none() -> None:
    channel = InboundChannel(limit_bytes=10)
    assert await channel.feed(b"0123456789")
    blocked = asyncio.ensure_future(channel.feed(b"more"))
    await asyncio.sleep(0)
    assert not blocked.done()  # over the limit: the transport waits
    assert await channel.receive() == b"0123456789"
    assert await asyncio.wait_for(blocked, 5) is True
    channel.feed_eof()
    assert await channel.receive() == b"more"
    assert await channel.receive() is None


async def test_outbound_wakes_every_waiting_reader_and_survives_a_cancelled_one() -> None:
    """A superseded long poll and its successor can both be waiting on one buffer."""
    buffer = OutboundBuffer(limit_bytes=1_000)
    old = asyncio.ensure_future(buffer.read())
    new = asyncio.ensure_future(buffer.read())
    await asyncio.sleep(0)
    old.cancel()
    await asyncio.gather(old, return_exceptions=True)
    buffer.write(b"data")
    assert await asyncio.wait_for(new, 5) == b"data"


async def test_a_push_that_fills_the_inbound_asks_to_pause_and_reading_makes_room() -> None:
    """The direct WebSocket reader pushes what the socket already read; the channel says
    when it is full and calls `on_room` once, when the hub has read it below the limit."""
    channel = InboundChannel(limit_bytes=10)
    rooms: list[str] = []
    channel.on_room = lambda: rooms.append("room")
    assert channel.push(b"abcd")
    assert not channel.push(b"efghijk")  # 11 bytes queued: full, nothing refused
    assert not channel.push(b"l")  # a message read from the same chunk is still kept
    assert await channel.receive() == b"abcd"  # 8 bytes left: room again
    assert rooms == ["room"]
    assert await channel.receive() == b"efghijk"
    assert await channel.receive() == b"l"
    assert rooms == ["room"]  # only a full channel calls it
    channel.feed_eof()
    assert channel.push(b"late")  # ended: dropped, and no reason to pause
    assert await channel.receive() is None
