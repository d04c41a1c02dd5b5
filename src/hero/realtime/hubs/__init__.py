"""Public API for application code: Hub, hub_method, Clients, Groups, HubContext, HubServer."""

from hero.realtime.connections import EndpointOptions, Relay, RelayBus
from hero.realtime.hubs.clients import (
    CallerClients,
    ClientProxy,
    Clients,
    Groups,
    SingleClientProxy,
)
from hero.realtime.hubs.delivery import (
    Audience,
    AudienceKind,
    Delivery,
    DeliveryFormatError,
    GroupMove,
    GroupMoveKind,
    Operation,
    operation_from_wire,
)
from hero.realtime.hubs.group_names import GroupLimitError, GroupNameError
from hero.realtime.hubs.hub import Hub, HubCallerContext
from hero.realtime.hubs.listener import HubListener, ListenerOverflow
from hero.realtime.hubs.routing import HubRoute
from hero.realtime.hubs.server import HubContext, HubServer, HubServerOptions
from hero.realtime.lifetime import ClientResultError
from hero.realtime.runtime import HubException, HubOptions, hub_method
from hero.realtime.transports import Identity

__all__ = [
    "Audience",
    "AudienceKind",
    "CallerClients",
    "ClientProxy",
    "ClientResultError",
    "Clients",
    "Delivery",
    "DeliveryFormatError",
    "EndpointOptions",
    "GroupLimitError",
    "GroupMove",
    "GroupMoveKind",
    "GroupNameError",
    "Groups",
    "Hub",
    "HubCallerContext",
    "HubContext",
    "HubException",
    "HubListener",
    "HubOptions",
    "HubRoute",
    "HubServer",
    "HubServerOptions",
    "Identity",
    "ListenerOverflow",
    "Operation",
    "Relay",
    "RelayBus",
    "SingleClientProxy",
    "hub_method",
    "operation_from_wire",
]
