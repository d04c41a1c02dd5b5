"""When queued outbound data is released (flush.py), and ASGI sends run outside a task
(sends.py)."""

from __future__ import annotations

import asyncio

import pytest

from hero.realtime.transports import OutboundBuffer
from hero.realtime.transports.flush import FRAME_BYTES, MAX_TURNS, QUIET_TURNS
from hero.realtime.transports.sends import finish, first_step


async def test_messages_produced_turn_after_turn_leave_together() -> None:
    """A producer that writes every other loop turn (the next invocation read, then run)
    keeps the buffer pending: the reader gets everything in one read."""
    buffer = OutboundBuffer(limit_bytes=10_000)
    reader = asyncio.ensure_future(buffer.read())
    await asyncio.sleep(0)
    for index in range(10):
        buffer.write(b"m%d;" % index)
        await asyncio.sleep(0)
        assert not reader.done()
        await asyncio.sleep(0)
    assert await asyncio.wait_for(reader, 5) == b"".join(b"m%d;" % i for i in range(10))


async def test_a_lone_message_is_released_after_a_few_idle_turns() -> None:
    buffer = OutboundBuffer(limit_bytes=1_000)
    reader = asyncio.ensure_future(buffer.read())
    await asyncio.sleep(0)
    buffer.write(b"alone")
    for _ in range(QUIET_TURNS + 2):  # the idle turns, then the reader's own turn
        await asyncio.sleep(0)
    assert reader.done()
    assert reader.result() == b"alone"


async def test_a_loop_that_never_goes_quiet_still_flushes() -> None:
    buffer = OutboundBuffer(limit_bytes=1_000_000)
    reader = asyncio.ensure_future(buffer.read())
    await asyncio.sleep(0)
    written = 0
    for _ in range(MAX_TURNS + 2):
        buffer.write(b"x")
        written += 1
        await asyncio.sleep(0)
        if reader.done():
            break
    assert reader.done()
    assert reader.result() == b"x" * written


async def test_a_full_frame_is_released_at_the_next_turn() -> None:
    buffer = OutboundBuffer(limit_bytes=4 * FRAME_BYTES)
    reader = asyncio.ensure_future(buffer.read(FRAME_BYTES))
    await asyncio.sleep(0)
    buffer.write(b"a" * 1000)
    await asyncio.sleep(0)
    buffer.write(b"b" * FRAME_BYTES)
    buffer.write(b"c")  # keeps the loop busy, but the frame is full
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the reader's own wake-up turn
    assert reader.done()
    assert reader.result() == b"a" * 1000  # cut at whole messages below the cap
    assert buffer.size == FRAME_BYTES + 1


async def test_a_sink_replaces_waking_the_readers() -> None:
    buffer = OutboundBuffer(limit_bytes=1_000)
    taken: list[bytes] = []
    buffer.sink = lambda: taken.append(buffer.take())
    waiter = asyncio.ensure_future(buffer.wait())
    await asyncio.sleep(0)
    buffer.write(b"one")
    buffer.write(b"two")
    for _ in range(QUIET_TURNS + 2):
        await asyncio.sleep(0)
    assert taken == [b"onetwo"]
    assert not waiter.done()  # nobody was woken: the sink sent it
    buffer.close()
    await asyncio.wait_for(waiter, 5)


async def test_buffers_of_the_whole_loop_are_released_in_one_turn() -> None:
    buffers = [OutboundBuffer(limit_bytes=1_000) for _ in range(50)]
    readers = [asyncio.ensure_future(b.read()) for b in buffers]
    await asyncio.sleep(0)
    for buffer in buffers:
        buffer.write(b"fan-out")
    done, _ = await asyncio.wait(readers, timeout=5)
    assert len(done) == 50
    assert {r.result() for r in readers} == {b"fan-out"}


async def test_a_write_without_a_running_loop_wakes_at_once() -> None:
    buffer = OutboundBuffer(limit_bytes=1_000)
    await asyncio.get_running_loop().run_in_executor(None, buffer.write, b"from a thread")
    assert buffer.take() == b"from a thread"


async def _sends_at_once(log: list[str]) -> None:
    log.append("sent")


async def _sends_after(gate: asyncio.Event, log: list[str]) -> None:
    await gate.wait()
    log.append("sent")


async def test_first_step_completes_a_send_that_never_waits() -> None:
    log: list[str] = []
    assert first_step(_sends_at_once(log)) is None
    assert log == ["sent"]


async def test_a_send_that_waits_is_finished_in_the_task() -> None:
    log: list[str] = []
    gate = asyncio.Event()
    blocked = first_step(_sends_after(gate, log))
    assert blocked is not None and log == []
    finishing = asyncio.ensure_future(finish(*blocked))
    await asyncio.sleep(0)
    assert not finishing.done()
    gate.set()
    await asyncio.wait_for(finishing, 5)
    assert log == ["sent"]


async def test_a_send_that_waits_too_long_times_out_and_is_cancelled() -> None:
    log: list[str] = []
    gate = asyncio.Event()
    blocked = first_step(_sends_after(gate, log))
    assert blocked is not None
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await finish(*blocked)
    gate.set()
    await asyncio.sleep(0)
    assert log == []  # cancelled inside: it never completed


async def test_a_send_that_fails_after_waiting_raises_in_the_task() -> None:
    async def fails(gate: asyncio.Event) -> None:
        await gate.wait()
        raise ConnectionResetError("peer gone")

    gate = asyncio.Event()
    blocked = first_step(fails(gate))
    assert blocked is not None
    gate.set()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(finish(*blocked), 5)
