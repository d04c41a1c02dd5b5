"""I/O: moving bytes between ASGI and a logical Connection. Knows nothing of hubs."""

from hero.realtime.transports.lifecycle import (
    TRANSITIONS,
    ConnectionState,
    Lifecycle,
    LifecycleError,
    Takeover,
)
from hero.realtime.transports.pipe import (
    ANONYMOUS,
    Connection,
    Identity,
    InboundChannel,
    OutboundBuffer,
    TransportKind,
)

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
