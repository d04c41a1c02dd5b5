"""MemoryPresenceStore and PresenceTracker semantics (clock injected, no sleeps)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from typing import cast

import pytest

from hero.caching import CacheUnavailableError, MemoryPresenceStore, PresenceEntry
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


# ------------------------------------------------------------------ recovery and failures


async def test_refresh_recreates_a_swept_entry_and_reports_the_user_online_again() -> None:
    clock = Clock()
    store = MemoryPresenceStore(clock)
    late = PresenceEntry("t", "late", "c1")
    assert await store.add(late, 30) is True
    assert await store.refresh([late], 30) == []  # still live: nothing changes
    clock.now += 31  # the heartbeat came late ...
    assert await store.sweep() == [("t", "late")]  # ... and another instance swept it
    assert await store.online("t", ["late"]) == {"late": False}
    assert await store.refresh([late], 30) == [("t", "late")]
    assert await store.online("t", ["late"]) == {"late": True}
    assert await store.refresh([late], 30) == []
    clock.now += 29
    assert await store.sweep() == []  # the re-created entry has the new expiry
    assert await store.remove(late) is True


async def test_refresh_reports_each_user_once_and_only_users_with_no_live_entry() -> None:
    clock = Clock()
    store = MemoryPresenceStore(clock)
    kept = PresenceEntry("t", "kept", "k1")
    await store.add(kept, 30)
    lost = [PresenceEntry("t", "lost", "l1"), PresenceEntry("t", "lost", "l2")]
    other_tenant = PresenceEntry("t2", "lost", "l3")
    result = await store.refresh([*lost, kept, other_tenant, PresenceEntry("t", "kept", "k2")], 30)
    assert result == [("t", "lost"), ("t2", "lost")]
    assert await store.online("t", ["lost", "kept"]) == {"lost": True, "kept": True}
    assert await store.remove(lost[0]) is False
    assert await store.remove(lost[1]) is True


async def test_sweep_parses_a_tenant_holding_a_newline() -> None:
    clock = Clock()
    store = MemoryPresenceStore(clock)
    user = str(uuid.uuid4())
    await store.add(PresenceEntry("a\nb", user, "c1"), 30)
    clock.now += 31
    assert await store.sweep() == [("a\nb", user)]


def _tenant_watcher(manager: MemoryLifetimeManager) -> FakeConnection:
    return FakeConnection("watcher", manager, JsonHubProtocol())


async def _watching(tenant: str) -> tuple[MemoryLifetimeManager, FakeConnection]:
    manager = MemoryLifetimeManager()
    watcher = _tenant_watcher(manager)
    await manager.on_connected(watcher)
    await manager.add_to_group("watcher", f"tenant:{tenant}")
    return manager, watcher


def _presence(watcher: FakeConnection) -> list[tuple[str, bool]]:
    return [
        (m.arguments[0]["userId"], m.arguments[0]["online"])
        for m in watcher.received
        if m.target == "PresenceChanged"
    ]


async def test_tracker_heartbeat_brings_a_lost_user_back_online() -> None:
    manager, watcher = await _watching("t")
    clock = Clock()
    store = MemoryPresenceStore(clock)
    tracker = PresenceTracker(store, HubContext(manager), ttl=30)
    user = uuid.uuid4()
    await tracker.connected("t", user, "c1")
    clock.now += 31  # this instance stalled past the TTL; another instance swept the entry
    assert await store.sweep() == [("t", str(user))]
    await tracker.beat()
    assert _presence(watcher) == [(str(user), True), (str(user), True)]
    assert await tracker.online("t", [str(user)]) == {str(user): True}
    await tracker.disconnected("c1")
    assert _presence(watcher)[-1] == (str(user), False)


class _BlockingRefresh(MemoryPresenceStore):
    """Holds `refresh` until released, so a disconnect can arrive in the middle of it."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def refresh(self, entries: Iterable[PresenceEntry], ttl: float) -> list[tuple[str, str]]:
        batch = list(entries)
        self.entered.set()
        await self.release.wait()
        return await super().refresh(batch, ttl)


async def test_a_refresh_in_flight_never_resurrects_a_closed_connection() -> None:
    manager, watcher = await _watching("t")
    clock = Clock()
    store = _BlockingRefresh(clock)
    tracker = PresenceTracker(store, HubContext(manager), ttl=30)
    user = uuid.uuid4()
    await tracker.connected("t", user, "c1")
    store.release.clear()
    beat = asyncio.create_task(tracker.beat())
    await store.entered.wait()  # the heartbeat holds c1 and is about to write it
    closing = asyncio.create_task(tracker.disconnected("c1"))
    await asyncio.sleep(0)
    store.release.set()
    await beat
    await closing
    assert await store.online("t", [str(user)]) == {str(user): False}
    assert _presence(watcher) == [(str(user), True), (str(user), False)]
    clock.now += 31
    assert await store.sweep() == []  # nothing was left behind to expire later


async def test_closing_connections_do_not_wait_for_each_other() -> None:
    class SlowRemove(MemoryPresenceStore):
        def __init__(self) -> None:
            super().__init__(Clock())
            self.removing = 0
            self.most = 0

        async def remove(self, entry: PresenceEntry) -> bool:
            self.removing += 1
            self.most = max(self.most, self.removing)
            await asyncio.sleep(0.01)
            self.removing -= 1
            return await super().remove(entry)

    manager, _ = await _watching("t")
    store = SlowRemove()
    tracker = PresenceTracker(store, HubContext(manager), ttl=30)
    for n in range(5):
        await tracker.connected("t", uuid.uuid4(), f"c{n}")
    await asyncio.gather(*(tracker.disconnected(f"c{n}") for n in range(5)))
    assert store.most == 5


async def test_heartbeat_refreshes_in_batches_of_500() -> None:
    class Counting(MemoryPresenceStore):
        def __init__(self) -> None:
            super().__init__(Clock())
            self.batches: list[int] = []

        async def refresh(
            self, entries: Iterable[PresenceEntry], ttl: float
        ) -> list[tuple[str, str]]:
            batch = list(entries)
            self.batches.append(len(batch))
            return await super().refresh(batch, ttl)

    manager, _ = await _watching("t")
    store = Counting()
    tracker = PresenceTracker(store, HubContext(manager), ttl=30)
    for n in range(1201):
        await tracker.connected("t", uuid.uuid4(), f"c{n}")
    await tracker.beat()
    assert store.batches == [500, 500, 201]


class _Failing(MemoryPresenceStore):
    def __init__(self, *, add: bool = False, remove: bool = False) -> None:
        super().__init__(Clock())
        self.fail_add = add
        self.fail_remove = remove

    async def add(self, entry: PresenceEntry, ttl: float) -> bool:
        added = await super().add(entry, ttl)
        if self.fail_add:  # the server applied it, but the reply was lost (a timeout)
            raise CacheUnavailableError("Valkey is unavailable: test")
        return added

    async def remove(self, entry: PresenceEntry) -> bool:
        if self.fail_remove:
            raise CacheUnavailableError("Valkey is unavailable: test")
        return await super().remove(entry)


class _FailingAnnouncements:
    """A HubContext stand-in whose group sends fail (the backplane is down)."""

    def __init__(self) -> None:
        self.clients = self

    def group(self, name: str) -> _FailingAnnouncements:
        return self

    async def send(self, method: str, *args: object, ephemeral: bool = False) -> None:
        raise RuntimeError("backplane down")


async def test_a_connect_whose_store_add_fails_leaves_no_ghost() -> None:
    manager, watcher = await _watching("t")
    clock = Clock()
    store = _Failing(add=True)
    store._clock = clock
    tracker = PresenceTracker(store, HubContext(manager), ttl=30)
    user = str(uuid.uuid4())
    with pytest.raises(CacheUnavailableError):
        await tracker.connected("t", uuid.UUID(user), "c1")
    store.fail_add = False
    assert await store.online("t", [user]) == {user: False}
    for _ in range(3):  # the heartbeat must not keep (or re-create) the failed connection
        clock.now += 20
        await tracker.beat()
    assert await store.online("t", [user]) == {user: False}
    assert _presence(watcher) == []


async def test_a_connect_whose_announcement_fails_removes_its_entry() -> None:
    store = MemoryPresenceStore(Clock())
    tracker = PresenceTracker(store, cast(HubContext, _FailingAnnouncements()), ttl=30)
    user = uuid.uuid4()
    with pytest.raises(RuntimeError, match="backplane down"):
        await tracker.connected("t", user, "c1")
    assert await store.online("t", [str(user)]) == {str(user): False}
    await tracker.beat()
    assert await store.online("t", [str(user)]) == {str(user): False}


async def test_a_failed_connect_whose_cleanup_fails_too_still_forgets_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _Failing(remove=True)
    tracker = PresenceTracker(store, cast(HubContext, _FailingAnnouncements()), ttl=30)
    user = uuid.uuid4()
    with pytest.raises(RuntimeError, match="backplane down"):
        await tracker.connected("t", user, "c1")
    assert "c1" in caplog.text
    store.fail_remove = False
    await tracker.disconnected("c1")  # unknown now: nothing to do
    assert await store.online("t", [str(user)]) == {str(user): True}  # expires with the TTL


async def test_disconnect_logs_and_swallows_a_store_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager, watcher = await _watching("t")
    store = _Failing()
    tracker = PresenceTracker(store, HubContext(manager), ttl=30)
    await tracker.connected("t", uuid.uuid4(), "c1")
    store.fail_remove = True
    with caplog.at_level(logging.WARNING, logger="hero.presence"):
        await tracker.disconnected("c1")  # does not raise: the hub's cleanup goes on
    assert "could not remove connection c1" in caplog.text
    store.fail_remove = False
    await tracker.disconnected("c1")  # forgotten: not removed (or announced) twice
    assert len(_presence(watcher)) == 1
