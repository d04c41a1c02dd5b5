"""MemoryPresenceStore and PresenceTracker semantics (clock injected, no sleeps)."""

from __future__ import annotations

import uuid

from hero.caching import MemoryPresenceStore, PresenceEntry
from hero.platform.presence import PresenceTracker
from hero.realtime import HubContext
from hero.realtime.lifetime import MemoryLifetimeManager
from hero.realtime.protocol import JsonHubProtocol
from hero.realtime.testing.lifetime_kit import FakeConnection


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_first_connection_goes_online_and_last_goes_offline() -> None:
    store = MemoryPresenceStore(Clock())
    a1 = PresenceEntry("t", "u1", "c1")
    a2 = PresenceEntry("t", "u1", "c2")
    assert await store.add(a1, 30) is True
    assert await store.add(a2, 30) is False
    assert await store.online("t", ["u1", "u2"]) == {"u1": True, "u2": False}
    assert await store.remove(a1) is False
    assert await store.remove(a2) is True
    assert await store.remove(a2) is False  # already gone: not announced twice
    assert await store.online("t", ["u1"]) == {"u1": False}


async def test_tenants_are_separate() -> None:
    store = MemoryPresenceStore(Clock())
    await store.add(PresenceEntry("t1", "u", "c"), 30)
    assert await store.online("t2", ["u"]) == {"u": False}


async def test_expired_entries_are_swept_once_and_refresh_keeps_them() -> None:
    clock = Clock()
    store = MemoryPresenceStore(clock)
    alive = PresenceEntry("t", "alive", "c1")
    crashed = PresenceEntry("t", "crashed", "c2")
    await store.add(alive, 30)
    await store.add(crashed, 30)
    clock.now += 20
    await store.refresh([alive], 30)  # only the surviving instance heartbeats
    clock.now += 15
    assert await store.online("t", ["alive", "crashed"]) == {"alive": True, "crashed": False}
    assert await store.sweep() == [("t", "crashed")]
    assert await store.sweep() == []


async def test_tracker_announces_presence_to_the_tenant_group() -> None:
    manager = MemoryLifetimeManager()
    watcher = FakeConnection("watcher", manager, JsonHubProtocol())
    outsider = FakeConnection("outsider", manager, JsonHubProtocol())
    await manager.on_connected(watcher)
    await manager.on_connected(outsider)
    await manager.add_to_group("watcher", "tenant:t")
    await manager.add_to_group("outsider", "tenant:other")
    clock = Clock()
    tracker = PresenceTracker(MemoryPresenceStore(clock), HubContext(manager), ttl=30)
    user = uuid.uuid4()
    await tracker.connected("t", user, "c1")
    await tracker.connected("t", user, "c2")
    await tracker.disconnected("c1")
    await tracker.disconnected("c2")
    events = watcher.received
    assert [(m.target, m.arguments) for m in events] == [
        ("PresenceChanged", ({"userId": str(user), "online": True},)),
        ("PresenceChanged", ({"userId": str(user), "online": False},)),
    ]
    assert outsider.received == []


async def test_tracker_heartbeat_announces_users_of_crashed_instances_offline() -> None:
    manager = MemoryLifetimeManager()
    watcher = FakeConnection("watcher", manager, JsonHubProtocol())
    await manager.on_connected(watcher)
    await manager.add_to_group("watcher", "tenant:t")
    clock = Clock()
    store = MemoryPresenceStore(clock)
    # Another instance registered this user, then crashed (never refreshes).
    await store.add(PresenceEntry("t", "ghost", "remote-conn"), 30)
    tracker = PresenceTracker(store, HubContext(manager), ttl=30)
    clock.now += 31
    await tracker.beat()
    events = watcher.received
    assert [m.arguments for m in events] == [({"userId": "ghost", "online": False},)]
