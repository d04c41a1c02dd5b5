"""The Hub base class and the per-invocation caller context."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hero.realtime.hubs.clients import CallerClients, Groups
from hero.realtime.protocol import CloseMessage
from hero.realtime.runtime import CloseReason, HubConnection
from hero.realtime.transports import Identity


class HubCallerContext:
    """What a hub method knows about its caller; identity is the connection's own,
    captured when the connection was created (never request-scoped state)."""

    __slots__ = ("_connection",)

    def __init__(self, connection: HubConnection) -> None:
        self._connection = connection

    @property
    def connection_id(self) -> str:
        return self._connection.connection_id

    @property
    def user_identifier(self) -> str | None:
        return self._connection.user_id

    @property
    def user(self) -> Any:
        """The principal produced by the endpoint's authenticator (None if anonymous)."""
        return self._connection.identity.principal

    @property
    def identity(self) -> Identity:
        return self._connection.identity

    @property
    def items(self) -> dict[str, Any]:
        """Per-connection storage shared by every invocation of this connection."""
        return self._connection.items

    @property
    def protocol(self) -> str:
        return self._connection.protocol.name

    def abort(self) -> None:
        """Close this connection (a Close message without error, no reconnect)."""
        self._connection.abort(CloseReason(CloseMessage()))


class Hub:
    """Base class of hubs. Subclass it and mark client-callable methods with `@hub_method`.

    A hub object serves one invocation (or one lifecycle event) and is then dropped: keep
    per-connection state in `self.context.items`, shared state elsewhere.
    """

    context: HubCallerContext
    clients: CallerClients
    groups: Groups

    async def on_connected(self) -> None:
        """After the handshake, once the connection is registered with the lifetime manager."""

    async def on_disconnected(self, exception: BaseException | None) -> None:
        """After the connection ended; `exception` is None for a graceful close."""


HubFactory = Callable[[], Hub]
