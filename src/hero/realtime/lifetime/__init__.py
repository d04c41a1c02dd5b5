"""Fan-out and groups behind one interface (HubLifetimeManager)."""

from hero.realtime.lifetime.base import ClientResultError, HubLifetimeManager, LocalConnection
from hero.realtime.lifetime.memory import MemoryLifetimeManager

__all__ = ["ClientResultError", "HubLifetimeManager", "LocalConnection", "MemoryLifetimeManager"]
