"""The HTTP-connections layer: negotiate, connection registry, transport choice."""

from hero.realtime.endpoint.dispatcher import Authenticator, ConnectionEndpoint, EndpointOptions
from hero.realtime.endpoint.manager import ConnectionManager

__all__ = ["Authenticator", "ConnectionEndpoint", "ConnectionManager", "EndpointOptions"]
