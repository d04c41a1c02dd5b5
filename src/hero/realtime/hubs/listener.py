"""HubListener: server-side code hearing what the hub sends to some groups.

A listener is a connection with no transport: it joins groups through the lifetime manager
like any connection, on this instance, so sends made on any instance of a backplane reach
it. Application code uses it to bridge hub traffic to another kind of stream (the
notifications module's Server-Sent Events endpoint is one). The queue is bounded: a listener
that falls `capacity` messages behind is ended (`ListenerOverflow`), never buffered forever;
its owner reconnects and catches up from storage.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import AsyncIterator, Collection
from types import TracebackType

from hero.realtime.lifetime import HubLifetimeManager
from hero.realtime.protocol import (
    HubMessage,
    HubProtocol,
    InvocationMessage,
    JsonHubProtocol,
    SerializedMessage,
)

_PROTOCOL = JsonHubProtocol()


class ListenerOverflow(Exception):
    """The listener fell too far behind and was ended."""


class HubListener:
    """`async with context.listen(groups) as listener: async for message in listener: ...`

    Yields each InvocationMessage sent to one of the groups (filtered to `targets` when
    given), in the order this instance received them.
    """

    def __init__(
        self,
        lifetime: HubLifetimeManager,
        groups: Collection[str],
        targets: Collection[str] | None = None,
        capacity: int = 256,
    ) -> None:
        self._lifetime = lifetime
        self._groups = tuple(groups)
        self._targets = frozenset(targets) if targets is not None else None
        self._capacity = capacity
        self._items: deque[InvocationMessage | None] = deque()
        self._ready = asyncio.Event()
        self._overflowed = False
        self.connection_id = f"listener-{secrets.token_urlsafe(12)}"

    # -- the LocalConnection protocol -------------------------------------------------------
    @property
    def user_id(self) -> str | None:
        return None

    @property
    def protocol(self) -> HubProtocol:
        return _PROTOCOL

    def write(self, message: HubMessage) -> None:
        if isinstance(message, InvocationMessage):
            self._accept(message)

    def write_serialized(self, message: SerializedMessage) -> None:
        decoded = message.message
        if decoded is None:
            payload = message.get(_PROTOCOL)
            decoded = _PROTOCOL.parse(payload.rstrip(b"\x1e"))
        if isinstance(decoded, InvocationMessage):
            self._accept(decoded)

    def _accept(self, message: InvocationMessage) -> None:
        if self._overflowed or (self._targets is not None and message.target not in self._targets):
            return
        if len(self._items) >= self._capacity:
            self._overflowed = True
            self._items.clear()
            self._items.append(None)
        else:
            self._items.append(message)
        self._ready.set()

    # -- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> HubListener:
        await self._lifetime.on_connected(self)
        try:
            for group in self._groups:
                await self._lifetime.add_to_group(self.connection_id, group)
        except BaseException:
            await self._lifetime.on_disconnected(self)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._lifetime.on_disconnected(self)

    def __aiter__(self) -> AsyncIterator[InvocationMessage]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[InvocationMessage]:
        while True:
            message = await self.next()
            if message is not None:
                yield message

    async def next(self, timeout: float | None = None) -> InvocationMessage | None:
        """The next message, or None when `timeout` passes first.

        Raises ListenerOverflow once the listener has fallen behind.
        """
        if not self._items:
            self._ready.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return None
        message = self._items.popleft()
        if message is None:
            self._items.append(None)
            raise ListenerOverflow("the listener fell behind and was ended")
        return message
