"""The Notification entity (tenant-scoped, UUIDv7 ids)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text
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

    __table_args__ = (Index("ix_notifications_user", "tenant_id", "user_id", "id"),)

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
