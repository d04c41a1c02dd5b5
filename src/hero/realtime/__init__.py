"""hero.realtime: an ASP.NET Core SignalR-compatible hub server for ASGI.

Public names for application code are re-exported here; everything else is internal.
"""

from hero.realtime.hubs import (
    CallerClients,
    ClientProxy,
    ClientResultError,
    Clients,
    EndpointOptions,
    Groups,
    Hub,
    HubCallerContext,
    HubContext,
    HubException,
    HubOptions,
    HubRoute,
    HubServer,
    HubServerOptions,
    Identity,
    SingleClientProxy,
    hub_method,
)

__all__ = [
    "CallerClients",
    "ClientProxy",
    "ClientResultError",
    "Clients",
    "EndpointOptions",
    "Groups",
    "Hub",
    "HubCallerContext",
    "HubContext",
    "HubException",
    "HubOptions",
    "HubRoute",
    "HubServer",
    "HubServerOptions",
    "Identity",
    "SingleClientProxy",
    "hub_method",
]
