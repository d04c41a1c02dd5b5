"""Fan-out and groups behind one interface (HubLifetimeManager)."""

from hero.realtime.lifetime.base import ClientResultError, HubLifetimeManager, LocalConnection
from hero.realtime.lifetime.memory import MemoryLifetimeManager
from hero.realtime.lifetime.valkey import BackplaneError, ValkeyLifetimeManager

__all__ = [
    "BackplaneError",
    "ClientResultError",
    "HubLifetimeManager",
    "LocalConnection",
    "MemoryLifetimeManager",
    "ValkeyLifetimeManager",
]
