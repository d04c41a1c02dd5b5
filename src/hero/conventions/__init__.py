"""Names and small interfaces shared by the platform and its modules (docs/platform.md §5).

Group names and event names come from here, never from literals at call sites. The
ChannelLookup / ChannelMembership interfaces are implemented by the chat module and consumed
by AppHub, so neither has to import the other.
"""

from __future__ import annotations

from typing import Final, Protocol
from uuid import UUID

USER_PREFIX: Final = "user:"
TENANT_PREFIX: Final = "tenant:"
CHANNEL_PREFIX: Final = "channel:"
RESERVED_GROUP_PREFIXES: Final = (USER_PREFIX, TENANT_PREFIX, CHANNEL_PREFIX)


def realtime_user(tenant_id: str, user_id: UUID | str) -> str:
    """The realtime user identifier of a user of one tenant (`clients.user(...)`, group
    moves by user). A token's user id is unique only within its tenant, so the key carries
    the tenant: the same user id in another tenant is another realtime user."""
    return f"{tenant_id}:{str(user_id).lower()}"


def user_group(tenant_id: str, user_id: UUID | str) -> str:
    """Every connection of one user of one tenant, on every instance:
    `user:{tenantId}:{userId}`."""
    return f"{USER_PREFIX}{realtime_user(tenant_id, user_id)}"


def tenant_group(tenant_id: str) -> str:
    """Every connection of one tenant."""
    return f"{TENANT_PREFIX}{tenant_id}"


def channel_group(channel_id: UUID | str) -> str:
    """Every connection of every member of one channel."""
    return f"{CHANNEL_PREFIX}{str(channel_id).lower()}"


def typing_throttle_key(channel_id: UUID | str, user_id: UUID | str) -> str:
    """Cache key claimed for 3 s per (channel, user) by `Typing`."""
    return f"chat:typing:{str(channel_id).lower()}:{str(user_id).lower()}"


class Events:
    """Target names of the events the server sends (docs/platform.md §5)."""

    CHAT_MESSAGE_CREATED: Final = "ChatMessageCreated"
    CHAT_MESSAGE_EDITED: Final = "ChatMessageEdited"
    CHAT_MESSAGE_DELETED: Final = "ChatMessageDeleted"
    CHAT_MESSAGE_PINNED: Final = "ChatMessagePinned"
    CHAT_MESSAGE_UNPINNED: Final = "ChatMessageUnpinned"
    CHAT_REACTION_CHANGED: Final = "ChatReactionChanged"
    CHAT_CHANNEL_MEMBER_ADDED: Final = "ChatChannelMemberAdded"
    CHAT_CHANNEL_MEMBER_REMOVED: Final = "ChatChannelMemberRemoved"
    CHAT_CHANNEL_ADDED: Final = "ChatChannelAdded"
    CHAT_CHANNEL_REMOVED: Final = "ChatChannelRemoved"
    CHAT_CHANNEL_READ: Final = "ChatChannelRead"
    CHAT_CHANNEL_MEMBER_READ: Final = "ChatChannelMemberRead"
    CHAT_TYPING_STARTED: Final = "ChatTypingStarted"
    PRESENCE_CHANGED: Final = "PresenceChanged"
    NOTIFICATION_CREATED: Final = "NotificationCreated"


class ChannelLookup(Protocol):
    """The channels a user belongs to, joined as `channel:{id}` groups on connect."""

    async def channels_of(self, tenant_id: str, user_id: UUID) -> list[UUID]: ...


class ChannelMembership(Protocol):
    """Whether a user is a member of a channel (Typing and JoinChannel check it)."""

    async def is_member(self, tenant_id: str, channel_id: UUID, user_id: UUID) -> bool: ...


class NoChannels:
    """The lookup used until a chat module is installed: nobody belongs to any channel."""

    async def channels_of(self, tenant_id: str, user_id: UUID) -> list[UUID]:
        return []

    async def is_member(self, tenant_id: str, channel_id: UUID, user_id: UUID) -> bool:
        return False
