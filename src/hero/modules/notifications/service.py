"""NotificationService: creates notifications in the caller's unit of work, and reads them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select, update

from hero.conventions import Events, user_group
from hero.data import Database, Outbox, UnitOfWork, utc_now
from hero.modules.http import not_found
from hero.modules.notifications.models import Notification
from hero.realtime import Audience, Delivery


class NotificationService:
    """Implements `NotificationSink`; every notification is pushed as `NotificationCreated`
    to `user:{id}` after its transaction commits (stream `user:{id}`)."""

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
        query = query.order_by(Notification.id.desc()).offset((page - 1) * size).limit(size)
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
        """The user's notifications created after `after` (by id, UUIDv7 = time), oldest first."""
        async with self._database.sessions() as session:
            rows = await session.scalars(
                select(Notification)
                .where(
                    Notification.tenant_id == tenant_id,
                    Notification.user_id == user_id,
                    Notification.id > after,
                )
                .order_by(Notification.id)
                .limit(limit)
            )
            return [n.dto() for n in rows.all()]
