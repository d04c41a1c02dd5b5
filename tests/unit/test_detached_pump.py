"""A detached socket's pump ends its socket and its request however its task ends
(hero.realtime.connections.endpoint.detach_pump)."""

from __future__ import annotations

import asyncio
import warnings

import pytest

from hero.realtime.connections.endpoint import detach_pump
from hero.realtime.transports.lifecycle import Lifecycle


def started_request() -> Lifecycle:
    lifecycle = Lifecycle()
    lifecycle.request_started()
    return lifecycle


async def test_a_pump_that_returns_ends_the_socket_and_the_request_once() -> None:
    lifecycle = started_request()
    ended = asyncio.Event()
    ran: list[bool] = []

    async def pump() -> None:
        ran.append(True)

    await detach_pump(pump(), lifecycle, ended.set)
    await asyncio.wait_for(ended.wait(), 5)
    await asyncio.wait_for(lifecycle.until_idle(), 5)
    assert ran == [True]


async def test_a_pump_cancelled_before_its_first_step_still_ends_the_socket() -> None:
    lifecycle = started_request()
    ended = asyncio.Event()
    ran: list[bool] = []

    async def pump() -> None:
        ran.append(True)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would fail here
        task = detach_pump(pump(), lifecycle, ended.set)
        task.cancel()  # in the same loop turn: the task never runs a step
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(ended.wait(), 5)
    await asyncio.wait_for(lifecycle.until_idle(), 5)
    assert ran == []


async def test_a_pump_cancelled_while_it_runs_ends_the_socket_once() -> None:
    lifecycle = started_request()
    ended: list[bool] = []
    running = asyncio.Event()

    async def pump() -> None:
        running.set()
        await asyncio.Event().wait()

    task = detach_pump(pump(), lifecycle, lambda: ended.append(True))
    await asyncio.wait_for(running.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(lifecycle.until_idle(), 5)
    assert ended == [True]
