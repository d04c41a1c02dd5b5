"""The HTTP-connections layer: negotiate, connection registry, transport choice, relays."""

from hero.realtime.endpoint.dispatcher import Authenticator, ConnectionEndpoint, EndpointOptions
from hero.realtime.endpoint.manager import ConnectionManager
from hero.realtime.endpoint.relay import Relay, RelayBus

__all__ = [
    "Authenticator",
    "ConnectionEndpoint",
    "ConnectionManager",
    "EndpointOptions",
    "Relay",
    "RelayBus",
]
