"""Point lookups made at the same time, answered by one query.

Every hub connect asks the database which channels its user belongs to. When connections
arrive in a burst, one query per connect costs a pooled connection each (the pool grows
past its size, and SQLite's overflow connections are opened and closed every time) and a
round of thread hops each. `BatchedLookup` gathers the keys asked for while the previous
query runs and asks for all of them in one query.

It is one small state machine: *idle* (no runner); *pausing* (the runner waits out the
pace, or until a batch is full); *fetching* (one batch's query is in flight). A key asked
for while a batch is in flight waits for the next batch, so every answer comes from a
query that started after the question was asked: a caller sees everything committed
before it asked, as with a query of its own.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Fetch = Callable[[Collection[K]], Awaitable[Mapping[K, V]]]
"""Answers for a batch of distinct keys; a key absent from the mapping gets `missing()`.
Callers that asked for the same key in one batch share its value."""

DEFAULT_MAX_BATCH = 256
"""Keys per query: well under SQLite's and PostgreSQL's bound-parameter limits even when a
key is several parameters."""


class BatchedLookup(Generic[K, V]):
    """`await lookup.get(key)`: the value `fetch` gives for `key`, fetched together with the
    keys other callers asked for meanwhile; at most one `fetch` runs at a time.

    `pace`: the least time from one batch's start to the next one's while callers keep
    coming (a full batch does not wait). The first batch after an idle moment starts at
    once; under a steady stream of callers, fetches happen at most once per `pace` and
    each takes more keys, instead of one fetch after another for ever.

    A failing `fetch` fails every caller of that batch with its exception; the next batch
    starts afresh. A cancelled caller only stops waiting: its batch still runs for the
    others.
    """

    __slots__ = (
        "_fetch",
        "_full",
        "_last_start",
        "_max_batch",
        "_missing",
        "_pace",
        "_runner",
        "_waiting",
    )

    def __init__(
        self,
        fetch: Fetch[K, V],
        missing: Callable[[], V],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        pace: float = 0.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if pace < 0:
            raise ValueError("pace must not be negative")
        self._fetch = fetch
        self._missing = missing
        self._max_batch = max_batch
        self._pace = pace
        self._last_start = -pace
        self._waiting: dict[K, list[asyncio.Future[V]]] = {}
        self._runner: asyncio.Task[None] | None = None
        self._full: asyncio.Future[None] | None = None  # the runner's pause, while pacing

    @property
    def running(self) -> bool:
        """Whether a batch is being fetched or waits to be."""
        return self._runner is not None

    async def get(self, key: K) -> V:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[V] = loop.create_future()
        self._waiting.setdefault(key, []).append(answer)
        if self._full is not None and len(self._waiting) >= self._max_batch:
            _settle(self._full)  # a full batch does not wait for the pace
        if self._runner is None:
            # The runner's first step comes after this loop iteration: callers arriving in
            # the same iteration join the first batch.
            self._runner = loop.create_task(self._run())
        return await answer

    async def _run(self) -> None:
        batch: dict[K, list[asyncio.Future[V]]] = {}
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                wait = self._last_start + self._pace - loop.time()
                if wait > 0 and len(self._waiting) < self._max_batch:
                    self._full = loop.create_future()
                    timer = loop.call_later(wait, _settle, self._full)
                    try:
                        await self._full
                    finally:
                        timer.cancel()
                        self._full = None
                self._last_start = loop.time()
                keys = list(itertools.islice(self._waiting, self._max_batch))
                batch = {key: self._waiting.pop(key) for key in keys}
                try:
                    found = await self._fetch(keys)
                except Exception as exc:
                    for answers in batch.values():
                        _fail(answers, exc)
                    continue
                for key, answers in batch.items():
                    for answer in answers:
                        if not answer.done():
                            answer.set_result(found[key] if key in found else self._missing())
                batch = {}
        except BaseException:
            # Cancelled (the loop is going down): nobody may wait for ever.
            for answers in itertools.chain(batch.values(), self._waiting.values()):
                for answer in answers:
                    answer.cancel()
            self._waiting.clear()
            raise
        finally:
            self._runner = None


def _settle(pause: asyncio.Future[None]) -> None:
    if not pause.done():
        pause.set_result(None)


def _fail(answers: list[asyncio.Future[V]], exc: Exception) -> None:
    for answer in answers:
        if not answer.done():
            answer.set_exception(exc)
