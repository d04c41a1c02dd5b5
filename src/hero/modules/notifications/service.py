"""NotificationService: creates notifications in the caller's unit of work, and reads them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hero.conventions import Events, user_group
from hero.data import Database, Outbox, UnitOfWork, utc_now
from hero.data.cursors import beyond
from hero.modules.http import not_found
from hero.modules.notifications.models import Notification, NotificationCounter
from hero.realtime import Audience, Delivery


class NotificationService:
    """Implements `NotificationSink`; every notification is pushed as `NotificationCreated`
    to `user:{tenantId}:{userId}` after its transaction commits (that is also its stream)."""

    def __init__(self, database: Database, outbox: Outbox) -> None:
        self._database = database
        self._outbox = outbox

    async def notify(
        self,
        work: UnitOfWork,
        tenant_id: str,
        user_id: uuid.UUID,
        *,
        type: str,
        title: str,
        body: str | None = None,
        link: str | None = None,
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        row = Notification(
            seq=await self._next_seq(work.session, tenant_id, user_id),
            tenant_id=tenant_id,
            user_id=user_id,
            type=type,
            title=title,
            body=body,
            link=link,
            source=source,
            meta=dict(metadata) if metadata is not None else None,
            created_at=utc_now(),
        )
        work.session.add(row)
        await work.session.flush()
        dto = row.dto()
        group = user_group(tenant_id, user_id)
        work.publish(
            tenant_id,
            group,
            Delivery(Audience.group(group), Events.NOTIFICATION_CREATED, (dto,)).to_wire(),
        )
        return dto

    async def create(self, tenant_id: str, user_id: uuid.UUID, **fields: Any) -> dict[str, Any]:
        async with self._outbox.transaction() as work:
            return await self.notify(work, tenant_id, user_id, **fields)

    async def list(
        self, tenant_id: str, user_id: uuid.UUID, *, unread_only: bool, page: int, size: int
    ) -> list[dict[str, Any]]:
        query = select(Notification).where(
            Notification.tenant_id == tenant_id, Notification.user_id == user_id
        )
        if unread_only:
            query = query.where(Notification.read_at.is_(None))
        query = query.order_by(Notification.seq.desc()).offset((page - 1) * size).limit(size)
        async with self._database.sessions() as session:
            return [n.dto() for n in (await session.scalars(query)).all()]

    async def unread_count(self, tenant_id: str, user_id: uuid.UUID) -> int:
        async with self._database.sessions() as session:
            count = await session.scalar(
                select(func.count()).where(
                    Notification.tenant_id == tenant_id,
                    Notification.user_id == user_id,
                    Notification.read_at.is_(None),
                )
            )
        return int(count or 0)

    async def mark_read(
        self, tenant_id: str, user_id: uuid.UUID, notification_id: uuid.UUID
    ) -> None:
        async with self._database.transaction() as session:
            row = await session.get(Notification, notification_id)
            if row is None or row.tenant_id != tenant_id or row.user_id != user_id:
                raise not_found("Notification")
            if row.read_at is None:
                row.read_at = utc_now()

    async def mark_all_read(self, tenant_id: str, user_id: uuid.UUID) -> int:
        async with self._database.transaction() as session:
            result = await session.execute(
                update(Notification)
                .where(
                    Notification.tenant_id == tenant_id,
                    Notification.user_id == user_id,
                    Notification.read_at.is_(None),
                )
                .values(read_at=utc_now())
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def created_after(
        self, tenant_id: str, user_id: uuid.UUID, after: uuid.UUID, limit: int = 1000
    ) -> Sequence[dict[str, Any]]:
        """The user's notifications committed after notification `after`, oldest first (by
        `seq`, whichever instance's clock minted the ids); for an id that is none of the
        user's notifications, those with a greater id (UUIDv7: created later)."""
        mine = (Notification.tenant_id == tenant_id, Notification.user_id == user_id)
        async with self._database.sessions() as session:
            seq = await session.scalar(
                select(Notification.seq).where(*mine, Notification.id == after)
            )
            later, order = beyond(Notification.seq, Notification.id, after, seq, later=True)
            rows = await session.scalars(
                select(Notification).where(*mine, later).order_by(order).limit(limit)
            )
            return [n.dto() for n in rows.all()]

    async def _next_seq(self, session: AsyncSession, tenant_id: str, user_id: uuid.UUID) -> int:
        """Bump the user's counter (an upsert, which keeps the row locked until the
        transaction ends) and return the new value."""
        dialect = postgresql if self._database.is_postgresql else sqlite
        upsert = dialect.insert(_COUNTERS).values(tenant_id=tenant_id, user_id=user_id, last_seq=1)
        statement = upsert.on_conflict_do_update(
            index_elements=[_COUNTERS.c.tenant_id, _COUNTERS.c.user_id],
            set_={"last_seq": _COUNTERS.c.last_seq + 1},
        ).returning(_COUNTERS.c.last_seq)
        return int((await session.execute(statement)).scalar_one())


_COUNTERS = NotificationCounter.__table__
