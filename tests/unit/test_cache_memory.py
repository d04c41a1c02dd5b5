"""MemoryCache: the Cache conformance suite on a fake clock, plus memory-only behaviour."""

from __future__ import annotations

import pytest

from hero.caching import Cache, MemoryCache
from hero.caching.testing import CONFORMANCE_CASES, CacheCase, CacheHarness


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> MemoryCache:
    return MemoryCache(key_prefix="test:", clock=clock)


@pytest.mark.parametrize("case", CONFORMANCE_CASES, ids=lambda case: case.__name__)
async def test_conformance(case: CacheCase, cache: MemoryCache, clock: FakeClock) -> None:
    await case(CacheHarness(cache=cache, elapse=clock.advance, unit=1.0))


async def test_is_a_cache(cache: MemoryCache) -> None:
    assert isinstance(cache, Cache)
    assert cache.key_prefix == "test:"
    assert cache.prefixed("x:").key_prefix == "test:x:"


async def test_claim_true_exactly_once_until_the_window_ends(
    cache: MemoryCache, clock: FakeClock
) -> None:
    assert await cache.claim("chat:typing:c:u", 3) is True
    await clock.advance(2.999)
    assert await cache.claim("chat:typing:c:u", 3) is False
    await clock.advance(0.001)
    assert await cache.claim("chat:typing:c:u", 3) is True


async def test_ttl_has_millisecond_resolution_rounded_up(
    cache: MemoryCache, clock: FakeClock
) -> None:
    await cache.set("k", b"v", ttl_seconds=0.0001)  # rounds up to 1 ms
    assert await cache.get("k") == b"v"
    await clock.advance(0.001)
    assert await cache.get("k") is None


async def test_prefix_isolation_between_instances_sharing_nothing(clock: FakeClock) -> None:
    first = MemoryCache(key_prefix="a:", clock=clock)
    second = MemoryCache(key_prefix="a:", clock=clock)
    await first.set("k", b"1")
    assert await second.get("k") is None  # separate MemoryCache objects are separate stores


async def test_expired_keys_are_swept_without_being_read(
    cache: MemoryCache, clock: FakeClock
) -> None:
    for index in range(300):
        assert await cache.claim(f"typing:{index}", 1)
    await clock.advance(2)
    for index in range(300):
        await cache.set(f"live:{index}", b"x")
    entries = cache._store.entries
    assert not any(key.startswith("test:typing:") for key in entries)
    assert sum(key.startswith("test:live:") for key in entries) == 300


async def test_set_copies_the_value(cache: MemoryCache) -> None:
    value = bytearray(b"abc")
    await cache.set("k", bytes(value))
    value[0] = ord("z")
    assert await cache.get("k") == b"abc"
