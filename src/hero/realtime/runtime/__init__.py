"""The hub runtime: connection handler, dispatcher, descriptors, keep-alive and timeouts."""

from hero.realtime.runtime.connection import CloseReason, HubConnection, UploadStream
from hero.realtime.runtime.descriptors import HubMethod, describe_hub, hub_method, pascal_case
from hero.realtime.runtime.dispatcher import (
    HubDispatcher,
    invoking_connection_id,
    release_invocation_slot,
)
from hero.realtime.runtime.errors import BindingError, HubException
from hero.realtime.runtime.handler import HubConnectionHandler
from hero.realtime.runtime.limits import TokenBucket
from hero.realtime.runtime.observers import ConnectionObserver, InvocationObserver, LimitObserver
from hero.realtime.runtime.options import HubOptions

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
    "InvocationObserver",
    "LimitObserver",
    "TokenBucket",
    "UploadStream",
    "describe_hub",
    "hub_method",
    "invoking_connection_id",
    "pascal_case",
    "release_invocation_slot",
]
