"""The chat module's tables: channels, members, messages, reactions (all tenant-scoped)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import Uuid

from hero.data import UtcDateTime, new_id


class ChatModel(DeclarativeBase):
    """The chat module's own declarative base."""


class Channel(ChatModel):
    """A channel, a DM (`dm_key` is the canonical pair) or a group DM."""

    __tablename__ = "chat_channels"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    is_private: Mapped[bool] = mapped_column(Boolean, default=False)
    dm_key: Mapped[str | None] = mapped_column(String(100), default=None)
    created_by_user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_message_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)

    __table_args__ = (
        UniqueConstraint("tenant_id", "dm_key", name="uq_chat_channels_dm_key"),
        Index("ix_chat_channels_tenant", "tenant_id", "is_private"),
    )


class Member(ChatModel):
    """A user's membership of a channel, with role and read watermark."""

    __tablename__ = "chat_members"

    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("chat_channels.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    joined_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_read_message_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)

    __table_args__ = (Index("ix_chat_members_user", "tenant_id", "user_id"),)


class Message(ChatModel):
    """A message or a thread reply (`parent_id`); deletion keeps a tombstone. `seq` numbers
    the channel's messages in commit order (cursors and unread counts compare it)."""

    __tablename__ = "chat_messages"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(128))
    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("chat_channels.id", ondelete="CASCADE")
    )
    author_user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    body: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    reply_count: Mapped[int] = mapped_column(Integer, default=0)
    mentions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    edited_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    pinned_by_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    pinned_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    seq: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))

    __table_args__ = (
        UniqueConstraint(
            "channel_id", "author_user_id", "idempotency_key", name="uq_chat_messages_idempotency"
        ),
        Index("ix_chat_messages_channel", "channel_id", "parent_id", "id"),
        Index("ix_chat_messages_channel_seq", "channel_id", "seq", unique=True),
    )


class Reaction(ChatModel):
    """One user's emoji on one message."""

    __tablename__ = "chat_reactions"

    message_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("chat_messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    emoji: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
