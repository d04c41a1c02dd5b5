"""Request bodies and the ChannelDto / MessageDto shapes of the chat REST API."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from hero.data import iso
from hero.modules.chat.models import Channel, Member, Message, Reaction
from hero.modules.http import Text

MAX_BODY = 32768


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ChannelIn(Body):
    name: Text = Field(min_length=1, max_length=200)
    description: Text | None = Field(default=None, max_length=4000)
    is_private: bool = False


class UserIdsIn(Body):
    user_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)


class MessageIn(Body):
    body: Text = Field(max_length=MAX_BODY * 2)
    parent_message_id: uuid.UUID | None = None


class EditIn(Body):
    body: Text = Field(max_length=MAX_BODY * 2)


class ReactionIn(Body):
    emoji: Text = Field(min_length=1, max_length=64)


class ReadIn(Body):
    message_id: uuid.UUID


def member_dto(member: Member) -> dict[str, Any]:
    return {
        "userId": str(member.user_id),
        "role": member.role,
        "joinedAtUtc": iso(member.joined_at),
        "lastReadMessageId": _id(member.last_read_message_id),
    }


def channel_dto(channel: Channel, members: Sequence[Member], unread: int) -> dict[str, Any]:
    return {
        "id": str(channel.id),
        "type": channel.type,
        "name": channel.name,
        "slug": channel.slug,
        "description": channel.description,
        "isPrivate": channel.is_private,
        "createdByUserId": str(channel.created_by_user_id),
        "createdAtUtc": iso(channel.created_at),
        "updatedAtUtc": iso(channel.updated_at),
        "lastMessageAtUtc": iso(channel.last_message_at),
        "unreadCount": unread,
        "members": [member_dto(m) for m in members],
    }


def message_dto(message: Message, reactions: Sequence[Reaction]) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "channelId": str(message.channel_id),
        "authorUserId": str(message.author_user_id),
        "body": "" if message.deleted_at is not None else message.body,
        "parentMessageId": _id(message.parent_id),
        "replyCount": message.reply_count,
        "editedAtUtc": iso(message.edited_at),
        "deletedAtUtc": iso(message.deleted_at),
        "createdAtUtc": iso(message.created_at),
        "mentions": list(message.mentions or []),
        "reactions": [
            {"userId": str(r.user_id), "emoji": r.emoji, "createdAtUtc": iso(r.created_at)}
            for r in reactions
        ],
        "isPinned": message.pinned_at is not None,
        "pinnedByUserId": _id(message.pinned_by_user_id),
        "pinnedAtUtc": iso(message.pinned_at),
    }


def new_message_dto(row: Mapping[str, Any]) -> dict[str, Any]:
    """The MessageDto of a message just written (`row`: its column values): no reactions,
    not edited, deleted or pinned."""
    return {
        "id": str(row["id"]),
        "channelId": str(row["channel_id"]),
        "authorUserId": str(row["author_user_id"]),
        "body": row["body"],
        "parentMessageId": _id(row["parent_id"]),
        "replyCount": 0,
        "editedAtUtc": None,
        "deletedAtUtc": None,
        "createdAtUtc": iso(row["created_at"]),
        "mentions": list(row["mentions"]),
        "reactions": [],
        "isPinned": False,
        "pinnedByUserId": None,
        "pinnedAtUtc": None,
    }


def _id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)
