"""I/O: moving bytes between ASGI and a logical Connection. Knows nothing of hubs."""

from hero.realtime.transports.identity import ANONYMOUS, Identity, TransportKind
from hero.realtime.transports.lifecycle import (
    TRANSITIONS,
    ConnectionState,
    Lifecycle,
    LifecycleError,
    Takeover,
)
from hero.realtime.transports.pipe import Connection, InboundChannel, OutboundBuffer

__all__ = [
    "ANONYMOUS",
    "TRANSITIONS",
    "Connection",
    "ConnectionState",
    "Identity",
    "InboundChannel",
    "Lifecycle",
    "LifecycleError",
    "OutboundBuffer",
    "Takeover",
    "TransportKind",
]
