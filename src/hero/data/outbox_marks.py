"""The outbox's "sent" marks, written in batches after delivery, and its PostgreSQL leases.

Right after a commit the outbox hands the new events to the hub from memory and records
them here as delivered. A background task writes the marks in one UPDATE per round, so many
messages share one statement; a stream's lease is released once none of its marks is
waiting. A mark that has not been written yet only risks a repeat: if the process dies
first, the events are unsent in the database and another instance (or the next start)
delivers them again (at least once).

The lease (PostgreSQL): while this process has delivered events of a stream that are not
marked yet, it holds a session-level advisory lock on the stream's key on a connection of
its own. The outbox's database path takes the same key (`pg_advisory_xact_lock`), so no
other instance reads those events as pending before their marks commit; if this process
dies, its connection closes and PostgreSQL releases the lease. SQLite has one instance, so
it needs no lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator

from sqlalchemy import Executable, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hero.data.columns import utc_now
from hero.data.database import Database

logger = logging.getLogger("hero.outbox")

_TRY_LEASE = text("SELECT pg_try_advisory_lock(:key)")
_END_LEASE = text("SELECT pg_advisory_unlock(:key)")


def lock_key(stream: str) -> int:
    """A stable signed 64-bit advisory-lock key for `stream`."""
    value = zlib.crc32(stream.encode()) | (zlib.adler32(stream.encode()) << 32)
    return value - (1 << 64) if value >= (1 << 63) else value


class Leases:
    """Session-level advisory locks on one dedicated autocommit connection (PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._lock = asyncio.Lock()
        self.held: set[str] = set()

    async def _open(self) -> AsyncConnection:
        if self._connection is None:
            connection = await self._engine.connect()
            self._connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        return self._connection

    async def acquire(self, stream: str) -> bool:
        """True when this process holds the lease of `stream` (taken now if free)."""
        if stream in self.held:
            return True
        async with self._lock:
            if stream in self.held:
                return True
            try:
                connection = await self._open()
                got = await connection.scalar(_TRY_LEASE, {"key": lock_key(stream)})
            except (SQLAlchemyError, OSError) as exc:
                await self._lost(exc)
                return False
            if got:
                self.held.add(stream)
            return bool(got)

    async def mark(self, statement: Executable, seqs: Collection[int]) -> None:
        """Write the "sent" marks on the lease connection (autocommit: one round trip)."""
        async with self._lock:
            try:
                connection = await self._open()
                await connection.execute(statement, {"seqs": list(seqs), "now": utc_now()})
            except (SQLAlchemyError, OSError) as exc:
                await self._lost(exc)
                raise

    async def release(self, streams: Iterable[str]) -> None:
        """Give up the leases of `streams` (forgotten first, so nobody relies on them)."""
        ending = [s for s in streams if s in self.held]
        self.held.difference_update(ending)
        if not ending:
            return
        async with self._lock:
            try:
                connection = await self._open()
                for stream in ending:
                    await connection.execute(_END_LEASE, {"key": lock_key(stream)})
            except (SQLAlchemyError, OSError) as exc:
                await self._lost(exc)

    async def _lost(self, exc: BaseException) -> None:
        # PostgreSQL releases every lease of a connection that is gone; forget them here.
        logger.warning("outbox: lease connection lost (%s); leases dropped", type(exc).__name__)
        self.held.clear()
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await connection.invalidate()
                await connection.close()
            except (SQLAlchemyError, OSError):
                pass

    async def aclose(self) -> None:
        async with self._lock:
            self.held.clear()
            connection, self._connection = self._connection, None
            if connection is not None:
                with contextlib.suppress(SQLAlchemyError, OSError):
                    await connection.close()  # the server ends the session's leases


class SentMarks:
    """Delivered events whose "sent" mark is still to be written, and the writer task."""

    def __init__(
        self,
        database: Database,
        mark: Executable,
        *,
        retry_after: float = 1.0,
        linger: float = 0.1,
    ) -> None:
        self._database = database
        self._mark = mark  # UPDATE ... SET sent_at = :now WHERE seq IN :seqs (built once)
        self.retry_after = retry_after
        self.linger = linger
        """A lease with nothing waiting is kept this long after its last use: a busy stream
        does not take and give back its lease for every message."""
        self._used: dict[str, float] = {}
        self.leases = Leases(database.engine) if database.is_postgresql else None
        self._waiting: dict[int, str] = {}
        self._marked: dict[int, int] = {}  # seq -> generation of the batch that marked it
        self._generation = 0
        self._readers: list[int] = []  # the generation each read in progress began at
        self._per_stream: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def reading(self) -> Iterator[Callable[[int], bool]]:
        """Around a read of unsent events: yields `delivered(seq)`, true for an event this
        process delivered whose mark was waiting when the read began or is still waiting
        (the read may have seen it unsent just before its mark committed)."""
        began = self._generation
        self._readers.append(began)

        def delivered(seq: int) -> bool:
            return seq in self._waiting or self._marked.get(seq, -1) >= began

        try:
            yield delivered
        finally:
            self._readers.remove(began)

    async def lease(self, stream: str) -> bool:
        if self.leases is None:
            return True
        self._used[stream] = time.monotonic()
        return await self.leases.acquire(stream)

    def add(self, stream: str, seqs: Iterable[int]) -> None:
        for seq in seqs:
            if seq not in self._waiting:
                self._waiting[seq] = stream
                self._per_stream[stream] += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    async def _run(self) -> None:
        while True:
            held = self.leases is not None and self.leases.held
            try:
                # with leases held, wake up in time to give back the idle ones
                async with asyncio.timeout(self.linger if held else None):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.write()
            except (SQLAlchemyError, OSError) as exc:
                logger.warning("outbox: sent marks not written yet (%s)", type(exc).__name__)
                await asyncio.sleep(self.retry_after)
                self._wake.set()

    async def write(self, streams: Collection[str] | None = None, *, release: bool = False) -> None:
        """Write the waiting marks (of `streams`, or all) now, then release the leases of the
        streams that have none left and were not used for `linger` seconds (`release`: of
        `streams` at once)."""
        async with self._writing:
            batch = [
                seq for seq, stream in self._waiting.items() if streams is None or stream in streams
            ]
            if batch:
                await self._update(batch)
                self._forget_marked()
                for seq in batch:
                    self._marked[seq] = self._generation
                    stream = self._waiting.pop(seq)
                    self._per_stream[stream] -= 1
                    if not self._per_stream[stream]:
                        del self._per_stream[stream]
            if self.leases is not None:
                before = time.monotonic() - self.linger
                idle = [
                    s
                    for s in self.leases.held
                    if s not in self._per_stream
                    and (
                        (release and streams is not None and s in streams)
                        or self._used.get(s, 0.0) <= before
                    )
                ]
                for stream in idle:
                    self._used.pop(stream, None)
                await self.leases.release(idle)

    def _forget_marked(self) -> None:
        """Marks committed before every read in progress began are seen by those reads."""
        self._generation += 1
        oldest = min(self._readers, default=self._generation)
        if self._marked:
            self._marked = {seq: g for seq, g in self._marked.items() if g >= oldest}

    async def _update(self, seqs: list[int]) -> None:
        if self.leases is not None:
            await self.leases.mark(self._mark, seqs)
            return
        async with self._database.connect() as connection:
            await connection.execute(self._mark, {"seqs": seqs, "now": utc_now()})

    async def aclose(self) -> None:
        """Write what is waiting (best effort), stop the writer, end the leases."""
        task, self._task = self._task, None
        if task is not None:
            async with self._writing:  # not in the middle of a statement: that would break it
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            await self.write(release=True)
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("outbox: sent marks not written at close (%s)", type(exc).__name__)
        if self.leases is not None:
            await self.leases.aclose()
