"""BatchedLookup: concurrent point lookups share one fetch, one fetch at a time, and a key
asked for while a fetch runs waits for the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import pytest

from hero.data.batching import BatchedLookup


class Source:
    """A fetch that records each batch and can be held mid-fetch."""

    def __init__(self, values: dict[str, int]) -> None:
        self.values = values
        self.batches: list[list[str]] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self.fail: Exception | None = None

    async def fetch(self, keys: Collection[str]) -> dict[str, int]:
        self.batches.append(list(keys))
        # What the "query" sees is fixed when it starts.
        seen = {key: self.values[key] for key in keys if key in self.values}
        self.entered.set()
        await self.release.wait()
        if self.fail is not None:
            failure, self.fail = self.fail, None
            raise failure
        return seen


async def test_callers_of_one_loop_iteration_share_one_fetch() -> None:
    source = Source({"a": 1, "b": 2})
    lookup = BatchedLookup(source.fetch, lambda: -1)
    answers = await asyncio.gather(*(lookup.get(k) for k in ("a", "b", "a", "zz")))
    assert answers == [1, 2, 1, -1]
    assert source.batches == [["a", "b", "zz"]]
    assert not lookup.running


async def test_a_key_asked_during_a_fetch_waits_for_the_next_one() -> None:
    source = Source({"a": 1, "b": 2})
    lookup = BatchedLookup(source.fetch, lambda: -1)
    source.release.clear()
    first = asyncio.ensure_future(lookup.get("a"))
    await asyncio.wait_for(source.entered.wait(), 5)
    # "a" again and "b" arrive while the first fetch is in flight: a new batch, after it.
    late = asyncio.ensure_future(asyncio.gather(lookup.get("a"), lookup.get("b")))
    await asyncio.sleep(0)
    assert source.batches == [["a"]]
    source.values["a"] = 10  # committed after the first fetch began
    source.release.set()
    assert await asyncio.wait_for(first, 5) == 1
    assert await asyncio.wait_for(late, 5) == [10, 2]
    assert source.batches == [["a"], ["a", "b"]]


async def test_batches_are_capped() -> None:
    source = Source({str(n): n for n in range(7)})
    lookup = BatchedLookup(source.fetch, lambda: -1, max_batch=3)
    answers = await asyncio.gather(*(lookup.get(str(n)) for n in range(7)))
    assert answers == list(range(7))
    assert [len(batch) for batch in source.batches] == [3, 3, 1]


async def test_a_failed_fetch_fails_its_batch_only() -> None:
    source = Source({"a": 1})
    lookup = BatchedLookup(source.fetch, lambda: -1)
    source.fail = RuntimeError("database down")
    results = await asyncio.gather(lookup.get("a"), lookup.get("b"), return_exceptions=True)
    assert [str(r) for r in results] == ["database down", "database down"]
    assert await lookup.get("a") == 1


async def test_a_cancelled_caller_leaves_the_others_their_answer() -> None:
    source = Source({"a": 1})
    lookup = BatchedLookup(source.fetch, lambda: -1)
    source.release.clear()
    gone = asyncio.ensure_future(lookup.get("a"))
    stays = asyncio.ensure_future(lookup.get("a"))
    await asyncio.wait_for(source.entered.wait(), 5)
    gone.cancel()
    source.release.set()
    assert await asyncio.wait_for(stays, 5) == 1
    assert gone.cancelled()


async def test_cancelling_the_runner_cancels_every_waiter() -> None:
    source = Source({})
    lookup = BatchedLookup(source.fetch, lambda: -1)
    source.release.clear()
    waiting = asyncio.ensure_future(lookup.get("a"))
    await asyncio.wait_for(source.entered.wait(), 5)
    queued = asyncio.ensure_future(lookup.get("b"))
    await asyncio.sleep(0)
    runner = lookup._runner
    assert runner is not None
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(queued, 5)
    assert not lookup.running


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        BatchedLookup(Source({}).fetch, lambda: -1, max_batch=0)


async def test_pace_spaces_batches_but_not_a_full_one() -> None:
    source = Source({"a": 1, "b": 2, "c": 3, "d": 4})
    lookup = BatchedLookup(source.fetch, lambda: -1, max_batch=2, pace=3600)
    # The first batch after an idle moment starts at once.
    assert await asyncio.wait_for(lookup.get("a"), 5) == 1
    # Within the pace, one more key waits...
    held = asyncio.ensure_future(lookup.get("b"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert source.batches == [["a"]]
    assert not held.done()
    # ...until the batch is full: then it goes at once.
    assert await asyncio.wait_for(lookup.get("c"), 5) == 3
    assert await held == 2
    assert source.batches == [["a"], ["b", "c"]]


def test_pace_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="pace"):
        BatchedLookup(Source({}).fetch, lambda: -1, pace=-1)
