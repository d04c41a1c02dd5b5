"""A logical connection's life as one state machine (docs/architecture.md "Connection states").

Requests come and go (a WebSocket, an SSE stream, many polls, POSTs); the logical connection
moves through the states below. Each state change goes through `Lifecycle.transition`, which
refuses a change the table does not allow: such a change is a bug in hero, never something a
client can cause, so it raises `LifecycleError`. Code that waits for the connection to reach
some point awaits it here (`until`, `until_idle`, `until_disposed`, `Takeover.wait`): waiters
are futures woken by the change itself, nothing polls.

Besides the state, the lifecycle counts the requests in flight for the connection (the
reaper spares a connection while one runs; a resume waits for the old socket's request to
end) and names the one request that currently holds the connection (the poll in progress,
or a stateful connection's socket), so a newer one can supersede it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from enum import StrEnum


class ConnectionState(StrEnum):
    NEGOTIATED = "negotiated"
    """Created (negotiate, or a WebSocket without it); no transport has started it yet."""
    ACTIVE = "active"
    """A transport runs it: a socket or SSE stream is attached, or a poll is in progress."""
    WAITING_FOR_POLL = "waiting-for-poll"
    """Long polling between two polls."""
    SUSPENDED = "suspended"
    """Stateful reconnect: the socket was lost; the hub keeps the connection for a resume."""
    RESUMING = "resuming"
    """Stateful reconnect: a new socket claimed the connection; the old one is unwinding."""
    DISPOSED = "disposed"
    """Over: the id is unknown from now on."""


TRANSITIONS: Mapping[ConnectionState, frozenset[ConnectionState]] = {
    ConnectionState.NEGOTIATED: frozenset(
        {ConnectionState.ACTIVE, ConnectionState.WAITING_FOR_POLL, ConnectionState.DISPOSED}
    ),
    ConnectionState.ACTIVE: frozenset(
        {
            ConnectionState.WAITING_FOR_POLL,
            ConnectionState.SUSPENDED,
            ConnectionState.RESUMING,
            ConnectionState.DISPOSED,
        }
    ),
    ConnectionState.WAITING_FOR_POLL: frozenset({ConnectionState.ACTIVE, ConnectionState.DISPOSED}),
    ConnectionState.SUSPENDED: frozenset({ConnectionState.RESUMING, ConnectionState.DISPOSED}),
    ConnectionState.RESUMING: frozenset(
        {ConnectionState.ACTIVE, ConnectionState.SUSPENDED, ConnectionState.DISPOSED}
    ),
    ConnectionState.DISPOSED: frozenset(),
}
"""The allowed changes, from each state."""

AWAITING_CLIENT = frozenset(
    {ConnectionState.NEGOTIATED, ConnectionState.WAITING_FOR_POLL, ConnectionState.SUSPENDED}
)
"""States in which the connection waits for the client to come back: with no request in
flight for longer than the disconnect timeout, the reaper disposes it. Entering one stamps
`last_seen`."""


class LifecycleError(RuntimeError):
    """A state change the table does not allow: a bug in hero."""


class Takeover:
    """One request's hold on the connection; a newer hold supersedes it."""

    __slots__ = ("_superseded",)

    def __init__(self) -> None:
        self._superseded = asyncio.Event()

    @property
    def superseded(self) -> bool:
        return self._superseded.is_set()

    def supersede(self) -> None:
        self._superseded.set()

    async def wait(self) -> None:
        """Returns once a newer request has taken the connection over."""
        await self._superseded.wait()


class Lifecycle:
    """The state of one logical connection, its requests in flight, and what waits on them."""

    __slots__ = (
        "_holder",
        "_on_resume",
        "_requests",
        "_state",
        "_waiters",
        "last_seen",
        "stalled",
        "stateful_negotiated",
    )

    def __init__(self) -> None:
        self._state = ConnectionState.NEGOTIATED
        self._requests = 0
        self._holder: Takeover | None = None
        self._waiters: list[asyncio.Future[None]] | None = None
        self._on_resume: Callable[[], None] | None = None
        self.last_seen = time.monotonic()
        """When the connection last started waiting for its client (see AWAITING_CLIENT)."""
        self.stalled = False
        """A write to the client blocked past the transport send timeout (a slow consumer)."""
        self.stateful_negotiated = False
        """Stateful reconnect was agreed at negotiate (docs/protocol.md §8)."""

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def requests(self) -> int:
        """Requests in flight for this connection (sockets, streams, polls, sends)."""
        return self._requests

    @property
    def disposed(self) -> bool:
        return self._state is ConnectionState.DISPOSED

    @property
    def suspended(self) -> bool:
        """No socket can carry messages now: they are only kept for the replay."""
        return self._state is ConnectionState.SUSPENDED or self._state is ConnectionState.RESUMING

    @property
    def resumable(self) -> bool:
        """The hub switched stateful reconnect on: a lost socket suspends the connection."""
        return self._on_resume is not None

    def transition(self, to: ConnectionState) -> None:
        """Move to `to`; raises LifecycleError when the table does not allow it."""
        if to not in TRANSITIONS[self._state]:
            raise LifecycleError(f"connection cannot go from {self._state} to {to}")
        self._state = to
        if to in AWAITING_CLIENT:
            self.last_seen = time.monotonic()
        self._wake()

    def touch(self) -> None:
        """The client was just heard from: the disconnect timeout counts from now."""
        self.last_seen = time.monotonic()

    # Requests in flight.

    def request_started(self) -> None:
        self._requests += 1

    def request_ended(self) -> None:
        if self._requests <= 0:
            raise LifecycleError("a request ended that never started")
        self._requests -= 1
        if self._requests == 0:
            self._wake()

    def take_over(self) -> Takeover:
        """Make the caller's request the one holding the connection; the previous holder,
        if any, is superseded."""
        previous = self._holder
        if previous is not None:
            previous.supersede()
        holder = self._holder = Takeover()
        return holder

    def release(self, holder: Takeover) -> bool:
        """The request behind `holder` ended. True when it still held the connection."""
        if self._holder is not holder:
            return False
        self._holder = None
        return True

    # Long polling.

    def begin_poll(self) -> Takeover:
        """A poll arrives: it supersedes the poll in progress, if any (that one answers 204)."""
        self.request_started()
        holder = self.take_over()
        if self._state is ConnectionState.WAITING_FOR_POLL:
            self.transition(ConnectionState.ACTIVE)
        return holder

    def end_poll(self, holder: Takeover) -> None:
        """A poll ended; unless a newer poll runs, the connection waits for the next one."""
        self.request_ended()
        self.touch()
        if self.release(holder) and self._state is ConnectionState.ACTIVE:
            self.transition(ConnectionState.WAITING_FOR_POLL)

    # Stateful reconnect.

    def allow_resume(self, on_resume: Callable[[], None]) -> None:
        """Switch stateful reconnect on; `on_resume` runs when a new socket takes over."""
        self._on_resume = on_resume

    def socket_lost(self) -> None:
        """A stateful connection's socket is gone: wait for the client to resume. Nothing
        changes when a resume is already under way, or the connection is over."""
        if self._state is ConnectionState.ACTIVE:
            self.transition(ConnectionState.SUSPENDED)

    def begin_resume(self) -> bool:
        """A new socket claims the connection: the old socket, if any, is superseded. False
        when another resume is already under way."""
        if self._state is ConnectionState.RESUMING:
            return False
        self.transition(ConnectionState.RESUMING)
        holder = self._holder
        if holder is not None:
            holder.supersede()
        return True

    def resumed(self) -> None:
        """The new socket is accepted: back to ACTIVE, and the hub replays. Nothing happens
        when the connection ended meanwhile."""
        if self._state is not ConnectionState.RESUMING:
            return
        self.transition(ConnectionState.ACTIVE)
        if self._on_resume is not None:
            self._on_resume()

    def resume_failed(self) -> None:
        """The new socket did not take over: the connection waits for another resume."""
        if self._state is ConnectionState.RESUMING:
            self.transition(ConnectionState.SUSPENDED)

    # The end.

    def dispose(self) -> bool:
        """Move to DISPOSED. False when it already was."""
        if self._state is ConnectionState.DISPOSED:
            return False
        self.transition(ConnectionState.DISPOSED)
        return True

    # Awaitables.

    async def until(self, *states: ConnectionState) -> ConnectionState:
        """Wait until the connection is in one of `states`; returns that state."""
        await self._wait_for(lambda: self._state in states)
        return self._state

    async def until_idle(self) -> None:
        """Wait until no request is in flight any more."""
        await self._wait_for(lambda: self._requests == 0)

    async def until_disposed(self) -> None:
        await self._wait_for(lambda: self._state is ConnectionState.DISPOSED)

    async def _wait_for(self, ready: Callable[[], bool]) -> None:
        while not ready():
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(future)
            try:
                await future
            finally:
                waiters = self._waiters
                if waiters is not None and future in waiters:
                    waiters.remove(future)

    def _wake(self) -> None:
        waiters = self._waiters
        if waiters:
            self._waiters = None
            for future in waiters:
                if not future.done():
                    future.set_result(None)
