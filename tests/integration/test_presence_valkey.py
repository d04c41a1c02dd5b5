"""ValkeyPresenceStore on a real valkey-server: two instances sharing one Valkey."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hero.caching import (
    CacheUnavailableError,
    PresenceEntry,
    ValkeyPresenceStore,
    create_valkey_client,
)
from hero.caching.presence import REFRESH_BATCH
from hero.platform.presence import PresenceTracker
from hero.realtime import HubContext
from hero.realtime.lifetime import MemoryLifetimeManager
from hero.realtime.protocol import JsonHubProtocol
from hero.realtime.testing.lifetime_kit import FakeConnection
from tests.support.valkey import free_port, wait_server_time

pytest_plugins = ("tests.support.valkey_fixtures",)
pytestmark = pytest.mark.valkey


async def test_first_and_last_connection_across_instances(
    async_valkey_client: Any, valkey_key_prefix: str
) -> None:
    instance_a = ValkeyPresenceStore(async_valkey_client, valkey_key_prefix)
    instance_b = ValkeyPresenceStore(async_valkey_client, valkey_key_prefix)
    on_a = PresenceEntry("t", "u1", "conn-a")
    on_b = PresenceEntry("t", "u1", "conn-b")
    assert await instance_a.add(on_a, 30) is True
    assert await instance_b.add(on_b, 30) is False
    assert await instance_b.online("t", ["u1", "u2"]) == {"u1": True, "u2": False}
    assert await instance_a.online("other-tenant", ["u1"]) == {"u1": False}
    assert await instance_a.remove(on_a) is False
    assert await instance_b.remove(on_b) is True
    assert await instance_b.remove(on_b) is False
    assert await instance_a.online("t", ["u1"]) == {"u1": False}


async def test_crashed_instance_entries_expire_and_are_swept_once(
    async_valkey_client: Any, valkey_key_prefix: str
) -> None:
    survivor = ValkeyPresenceStore(async_valkey_client, valkey_key_prefix)
    crashed = ValkeyPresenceStore(async_valkey_client, valkey_key_prefix)
    alive = PresenceEntry("t", "alive", "c1")
    ghost = PresenceEntry("t", "ghost", "c2")
    await survivor.add(alive, 0.4)
    await crashed.add(ghost, 0.4)
    await wait_server_time(async_valkey_client, 0.2)
    await survivor.refresh([alive], 0.4)  # only the surviving instance heartbeats
    await wait_server_time(async_valkey_client, 0.3)
    assert await survivor.online("t", ["alive", "ghost"]) == {"alive": True, "ghost": False}
    assert await survivor.sweep() == [("t", "ghost")]
    assert await crashed.sweep() == []
    # A user who reconnects after being swept goes online again.
    assert await survivor.add(PresenceEntry("t", "ghost", "c3"), 30) is True


async def test_keys_share_one_cluster_slot(
    async_valkey_client: Any, valkey_key_prefix: str
) -> None:
    store = ValkeyPresenceStore(async_valkey_client, valkey_key_prefix)
    await store.add(PresenceEntry("t", "u", "c"), 30)
    keys = [k.decode() async for k in async_valkey_client.scan_iter(f"{valkey_key_prefix}*")]
    assert keys
    assert all("{presence}" in key for key in keys)


# ------------------------------------------------------------------ recovery and failures


async def _flush(client: Any, prefix: str) -> None:
    """What a Valkey restart or FLUSHALL does to this test's keys (the server is shared)."""
    keys = [k async for k in client.scan_iter(f"{prefix}*")]
    if keys:
        await client.delete(*keys)


async def test_refresh_recreates_entries_lost_in_a_flush_and_reports_the_users(
    async_valkey_client: Any, valkey_key_prefix: str
) -> None:
    store = ValkeyPresenceStore(async_valkey_client, valkey_key_prefix)
    kept = PresenceEntry("t", "kept", "k1")
    lost = [PresenceEntry("t", "lost", "l1"), PresenceEntry("t", "lost", "l2")]
    other_tenant = PresenceEntry("t2", "lost", "l3")
    for entry in (*lost, other_tenant):
        await store.add(entry, 30)
    assert await store.refresh([*lost, other_tenant], 30) == []  # all live: nothing changes
    await _flush(async_valkey_client, valkey_key_prefix)
    await store.add(kept, 30)
    assert await store.online("t", ["lost"]) == {"lost": False}
    result = await store.refresh([*lost, kept, other_tenant, PresenceEntry("t", "kept", "k2")], 30)
    assert result == [("t", "lost"), ("t2", "lost")]
    assert await store.online("t", ["lost", "kept"]) == {"lost": True, "kept": True}
    assert await store.online("t2", ["lost"]) == {"lost": True}
    assert await store.refresh([*lost, other_tenant], 30) == []
    # The index was re-created too: the entries go offline properly when they close ...
    assert await store.remove(lost[0]) is False
    assert await store.remove(lost[1]) is True
    # ... or are swept once they expire.
    await store.refresh([other_tenant], 0.2)
    await wait_server_time(async_valkey_client, 0.3)
    assert await store.sweep() == [("t2", "lost")]


async def test_refresh_recreates_an_entry_swept_after_a_late_heartbeat(
    async_valkey_client: Any, valkey_key_prefix: str
) -> None:
    late = ValkeyPresenceStore(async_valkey_client, valkey_key_prefix)
    other = ValkeyPresenceStore(async_valkey_client, valkey_key_prefix)
    entry = PresenceEntry("t", "late", "c1")
    assert await late.add(entry, 0.2) is True
    await wait_server_time(async_valkey_client, 0.3)
    assert await other.sweep() == [("t", "late")]
    assert await late.refresh([entry], 30) == [("t", "late")]
    assert await other.online("t", ["late"]) == {"late": True}
    assert await late.remove(entry) is True


async def test_refresh_is_split_into_batches(
    async_valkey_client: Any, valkey_key_prefix: str
) -> None:
    store = ValkeyPresenceStore(async_valkey_client, valkey_key_prefix)
    calls: list[int] = []
    script = store._refresh

    async def counting(*, keys: list[str], args: list[Any]) -> Any:
        calls.append(len(keys) - 1)  # the index, then one user key per entry
        return await script(keys=keys, args=args)

    store._refresh = counting
    entries = [PresenceEntry("t", f"u{n}", f"c{n}") for n in range(1201)]
    result = await store.refresh(entries, 30)
    assert calls == [REFRESH_BATCH, REFRESH_BATCH, 201]
    assert result == [("t", f"u{n}") for n in range(1201)]
    online = await store.online("t", [f"u{n}" for n in range(1201)])
    assert all(online.values())


async def test_members_are_parsed_from_the_right_so_the_tenant_may_hold_a_newline(
    async_valkey_client: Any, valkey_key_prefix: str
) -> None:
    store = ValkeyPresenceStore(async_valkey_client, valkey_key_prefix)
    user = str(uuid.uuid4())
    odd = PresenceEntry("a\nb", user, "conn")
    plain = PresenceEntry("a", "b", "x")  # what the old left-to-right parse found instead
    await store.add(plain, 30)
    assert await store.add(odd, 0.2) is True
    assert await store.refresh([odd], 0.2) == []
    await wait_server_time(async_valkey_client, 0.3)
    assert await store.sweep() == [("a\nb", user)]
    assert await store.online("a", ["b"]) == {"b": True}


async def test_an_unreachable_valkey_raises_cache_unavailable() -> None:
    client = create_valkey_client(
        f"redis://127.0.0.1:{free_port()}/0", socket_timeout=1, connect_timeout=1
    )
    store = ValkeyPresenceStore(client)
    entry = PresenceEntry("t", "u", "c")
    try:
        with pytest.raises(CacheUnavailableError):
            await store.online("t", ["u"])
        with pytest.raises(CacheUnavailableError):
            await store.add(entry, 30)
        with pytest.raises(CacheUnavailableError):
            await store.remove(entry)
        with pytest.raises(CacheUnavailableError):
            await store.refresh([entry], 30)
        with pytest.raises(CacheUnavailableError):
            await store.sweep()
    finally:
        await client.aclose()


async def test_tracker_announces_users_back_online_after_a_flush(
    async_valkey_client: Any, valkey_key_prefix: str
) -> None:
    manager = MemoryLifetimeManager()
    watcher = FakeConnection("watcher", manager, JsonHubProtocol())
    await manager.on_connected(watcher)
    await manager.add_to_group("watcher", "tenant:t")
    store = ValkeyPresenceStore(async_valkey_client, valkey_key_prefix)
    tracker = PresenceTracker(store, HubContext(manager), ttl=30)
    user = uuid.uuid4()
    await tracker.connected("t", user, "c1")
    await _flush(async_valkey_client, valkey_key_prefix)
    assert await tracker.online("t", [str(user)]) == {str(user): False}
    await tracker.beat()
    assert await tracker.online("t", [str(user)]) == {str(user): True}
    await tracker.disconnected("c1")
    assert [m.arguments[0]["online"] for m in watcher.received] == [True, True, False]
