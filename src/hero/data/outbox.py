"""The transactional outbox: events written with the data that caused them, sent after commit.

A command opens `outbox.transaction()`, writes its rows and `publish()`es its events on the
same session; both commit together or not at all, so a rolled-back transaction never leaks
an event and a committed one is never lost. Right after the commit the events of the touched
streams are handed to `deliver` in order and marked sent. Whatever is left unsent (the
process died after its commit, the backplane was down) is picked up by `run()`, the
dispatcher every instance runs, once it is `stale_after` seconds old.

Order: events of one stream (a channel, a user) are delivered in the order of their `seq`,
one deliverer at a time per stream. Within one process an asyncio lock per stream does it;
across instances on PostgreSQL a transaction-scoped advisory lock per stream does it, held
while the events are delivered and marked, and released by PostgreSQL if its holder dies, so
the lock is the lease. Writers that need commit order to equal `seq` order per stream take a
row lock on the stream's owner row first (the chat module locks the channel).

A payload is handed to `deliver` at least once: twice only when a deliverer dies (or loses
its database connection) after delivering and before its "sent" mark committed.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, delete, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hero.data.columns import UtcDateTime, utc_now
from hero.data.database import Database

logger = logging.getLogger("hero.outbox")

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


@dataclass
class UnitOfWork:
    """One transaction: the session to write rows on and `publish` for its events."""

    session: AsyncSession
    streams: list[str] = field(default_factory=list)

    def publish(self, tenant_id: str, stream: str, payload: Mapping[str, Any]) -> None:
        """Store `payload` to be delivered after this transaction commits, after every
        event already published on `stream`."""
        self.session.add(
            OutboxEvent(
                tenant_id=tenant_id,
                stream=stream,
                payload=dict(payload),
                created_at=utc_now(),
                attempts=0,
            )
        )
        if stream not in self.streams:
            self.streams.append(stream)


@dataclass
class OutboxCounters:
    """What this instance's outbox did, for metrics and tests."""

    delivered: int = 0
    failed: int = 0
    swept: int = 0


def _lock_key(stream: str) -> int:
    # A stable signed 64-bit key for pg_advisory_xact_lock.
    value = zlib.crc32(stream.encode()) | (zlib.adler32(stream.encode()) << 32)
    return value - (1 << 64) if value >= (1 << 63) else value


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
        self.counters = OutboxCounters()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """A unit of work: committed on a normal exit, then its events are delivered
        before this returns (a delivery failure is logged and left to the dispatcher)."""
        async with self._database.sessions() as session, session.begin():
            work = UnitOfWork(session)
            yield work
        for stream in work.streams:
            await self.flush(stream)

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
            return await self._flush_locked(stream, wait=True)

    async def _flush_locked(self, stream: str, *, wait: bool) -> int:
        try:
            if self._database.is_postgresql:
                return await self._flush_postgresql(stream, wait=wait)
            return await self._flush_single_writer(stream)
        except (SQLAlchemyError, OSError) as exc:
            # OSError: the driver could not connect. The caller's transaction (if any) has
            # committed; the dispatcher delivers what is left once the database is back.
            self.counters.failed += 1
            logger.warning(
                "outbox: stream %s left for the dispatcher (database: %s)",
                stream,
                type(exc).__name__,
            )
            return 0

    async def _flush_postgresql(self, stream: str, *, wait: bool) -> int:
        async with self._database.sessions() as session, session.begin():
            key = {"key": _lock_key(stream)}
            if wait:
                await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), key)
            else:
                got = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), key)
                if not got:
                    return 0
            events = await self._pending(session, stream)
            sent = await self._deliver_in_order(events)
            await self._mark(session, events, sent)
            return sent

    async def _flush_single_writer(self, stream: str) -> int:
        # SQLite: one instance writes; reading, delivering and marking in short separate
        # transactions keeps the write lock free while the network is awaited.
        async with self._database.sessions() as session:
            async with session.begin():
                events = await self._pending(session, stream)
            sent = await self._deliver_in_order(events)
            async with session.begin():
                await self._mark(session, events, sent)
        return sent

    async def _pending(self, session: AsyncSession, stream: str) -> Sequence[OutboxEvent]:
        result = await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.stream == stream, OutboxEvent.sent_at.is_(None))
            .order_by(OutboxEvent.seq)
            .limit(self.batch_size)
        )
        return result.all()

    async def _deliver_in_order(self, events: Sequence[OutboxEvent]) -> int:
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
