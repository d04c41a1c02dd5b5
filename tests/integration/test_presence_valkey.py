"""ValkeyPresenceStore on a real valkey-server: two instances sharing one Valkey."""

from __future__ import annotations

from typing import Any

import pytest

from hero.caching import PresenceEntry, ValkeyPresenceStore
from tests.support.valkey import wait_server_time

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
