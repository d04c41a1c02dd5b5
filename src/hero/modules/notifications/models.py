"""The Notification entity (tenant-scoped, UUIDv7 ids)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import Uuid

from hero.data import UtcDateTime, iso, new_id


class NotificationsModel(DeclarativeBase):
    """The notifications module's own declarative base."""


class Notification(NotificationsModel):
    __tablename__ = "notifications"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    type: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str | None] = mapped_column(Text, default=None)
    link: Mapped[str | None] = mapped_column(String(2000), default=None)
    source: Mapped[str | None] = mapped_column(String(100), default=None)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, default=None)
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    seq: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    """The user's notifications in commit order (from NotificationCounter)."""

    __table_args__ = (
        Index("ix_notifications_user", "tenant_id", "user_id", "id"),
        Index("ix_notifications_user_seq", "tenant_id", "user_id", "seq", unique=True),
    )

    def dto(self) -> dict[str, Any]:
        """NotificationDto (camelCase, ISO-8601 UTC times)."""
        return {
            "id": str(self.id),
            "type": self.type,
            "title": self.title,
            "body": self.body,
            "link": self.link,
            "source": self.source,
            "metadata": self.meta,
            "readAtUtc": iso(self.read_at),
            "createdAtUtc": iso(self.created_at),
        }


class NotificationCounter(NotificationsModel):
    """The last `seq` given to one user's notifications. A new notification bumps it, which
    locks the row until the transaction ends: the user's notifications commit in `seq`
    order, whichever instance writes them."""

    __tablename__ = "notification_counters"

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
