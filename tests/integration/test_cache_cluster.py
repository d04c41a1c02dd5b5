"""ValkeyCache, ValkeyPresenceStore and the typing throttle on a real three-node Valkey Cluster
(tests/support/valkey_cluster.py), through the cluster client that ``create_valkey_client``
builds for a ``cluster=true`` URL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest
from valkey.asyncio.cluster import ValkeyCluster

from hero.caching import (
    PresenceEntry,
    ValkeyCache,
    ValkeyPresenceStore,
    create_valkey_client,
)
from hero.caching.presence import REFRESH_BATCH
from hero.caching.testing import CONFORMANCE_CASES, CacheCase, CacheHarness
from hero.caching.valkey import is_cluster_client
from hero.conventions import typing_throttle_key
from hero.platform.settings import load_settings
from tests.support.servers import UNIT
from tests.support.valkey import wait_server_time

if TYPE_CHECKING:  # the module itself is loaded as a pytest plugin, below
    from tests.support.valkey_cluster import ValkeyCluster as RunningCluster

pytest_plugins = ("tests.support.valkey_cluster",)
pytestmark = pytest.mark.valkey

VALKEY_UNIT = 0.05 * UNIT


@pytest.fixture
async def cluster_client(valkey_cluster: RunningCluster) -> AsyncIterator[Any]:
    client = create_valkey_client(valkey_cluster.url, socket_timeout=10 * UNIT)
    await client.initialize()  # learns the slot map, for get_node_from_key below
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}:"


def _owner(valkey_cluster: RunningCluster, client: Any, key: str) -> int:
    """Index (in the fixture's node order) of the node that owns ``key``'s slot."""
    node = client.get_node_from_key(key)
    ports = [endpoint.port for endpoint in valkey_cluster.nodes]
    return ports.index(int(node.port))


# -- the client factory and settings ----------------------------------------------------


async def test_settings_forms_build_a_cluster_client(valkey_cluster: RunningCluster) -> None:
    first, *others = valkey_cluster.seeds
    for value in (
        ",".join(valkey_cluster.seeds),
        f"{first},cluster=true",
        f"redis://{first}/0?cluster=true",
        # The first seed is not reachable: the client finds the cluster through another.
        f"127.0.0.1:1,{others[0]}",
    ):
        url = load_settings(None, {"CachingOptions__Redis": value}).caching.redis_url()
        assert url is not None
        client = create_valkey_client(url, connect_timeout=UNIT)
        try:
            assert is_cluster_client(client)
            assert isinstance(client, ValkeyCluster)
            assert await client.ping() is True
            assert len(client.get_primaries()) == 3
        finally:
            await client.aclose()


def test_a_single_server_url_stays_a_single_server_client() -> None:
    client = create_valkey_client("redis://127.0.0.1:1/0")
    assert not is_cluster_client(client)


# -- the cache ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CONFORMANCE_CASES, ids=lambda case: case.__name__)
async def test_cache_conformance(case: CacheCase, cluster_client: Any, prefix: str) -> None:
    async def elapse(seconds: float) -> None:
        await wait_server_time(cluster_client, seconds)

    cache = ValkeyCache(cluster_client, prefix)
    await case(CacheHarness(cache=cache, elapse=elapse, unit=VALKEY_UNIT))


async def test_cache_keys_spread_over_every_node(
    valkey_cluster: RunningCluster, cluster_client: Any, prefix: str
) -> None:
    """Keys are not hash-tagged: they go to the node owning their own slot, and every
    operation (the increment script included) works wherever that is."""
    cache = ValkeyCache(cluster_client, prefix)
    owners: set[int] = set()
    for n in range(30):
        key = f"k{n}"
        owners.add(_owner(valkey_cluster, cluster_client, prefix + key))
        await cache.set(key, b"v")
        assert await cache.get(key) == b"v"
        assert await cache.increment(f"{key}:count", 10) == 1
        assert await cache.increment(f"{key}:count", 10) == 2
        assert await cache.claim(f"{key}:claim", 10) is True
        assert await cache.delete(key) is True
    assert owners == {0, 1, 2}


async def test_typing_throttle_one_winner_per_window_across_instances(
    valkey_cluster: RunningCluster, prefix: str
) -> None:
    """The typing claim (`chat:typing:{channel}:{user}`) is true once per window whichever
    instance asks, for channels whose keys live on different nodes."""
    clients = [create_valkey_client(valkey_cluster.url) for _ in range(2)]
    try:
        await clients[0].initialize()
        caches = [ValkeyCache(client, prefix) for client in clients]
        owners = set()
        for _ in range(12):
            key = typing_throttle_key(uuid.uuid4(), uuid.uuid4())
            owners.add(_owner(valkey_cluster, clients[0], prefix + key))
            results = await asyncio.gather(*(caches[i % 2].claim(key, 3) for i in range(10)))
            assert results.count(True) == 1, key
        assert len(owners) > 1
    finally:
        for client in clients:
            await client.aclose()


# -- presence -----------------------------------------------------------------------------


async def test_presence_first_and_last_connection_across_instances(
    valkey_cluster: RunningCluster, prefix: str
) -> None:
    clients = [create_valkey_client(valkey_cluster.url) for _ in range(2)]
    try:
        a, b = (ValkeyPresenceStore(client, prefix) for client in clients)
        on_a, on_b = PresenceEntry("t", "u1", "conn-a"), PresenceEntry("t", "u1", "conn-b")
        assert await a.add(on_a, 30) is True
        assert await b.add(on_b, 30) is False
        assert await b.online("t", ["u1", "u2"]) == {"u1": True, "u2": False}
        assert await a.online("t", []) == {}
        assert await a.remove(on_a) is False
        assert await b.remove(on_b) is True
        assert await a.online("t", ["u1"]) == {"u1": False}
    finally:
        for client in clients:
            await client.aclose()


async def test_presence_sweep_and_refresh_on_the_cluster(cluster_client: Any, prefix: str) -> None:
    survivor = ValkeyPresenceStore(cluster_client, prefix)
    crashed = ValkeyPresenceStore(cluster_client, prefix)
    alive, ghost = PresenceEntry("t", "alive", "c1"), PresenceEntry("t", "ghost", "c2")
    await survivor.add(alive, 0.4)
    await crashed.add(ghost, 0.4)
    await wait_server_time(cluster_client, 0.2)
    assert await survivor.refresh([alive], 0.4) == []
    await wait_server_time(cluster_client, 0.3)
    assert await survivor.online("t", ["alive", "ghost"]) == {"alive": True, "ghost": False}
    assert await survivor.sweep() == [("t", "ghost")]
    assert await crashed.sweep() == []
    # Many users in one heartbeat: several batches of the refresh script, each on one node.
    entries = [PresenceEntry("t", f"user{n}", f"conn{n}") for n in range(REFRESH_BATCH + 7)]
    online = await survivor.refresh(entries, 30)
    assert online == [("t", f"user{n}") for n in range(REFRESH_BATCH + 7)]
    assert all((await survivor.online("t", [f"user{n}" for n in range(50)])).values())


async def test_presence_keys_share_one_slot(
    valkey_cluster: RunningCluster, cluster_client: Any, prefix: str
) -> None:
    store = ValkeyPresenceStore(cluster_client, prefix)
    await store.add(PresenceEntry("tenant-a", "u", "c"), 30)
    await store.add(PresenceEntry("tenant-b", "v", "d"), 30)
    keys = [
        f"{prefix}{{presence}}:index",
        f"{prefix}{{presence}}:u:tenant-a:u",
        f"{prefix}{{presence}}:u:tenant-b:v",
    ]
    assert len({cluster_client.keyslot(key) for key in keys}) == 1
    owner = valkey_cluster.client(_owner(valkey_cluster, cluster_client, keys[0]))
    try:
        assert owner.exists(*keys) == len(keys)
    finally:
        owner.close()
