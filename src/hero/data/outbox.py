"""The transactional outbox: events written with the data that caused them, sent after commit.

A command opens `outbox.transaction()`, writes its rows and `publish()`es its events on the
same session; both commit together or not at all, so a rolled-back transaction never leaks
an event and a committed one is never lost. Right after the commit the new events are handed
to `deliver` in order, from memory, and their "sent" marks are written in batches by a
background task (`hero.data.outbox_marks`): one transaction per command, not two.

The fast path needs to know that nothing older on the stream is still undelivered. The
INSERT returns, for each stream, the seq of the newest event committed before it (`prev`);
this process remembers, per stream, the seq up to which it knows everything was delivered
(`_through`). When they match (or the stream had nothing before), the new events go out
from memory; otherwise (a failed delivery, another instance wrote on the stream, a restart)
the database path delivers every unsent event of the stream in `seq` order and marks them
in the same transaction, as the dispatcher does. Whatever is left unsent (the process died
after its commit, the backplane was down) is picked up by `run()`, the dispatcher every
instance runs, once it is `stale_after` seconds old.

Order: events of one stream (a channel, a user) are delivered in the order of their `seq`,
one deliverer at a time per stream. Within one process an asyncio lock per stream does it;
across instances on PostgreSQL an advisory lock per stream does it: the database path takes
it for its transaction, and the fast path holds it as a session-level lease until the marks
of what it delivered are written; PostgreSQL releases either if its holder dies, so the lock
is the lease. Writers that need commit order to equal `seq` order per stream take a row
lock on the stream's owner row first (the chat module locks the channel).

A payload is handed to `deliver` at least once: twice only when a deliverer dies (or loses
its database connection) after delivering and before its "sent" mark committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Index,
    Integer,
    String,
    Table,
    bindparam,
    delete,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hero.data.columns import UtcDateTime, utc_now
from hero.data.database import Database
from hero.data.outbox_marks import SentMarks, lock_key

logger = logging.getLogger("hero.outbox")

KNOWN_STREAMS = 100_000
"""How many streams' delivered-through seq a process remembers (oldest forgotten first)."""

Deliver = Callable[[Mapping[str, Any]], Awaitable[None]]
"""Sends one stored payload; raising leaves it (and the rest of its stream) unsent."""


class OutboxModel(DeclarativeBase):
    """The outbox's own declarative base (its tables are migrated with the platform's)."""


class OutboxEvent(OutboxModel):
    """One event to send: `payload` is plain JSON data, opaque to the outbox."""

    __tablename__ = "outbox_events"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[str] = mapped_column(String(128))
    stream: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_outbox_events_stream_seq", "stream", "seq"),
        Index("ix_outbox_events_sent_at", "sent_at"),
    )


_EVENTS: Table = OutboxEvent.__table__  # type: ignore[assignment]
_INSERT = insert(_EVENTS).returning(
    _EVENTS.c.seq,
    # Spelled out: the compiler does not correlate a subquery inside RETURNING.
    literal_column(
        "(SELECT max(earlier.seq) FROM outbox_events AS earlier"
        " WHERE earlier.stream = outbox_events.stream AND earlier.seq < outbox_events.seq)"
    ),
    sort_by_parameter_order=True,
)
"""Writes a unit of work's events; each row comes back with its seq and the seq of the
newest event of its stream that this statement's snapshot sees before it (None: none)."""

_MARK_SENT = (
    update(OutboxEvent)
    .where(OutboxEvent.seq.in_(bindparam("seqs", expanding=True)))
    .values(sent_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)


@dataclass(slots=True)
class Written:
    """An event of this process's unit of work, committed: what the fast path delivers."""

    seq: int
    stream: str
    payload: dict[str, Any]
    prev: int | None


@dataclass
class UnitOfWork:
    """One transaction: the session to write rows on and `publish` for its events."""

    session: AsyncSession
    streams: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def publish(self, tenant_id: str, stream: str, payload: Mapping[str, Any]) -> None:
        """Store `payload` to be delivered after this transaction commits, after every
        event already published on `stream` (written with the transaction's other rows)."""
        self.events.append(
            {
                "tenant_id": tenant_id,
                "stream": stream,
                "payload": dict(payload),
                "created_at": utc_now(),
                "sent_at": None,
                "attempts": 0,
            }
        )
        if stream not in self.streams:
            self.streams.append(stream)

    async def write_events(self) -> list[Written]:
        """INSERT the published events (at the end of the transaction, after its locks)."""
        if not self.events:
            return []
        connection = await self.session.connection()
        rows = (await connection.execute(_INSERT, self.events)).all()
        return [
            Written(int(row[0]), event["stream"], event["payload"], row[1])
            for row, event in zip(rows, self.events, strict=True)
        ]


@dataclass
class OutboxCounters:
    """What this instance's outbox did, for metrics and tests."""

    delivered: int = 0
    failed: int = 0
    swept: int = 0


@dataclass
class _StreamLock:
    """One stream's deliverer lock and how many tasks hold it or wait for it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class Outbox:
    """Writes events with their transaction and delivers them after it commits."""

    def __init__(
        self,
        database: Database,
        deliver: Deliver,
        *,
        stale_after: float = 2.0,
        sweep_interval: float = 1.0,
        batch_size: int = 200,
        keep_sent_for: float = 3600.0,
    ) -> None:
        self._database = database
        self._deliver = deliver
        self.stale_after = stale_after
        self.sweep_interval = sweep_interval
        self.batch_size = batch_size
        self.keep_sent_for = keep_sent_for
        self._locks: dict[str, _StreamLock] = {}
        self._through: dict[str, int] = {}
        self._inflight: dict[str, dict[int, asyncio.Future[None]]] = {}
        self._inserting: dict[str, list[asyncio.Future[None]]] = {}
        self.marks = SentMarks(database, _MARK_SENT, retry_after=sweep_interval)
        self.counters = OutboxCounters()

    @property
    def database(self) -> Database:
        return self._database

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """A unit of work: committed on a normal exit, then its events are delivered
        before this returns (a delivery failure is logged and left to the dispatcher)."""
        tickets: dict[str, tuple[int, asyncio.Future[None]]] = {}
        try:
            async with self._database.sessions() as session, session.begin():
                work = UnitOfWork(session)
                yield work
                reserved = self._reserve(work.streams)
                try:
                    written = await work.write_events()
                    tickets = self._enter(written)
                finally:
                    self._resolve(reserved)
            for stream in work.streams:
                seq, _ = tickets[stream]
                await self._after_earlier(stream, seq)
                await self._deliver_committed(stream, [w for w in written if w.stream == stream])
                self._leave(stream, tickets.pop(stream))
        finally:
            for stream, ticket in tickets.items():
                self._leave(stream, ticket)

    def _enter(self, written: list[Written]) -> dict[str, tuple[int, asyncio.Future[None]]]:
        """Register this unit's events as in flight: on each stream, a later unit of this
        process delivers only after it (a writer that locks nothing may commit after a
        later seq; the database path would not see its event yet)."""
        loop = asyncio.get_running_loop()
        tickets: dict[str, tuple[int, asyncio.Future[None]]] = {}
        for w in written:
            if w.stream not in tickets:
                ticket = tickets[w.stream] = (w.seq, loop.create_future())
                self._inflight.setdefault(w.stream, {})[w.seq] = ticket[1]
        return tickets

    def _leave(self, stream: str, ticket: tuple[int, asyncio.Future[None]]) -> None:
        seq, done = ticket
        if not done.done():
            done.set_result(None)
        waiting = self._inflight.get(stream)
        if waiting is not None:
            waiting.pop(seq, None)
            if not waiting:
                del self._inflight[stream]

    def _reserve(self, streams: list[str]) -> list[tuple[str, asyncio.Future[None]]]:
        """Announce an INSERT on `streams` before it is sent: the database may number it
        before a concurrent one of this process and finish it after (see `_after_earlier`)."""
        loop = asyncio.get_running_loop()
        reserved = [(stream, loop.create_future()) for stream in streams]
        for stream, future in reserved:
            self._inserting.setdefault(stream, []).append(future)
        return reserved

    def _resolve(self, reserved: list[tuple[str, asyncio.Future[None]]]) -> None:
        for stream, future in reserved:
            future.set_result(None)
            waiting = self._inserting.get(stream)
            if waiting is not None:
                waiting.remove(future)
                if not waiting:
                    del self._inserting[stream]

    async def _after_earlier(self, stream: str, seq: int) -> None:
        """Wait until every unit of this process that may hold an earlier seq on `stream` is
        done: first the INSERTs still running (any of them may have numbered its event
        before ours; one sent from now on numbers after), then the units with a lower seq."""
        # Bounded, as a safeguard: past `stale_after` the order is left to the seqs alone.
        inserting = list(self._inserting.get(stream, ()))
        if inserting:
            await asyncio.wait(inserting, timeout=self.stale_after)
        earlier = [f for s, f in self._inflight.get(stream, {}).items() if s < seq]
        if earlier:
            await asyncio.wait(earlier, timeout=self.stale_after)

    async def _deliver_committed(self, stream: str, written: list[Written]) -> None:
        async with self._stream_lock(stream):
            through = self._through.get(stream)
            if through is not None and through >= written[0].seq:
                # Delivered already: a later unit stopped waiting for this one (its wait is
                # bounded by `stale_after`) and took the database path, which sent them.
                written = [w for w in written if w.seq > through]
                if not written:
                    return
            prev = written[0].prev
            known = prev is None or self._through.get(stream) == prev
            if known and await self.marks.lease(stream):
                sent = await self._deliver_in_order(written)
                self.marks.add(stream, (w.seq for w in written[:sent]))
                if sent == len(written):
                    self._know(stream, written[-1].seq)
                else:
                    self._through.pop(stream, None)
                return
            # The database path: hand back this process's own lease first (its marks
            # written), since that path waits for the stream's lock.
            await self._surrender(stream)
            await self._flush_locked(stream, wait=True, newest=written[-1].seq)

    async def _surrender(self, stream: str) -> None:
        leases = self.marks.leases
        if leases is not None and stream in leases.held:
            try:
                await self.marks.write({stream}, release=True)
            except (SQLAlchemyError, OSError) as exc:
                logger.warning("outbox: marks of %s not written (%s)", stream, type(exc).__name__)
                await leases.release({stream})

    async def settle(self) -> None:
        """Write every waiting "sent" mark now (and end the leases no longer needed)."""
        await self.marks.write()

    async def aclose(self) -> None:
        """Write what is waiting (best effort) and end this process's leases."""
        await self.marks.aclose()

    @asynccontextmanager
    async def _stream_lock(self, stream: str) -> AsyncIterator[None]:
        """This process's one deliverer of `stream`. The lock is forgotten once nobody holds
        or waits for it (counted: right after a release `locked()` is False although a
        waiter is about to take it, and a new lock then would admit a second deliverer)."""
        entry = self._locks.get(stream)
        if entry is None:
            entry = self._locks[stream] = _StreamLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0 and self._locks.get(stream) is entry:
                del self._locks[stream]

    async def flush(self, stream: str) -> int:
        """Deliver the unsent events of `stream` in order; returns how many were sent."""
        async with self._stream_lock(stream):
            await self._surrender(stream)
            return await self._flush_locked(stream, wait=True)

    async def _flush_locked(self, stream: str, *, wait: bool, newest: int | None = None) -> int:
        """The database path. `newest`: a seq of this stream known to be committed."""
        try:
            if self._database.is_postgresql:
                return await self._flush_postgresql(stream, wait=wait, newest=newest)
            return await self._flush_single_writer(stream, newest)
        except (SQLAlchemyError, OSError) as exc:
            # OSError: the driver could not connect. The caller's transaction (if any) has
            # committed; the dispatcher delivers what is left once the database is back.
            self._through.pop(stream, None)
            self.counters.failed += 1
            logger.warning(
                "outbox: stream %s left for the dispatcher (database: %s)",
                stream,
                type(exc).__name__,
            )
            return 0

    async def _flush_postgresql(self, stream: str, *, wait: bool, newest: int | None) -> int:
        async with self._database.sessions() as session, session.begin():
            key = {"key": lock_key(stream)}
            if wait:
                await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), key)
            else:
                got = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), key)
                if not got:
                    return 0
            events, complete = await self._pending(session, stream)
            sent = await self._deliver_in_order(events)
            await self._mark(session, events, sent)
        self._learn(stream, events, sent, complete, newest)
        return sent

    async def _flush_single_writer(self, stream: str, newest: int | None) -> int:
        # SQLite: one instance writes; reading, delivering and marking in short separate
        # transactions keeps the write lock free while the network is awaited.
        async with self._database.sessions() as session:
            async with session.begin():
                events, complete = await self._pending(session, stream)
            sent = await self._deliver_in_order(events)
            async with session.begin():
                await self._mark(session, events, sent)
        self._learn(stream, events, sent, complete, newest)
        return sent

    def _know(self, stream: str, seq: int) -> None:
        """Everything of `stream` up to `seq` is delivered. Bounded: a stream forgotten takes
        the database path once."""
        if stream not in self._through and len(self._through) >= KNOWN_STREAMS:
            del self._through[next(iter(self._through))]
        self._through[stream] = seq

    def _learn(
        self,
        stream: str,
        events: Sequence[OutboxEvent],
        sent: int,
        complete: bool,
        newest: int | None,
    ) -> None:
        """After the database path: when it delivered everything unsent, everything of the
        stream up to the newest seq it saw (or was told of) is delivered."""
        if sent < len(events) or not complete:
            self._through.pop(stream, None)
            return
        seen = [e.seq for e in events]
        if newest is not None:
            seen.append(newest)
        if stream in self._through:
            seen.append(self._through[stream])
        if seen:
            self._know(stream, max(seen))

    async def _pending(
        self, session: AsyncSession, stream: str
    ) -> tuple[Sequence[OutboxEvent], bool]:
        """The unsent events of `stream` in seq order, less those this process delivered
        whose marks are still to be written; and whether that is all of them."""
        with self.marks.reading() as delivered:
            result = await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.stream == stream, OutboxEvent.sent_at.is_(None))
                .order_by(OutboxEvent.seq)
                .limit(self.batch_size)
            )
            rows = result.all()
            return [e for e in rows if not delivered(e.seq)], len(rows) < self.batch_size

    async def _deliver_in_order(self, events: Sequence[OutboxEvent | Written]) -> int:
        for index, event in enumerate(events):
            try:
                await self._deliver(event.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counters.failed += 1
                logger.warning(
                    "outbox: event %d on %s not delivered yet (%s: %s); will retry",
                    event.seq,
                    event.stream,
                    type(exc).__name__,
                    exc,
                )
                return index
            self.counters.delivered += 1
        return len(events)

    async def _mark(self, session: AsyncSession, events: Sequence[OutboxEvent], sent: int) -> None:
        if sent:
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.seq.in_([e.seq for e in events[:sent]]))
                .values(sent_at=utc_now())
            )
        if sent < len(events):
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.seq == events[sent].seq)
                .values(attempts=OutboxEvent.attempts + 1)
            )

    async def stale_streams(self, older_than: float) -> list[str]:
        """Streams with an unsent event created more than `older_than` seconds ago."""
        cutoff = utc_now() - timedelta(seconds=older_than)
        async with self._database.sessions() as session:
            result = await session.scalars(
                select(OutboxEvent.stream)
                .where(OutboxEvent.sent_at.is_(None), OutboxEvent.created_at <= cutoff)
                .group_by(OutboxEvent.stream)
                .limit(self.batch_size)
            )
            return list(result.all())

    async def sweep(self, older_than: float | None = None) -> int:
        """Deliver what was left unsent for `older_than` seconds (default `stale_after`);
        streams another instance is delivering are skipped. Returns how many were sent."""
        total = 0
        age = self.stale_after if older_than is None else older_than
        for stream in await self.stale_streams(age):
            busy = self._locks.get(stream)
            if busy is not None and busy.users:
                continue  # this process is delivering it right now
            async with self._stream_lock(stream):
                if self.marks.leases is not None and stream in self.marks.leases.held:
                    continue  # delivered here, its marks are on their way
                total += await self._flush_locked(stream, wait=False)
        self.counters.swept += total
        return total

    async def prune(self) -> None:
        """Forget events sent more than `keep_sent_for` seconds ago."""
        cutoff = utc_now() - timedelta(seconds=self.keep_sent_for)
        async with self._database.transaction() as session:
            await session.execute(
                delete(OutboxEvent).where(
                    OutboxEvent.sent_at.is_not(None), OutboxEvent.sent_at < cutoff
                )
            )

    async def run(self) -> None:
        """The dispatcher: at start everything unsent is swept at once (a restart delivers
        what the previous run left), then every `sweep_interval` seconds what is stale.
        Runs until cancelled; a failing database is logged and retried."""
        first = True
        ticks = 0
        while True:
            try:
                await self.sweep(0.0 if first else None)
                first = False
                ticks += 1
                if ticks % 600 == 0:
                    await self.prune()
            except asyncio.CancelledError:
                raise
            except (SQLAlchemyError, OSError) as exc:
                logger.warning("outbox dispatcher: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.sweep_interval)
