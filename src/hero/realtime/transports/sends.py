"""ASGI sends started outside a task, finished in one only when they have to wait.

An ASGI `send` is a coroutine, but a server whose socket is writable completes it without
ever waiting (uvicorn writes to the transport and returns). Running its first step directly
(`first_step`) then costs no task switch and no timeout; the rare send that has to wait is
finished by `finish` in a task, under the caller's timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator
from typing import Any

Steps = Generator[Any, None, Any]
Blocked = tuple[Steps, Any]
"""A send started outside a task that has to wait: its steps and what it awaits."""


def first_step(send: Awaitable[None]) -> Blocked | None:
    """Run `send` until it finishes (None) or waits (returned, for `finish`). An ASGI server
    whose socket is writable completes a send without waiting, so most sends end here,
    without a task switch or a timeout; exceptions propagate."""
    coro = send.__await__()
    try:
        awaited = coro.send(None)
    except StopIteration:
        return None
    if getattr(awaited, "_asyncio_future_blocking", False):
        # What a Task does with a future it is handed: take it over (awaiting it again
        # while the flag is still set would fail).
        awaited._asyncio_future_blocking = False
    return coro, awaited


async def finish(coro: Steps, awaited: Any) -> None:
    """Drive a coroutine `first_step` left waiting to its end, in the current task, the
    way a Task would: wait for what it awaits, then resume it with the outcome."""
    try:
        while True:
            try:
                if awaited is None:  # a bare yield (asyncio.sleep(0))
                    await asyncio.sleep(0)
                else:
                    await awaited
            except BaseException as exc:  # the coroutine decides what the outcome means
                awaited = coro.throw(exc)
            else:
                awaited = coro.send(None)
            if getattr(awaited, "_asyncio_future_blocking", False):
                awaited._asyncio_future_blocking = False
    except StopIteration:
        return
    finally:
        coro.close()
