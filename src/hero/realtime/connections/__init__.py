"""The HTTP-connections layer: negotiate, connection registry, transport choice, relays."""

from hero.realtime.connections.endpoint import Authenticator, ConnectionEndpoint, EndpointOptions
from hero.realtime.connections.registry import ConnectionManager
from hero.realtime.connections.relay import Relay, RelayBus

__all__ = [
    "Authenticator",
    "ConnectionEndpoint",
    "ConnectionManager",
    "EndpointOptions",
    "Relay",
    "RelayBus",
]
