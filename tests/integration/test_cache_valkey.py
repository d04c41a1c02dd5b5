"""ValkeyCache on a real valkey-server: the Cache conformance suite plus Valkey specifics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hero.caching import (
    Cache,
    CacheUnavailableError,
    ValkeyCache,
    create_valkey_client,
)
from hero.caching.testing import CONFORMANCE_CASES, CacheCase, CacheHarness
from hero.platform.settings import load_settings
from tests.support.servers import UNIT
from tests.support.valkey import ValkeyEndpoint, free_port, wait_server_time

# The valkey fixtures (valkey_server, valkey_key_prefix, async_valkey_client) live in
# tests/support/valkey_fixtures.py so every integration test can share the one session server.
pytest_plugins = ("tests.support.valkey_fixtures",)

pytestmark = pytest.mark.valkey

VALKEY_UNIT = 0.05 * UNIT
"""TTL scale of the conformance suite here: real time passes, so keep it small."""


@pytest.fixture
def cache(async_valkey_client: Any, valkey_key_prefix: str) -> ValkeyCache:
    return ValkeyCache(async_valkey_client, valkey_key_prefix)


@pytest.mark.parametrize("case", CONFORMANCE_CASES, ids=lambda case: case.__name__)
async def test_conformance(case: CacheCase, cache: ValkeyCache, async_valkey_client: Any) -> None:
    async def elapse(seconds: float) -> None:
        await wait_server_time(async_valkey_client, seconds)

    await case(CacheHarness(cache=cache, elapse=elapse, unit=VALKEY_UNIT))


async def test_is_a_cache_that_borrows_the_client(
    cache: ValkeyCache, async_valkey_client: Any, valkey_key_prefix: str
) -> None:
    assert isinstance(cache, Cache)
    assert cache.client is async_valkey_client
    assert cache.key_prefix == valkey_key_prefix
    assert cache.prefixed("x:").client is async_valkey_client


async def test_claim_is_set_nx_px_under_the_prefix(
    cache: ValkeyCache, async_valkey_client: Any, valkey_key_prefix: str
) -> None:
    assert await cache.claim("chat:typing:c:u", 3) is True
    raw_key = valkey_key_prefix + "chat:typing:c:u"
    assert await async_valkey_client.get(raw_key) == b"1"
    pttl = await async_valkey_client.pttl(raw_key)
    assert 0 < pttl <= 3000
    assert await cache.claim("chat:typing:c:u", 3) is False
    assert await async_valkey_client.pttl(raw_key) <= pttl  # a losing claim never extends


async def test_claim_window_reopens_after_expiry(
    cache: ValkeyCache, async_valkey_client: Any, valkey_key_prefix: str
) -> None:
    assert await cache.claim("w", 0.05) is True
    assert await cache.claim("w", 0.05) is False
    raw_key = valkey_key_prefix + "w"
    async with asyncio.timeout(5 * UNIT):
        # Bounded poll of the key's state (PTTL -2: the key is gone); expiry raises no event.
        while await async_valkey_client.pttl(raw_key) != -2:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    assert await cache.claim("w", 0.05) is True


async def test_twenty_claimers_on_two_instances_one_winner(
    valkey_server: ValkeyEndpoint, valkey_key_prefix: str
) -> None:
    clients = [create_valkey_client(valkey_server.url) for _ in range(2)]
    try:
        caches = [ValkeyCache(client, valkey_key_prefix) for client in clients]
        results = await asyncio.gather(*(caches[i % 2].claim("race", 10) for i in range(20)))
        assert results.count(True) == 1
    finally:
        for client in clients:
            await client.aclose()


async def test_set_ttl_and_persistence(
    cache: ValkeyCache, async_valkey_client: Any, valkey_key_prefix: str
) -> None:
    await cache.set("t", b"v", ttl_seconds=2.5)
    assert 0 < await async_valkey_client.pttl(valkey_key_prefix + "t") <= 2500
    await cache.set("t", b"w")
    assert await async_valkey_client.pttl(valkey_key_prefix + "t") == -1  # no expiry


async def test_increment_window_is_set_once(
    cache: ValkeyCache, async_valkey_client: Any, valkey_key_prefix: str
) -> None:
    assert await cache.increment("n", 5) == 1
    first = await async_valkey_client.pttl(valkey_key_prefix + "n")
    assert 0 < first <= 5000
    assert await cache.increment("n", 50) == 2
    assert await async_valkey_client.pttl(valkey_key_prefix + "n") <= first


async def test_prefixes_isolate_separate_caches(
    async_valkey_client: Any, valkey_key_prefix: str
) -> None:
    a = ValkeyCache(async_valkey_client, valkey_key_prefix + "a:")
    b = ValkeyCache(async_valkey_client, valkey_key_prefix + "b:")
    await a.set("k", b"a")
    assert await b.get("k") is None
    assert await a.claim("c", 10) is True
    assert await b.claim("c", 10) is True


async def test_settings_endpoint_forms_connect(valkey_server: ValkeyEndpoint) -> None:
    port = valkey_server.port
    for value in (
        f"127.0.0.1:{port},abortConnect=false,connectTimeout=5000",
        f"valkey://127.0.0.1:{port}/1",
        f"redis://127.0.0.1:{port}",
    ):
        url = load_settings(None, {"CachingOptions__Redis": value}).caching.redis_url()
        assert url is not None
        client = create_valkey_client(url)
        try:
            assert await client.ping() is True
        finally:
            await client.aclose()


async def test_unreachable_server_raises_cache_unavailable() -> None:
    port = free_port()  # bound, then released: nothing listens there
    client = create_valkey_client(
        f"redis://127.0.0.1:{port}/0", socket_timeout=UNIT, connect_timeout=UNIT
    )  # no I/O yet: constructing never fails
    cache = ValkeyCache(client, "x:")
    try:
        with pytest.raises(CacheUnavailableError):
            await cache.get("k")
        with pytest.raises(CacheUnavailableError):
            await cache.claim("k", 1)
    finally:
        await client.aclose()
