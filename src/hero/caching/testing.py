"""The Cache conformance suite: one set of cases every :class:`Cache` backend must pass.

Run each case in :data:`CONFORMANCE_CASES` against a fresh :class:`CacheHarness`::

    @pytest.mark.parametrize("case", CONFORMANCE_CASES, ids=lambda case: case.__name__)
    async def test_conformance(case, harness):
        await case(harness)

A harness pairs a cache (with a key prefix no other test uses) with a way to let time pass:
a fake clock for :class:`MemoryCache`, waiting on the server's clock for Valkey. All TTLs in
the cases are multiples of ``harness.unit``; a case only relies on "still there" for keys whose
TTL is at least four units away, so a slow machine needs a larger unit, not a rewrite.
No pytest import here: failures raise ``AssertionError`` with a message.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from hero.caching.base import Cache, CacheTypeError

__all__ = ["CONFORMANCE_CASES", "CacheCase", "CacheHarness"]


@dataclass(frozen=True, slots=True)
class CacheHarness:
    """A cache under test plus control of time.

    ``elapse(seconds)`` returns once at least ``seconds`` have passed on the clock the cache
    uses for expiry. ``unit`` is the scale of every TTL in the suite (seconds).
    """

    cache: Cache
    elapse: Callable[[float], Awaitable[None]]
    unit: float = 1.0


CacheCase = Callable[[CacheHarness], Awaitable[None]]
"""One conformance case."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


async def _expect_raises(error: type[Exception], operation: Awaitable[Any], what: str) -> None:
    try:
        await operation
    except error:
        return
    raise AssertionError(f"{what}: expected {error.__name__}")


async def values_round_trip(h: CacheHarness) -> None:
    cache = h.cache
    _expect(await cache.get("v") is None, "a missing key reads as None")
    await cache.set("v", b"one")
    _expect(await cache.get("v") == b"one", "get returns what set stored")
    await cache.set("v", b"two")
    _expect(await cache.get("v") == b"two", "set replaces the value")
    await cache.set("empty", b"")
    _expect(await cache.get("empty") == b"", "an empty value is not a missing key")


async def delete_reports_removal(h: CacheHarness) -> None:
    cache = h.cache
    await cache.set("d", b"x")
    _expect(await cache.delete("d") is True, "delete of a live key returns True")
    _expect(await cache.delete("d") is False, "delete of a missing key returns False")
    _expect(await cache.get("d") is None, "a deleted key reads as None")
    await cache.set("short", b"x", ttl_seconds=4 * h.unit)
    await h.elapse(5 * h.unit)
    _expect(await cache.delete("short") is False, "delete of an expired key returns False")


async def set_with_ttl_expires(h: CacheHarness) -> None:
    cache = h.cache
    await cache.set("t", b"x", ttl_seconds=4 * h.unit)
    await cache.set("forever", b"y")
    _expect(await cache.get("t") == b"x", "a key is readable before its TTL")
    await h.elapse(5 * h.unit)
    _expect(await cache.get("t") is None, "a key is gone after its TTL")
    _expect(await cache.get("forever") == b"y", "a key without TTL never expires")


async def set_replaces_expiry(h: CacheHarness) -> None:
    cache = h.cache
    await cache.set("r", b"a", ttl_seconds=4 * h.unit)
    await cache.set("r", b"b")
    await h.elapse(5 * h.unit)
    _expect(await cache.get("r") == b"b", "set without TTL clears an earlier TTL")


async def claim_once_per_window(h: CacheHarness) -> None:
    cache = h.cache
    _expect(await cache.claim("c", 4 * h.unit) is True, "the first claim wins")
    for _ in range(3):
        _expect(await cache.claim("c", 4 * h.unit) is False, "later claims in the window lose")
    await h.elapse(5 * h.unit)
    _expect(await cache.claim("c", 4 * h.unit) is True, "the first claim of a new window wins")
    _expect(await cache.claim("c", 4 * h.unit) is False, "the new window is claimed once")


async def claim_concurrent_single_winner(h: CacheHarness) -> None:
    results = await asyncio.gather(*(h.cache.claim("race", 20 * h.unit) for _ in range(20)))
    _expect(results.count(True) == 1, f"exactly one of 20 concurrent claims wins: {results}")


async def claim_does_not_extend_window(h: CacheHarness) -> None:
    cache = h.cache
    _expect(await cache.claim("w", 8 * h.unit) is True, "the first claim wins")
    await h.elapse(2 * h.unit)
    _expect(await cache.claim("w", 8 * h.unit) is False, "a claim inside the window loses")
    await h.elapse(7 * h.unit)
    _expect(
        await cache.claim("w", 8 * h.unit) is True,
        "a losing claim must not extend the window",
    )


async def claim_keys_are_independent(h: CacheHarness) -> None:
    cache = h.cache
    _expect(await cache.claim("k1", 20 * h.unit) is True, "k1 is claimed")
    _expect(await cache.claim("k2", 20 * h.unit) is True, "k2 is independent of k1")
    await cache.delete("k1")
    _expect(await cache.claim("k1", 20 * h.unit) is True, "delete ends the window")


async def prefixed_views_are_isolated(h: CacheHarness) -> None:
    cache = h.cache
    a, b = cache.prefixed("a:"), cache.prefixed("b:")
    _expect(a.key_prefix == cache.key_prefix + "a:", "prefixes compose")
    await a.set("k", b"from-a")
    _expect(await b.get("k") is None, "another prefix does not see the key")
    _expect(await cache.get("a:k") == b"from-a", "a view shares the parent's store")
    _expect(await a.claim("t", 20 * h.unit) is True, "claim under prefix a")
    _expect(await b.claim("t", 20 * h.unit) is True, "claim under prefix b is separate")
    _expect(await a.claim("t", 20 * h.unit) is False, "prefix a's window holds")


async def increment_fixed_window(h: CacheHarness) -> None:
    cache = h.cache
    counts = [await cache.increment("n", 4 * h.unit) for _ in range(3)]
    _expect(counts == [1, 2, 3], f"increment counts up: {counts}")
    _expect(await cache.get("n") == b"3", "a counter reads as its decimal bytes")
    await h.elapse(5 * h.unit)
    _expect(await cache.increment("n", 4 * h.unit) == 1, "a new window starts at 1")


async def increment_concurrent(h: CacheHarness) -> None:
    counts = await asyncio.gather(*(h.cache.increment("m", 20 * h.unit) for _ in range(20)))
    _expect(sorted(counts) == list(range(1, 21)), f"every increment counts once: {counts}")


async def increment_needs_an_integer(h: CacheHarness) -> None:
    cache = h.cache
    await cache.set("value", b"x")
    await _expect_raises(CacheTypeError, cache.increment("value", 20 * h.unit), "increment on x")


async def ttl_must_be_positive(h: CacheHarness) -> None:
    cache = h.cache
    for bad in (0.0, -1.0, math.nan, math.inf):
        await _expect_raises(ValueError, cache.claim("x", bad), f"claim ttl {bad}")
        await _expect_raises(ValueError, cache.set("x", b"v", bad), f"set ttl {bad}")
        await _expect_raises(ValueError, cache.increment("x", bad), f"increment ttl {bad}")
    _expect(await cache.get("x") is None, "rejected calls store nothing")


CONFORMANCE_CASES: Final[tuple[CacheCase, ...]] = (
    values_round_trip,
    delete_reports_removal,
    set_with_ttl_expires,
    set_replaces_expiry,
    claim_once_per_window,
    claim_concurrent_single_winner,
    claim_does_not_extend_window,
    claim_keys_are_independent,
    prefixed_views_are_isolated,
    increment_fixed_window,
    increment_concurrent,
    increment_needs_an_integer,
    ttl_must_be_positive,
)
"""Every conformance case, in a stable order (use ``case.__name__`` as the test id)."""
