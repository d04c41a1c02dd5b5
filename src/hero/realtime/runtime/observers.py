"""The hooks the hub runtime calls for metrics: connections, invocations, refusals.

Applications implement them (the platform's Prometheus metrics do) and pass them to
`HubServer`; every hook must be cheap and never raise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hero.realtime.runtime.connection import HubConnection


class ConnectionObserver:
    """Hooks for metrics (connection counts, messages); the default does nothing."""

    def connected(self, connection: HubConnection) -> None:
        """Called after the handshake."""

    def disconnected(self, connection: HubConnection) -> None:
        """Called at the end of cleanup."""

    def message_received(self, connection: HubConnection, count: int) -> None:
        """`count` hub messages were parsed from the client."""

    def slow_consumer(self, connection: HubConnection) -> None:
        """The connection was dropped because its send queue was full."""


class InvocationObserver(Protocol):
    """Hooks for metrics; every method must be cheap and never raise."""

    def invocation(self, method: str, error: bool) -> None: ...


class LimitObserver:
    """Metrics hooks for refused requests; the default does nothing. Cheap, never raises."""

    def group_name_refused(self) -> None:
        """A group name was too long, empty or held a control character."""

    def group_limit_reached(self) -> None:
        """A client-initiated join was refused: the connection is in too many groups."""

    def invocation_rate_limited(self, answered: bool) -> None:
        """An invocation over the connection's rate was not run; `answered` is False for a
        non-blocking one (no invocation id), which is dropped silently."""
