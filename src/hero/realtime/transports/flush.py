"""When queued outbound data leaves: one flush decision per event loop, not per connection.

A broadcast appends to a thousand outbound buffers in one go, and the next broadcast often
follows a loop turn or two later (the next invocation read, the next task run). Waking each
connection's writer at once would send one frame per message per connection; waiting a
little lets everything produced together leave together, as one frame / SSE event / poll
body (several complete hub messages per frame, docs/protocol.md §3.2).

The `Flusher` of a loop makes that decision for all of its connections with one loop
callback: a buffer that receives data is marked pending; the callback runs once per loop
turn and releases every pending buffer to its transport when

- `QUIET_TURNS` turns in a row brought no new write (whatever produced messages has moved
  on; at low rates this is all that happens: a few loop turns, microseconds, no timer), or
- `MAX_TURNS` turns have passed since the first pending write (a loop that never goes quiet
  still flushes), or
- some buffer holds a full frame (`FRAME_BYTES`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Protocol

logger = logging.getLogger("hero.realtime.transports")

QUIET_TURNS = 3
"""Loop turns without a write before pending buffers are released."""
MAX_TURNS = 32
"""Loop turns at most between a buffer's first pending write and its release."""
FRAME_BYTES = 65_536
"""A buffer holding this much is released at the next turn (the transports' frame cap)."""


class Releasable(Protocol):
    def release(self, now: float) -> None:
        """Hand the queued data to the transport (`now`: time.monotonic())."""


class Flusher:
    """Releases the pending outbound buffers of one event loop (see the module doc)."""

    __slots__ = ("__weakref__", "_loop", "_pending", "_quiet", "_seen", "_turns", "full", "writes")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[Releasable] = []
        self._quiet = 0
        self._turns = 0
        self._seen = 0
        self.writes = 0
        """Bumped by every write to a pending buffer; a turn that sees no change is quiet."""
        self.full = False
        """Set by a write that filled a frame: release at the next turn."""

    def add(self, buffer: Releasable) -> None:
        """A buffer became pending: its `release(now)` is called once when it is time."""
        self.writes += 1
        if not self._pending:
            self._seen = self.writes
            self._quiet = 0
            self._turns = 0
            self._loop.call_soon(self._turn)
        self._pending.append(buffer)

    def _turn(self) -> None:
        self._turns += 1
        if self.writes != self._seen:
            self._seen = self.writes
            self._quiet = 0
        else:
            self._quiet += 1
        if self._quiet < QUIET_TURNS and self._turns < MAX_TURNS and not self.full:
            self._loop.call_soon(self._turn)
            return
        pending = self._pending
        self._pending = []
        self.full = False
        now = time.monotonic()
        for buffer in pending:
            try:
                buffer.release(now)
            except Exception:  # one broken transport must not keep the others waiting
                logger.exception("releasing outbound data failed")


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Flusher] = (
    weakref.WeakKeyDictionary()
)


def flusher_for(loop: asyncio.AbstractEventLoop) -> Flusher:
    flusher = _flushers.get(loop)
    if flusher is None:
        flusher = _flushers[loop] = Flusher(loop)
    return flusher
