"""The hub runtime: connection handler, dispatcher, descriptors, keep-alive and timeouts."""

from hero.realtime.server.connection import CloseReason, HubConnection, UploadStream
from hero.realtime.server.descriptors import HubMethod, describe_hub, hub_method, pascal_case
from hero.realtime.server.dispatcher import (
    HubDispatcher,
    invoking_connection_id,
    release_invocation_slot,
)
from hero.realtime.server.errors import BindingError, HubException
from hero.realtime.server.handler import ConnectionObserver, HubConnectionHandler
from hero.realtime.server.limits import LimitObserver, TokenBucket
from hero.realtime.server.options import HubOptions

__all__ = [
    "BindingError",
    "CloseReason",
    "ConnectionObserver",
    "HubConnection",
    "HubConnectionHandler",
    "HubDispatcher",
    "HubException",
    "HubMethod",
    "HubOptions",
    "LimitObserver",
    "TokenBucket",
    "UploadStream",
    "describe_hub",
    "hub_method",
    "invoking_connection_id",
    "pascal_case",
    "release_invocation_slot",
]
