"""The shared part of the chat service: the hub lookups and the helpers every command uses.

Commands run in one outbox unit of work, so their rows and events commit together and the
events reach the hub right after the commit. Commands that publish on a channel lock its
row first, so one channel's events commit (and are delivered) in the order written.
Archived channels behave as if the caller were not a member (404).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hero.conventions import Events, channel_group, realtime_user, user_group
from hero.data import Outbox, UnitOfWork, new_id, utc_now
from hero.data.batching import BatchedLookup
from hero.modules.chat.dtos import MAX_BODY, channel_dto, message_dto
from hero.modules.chat.models import Channel, Member, Message, Reaction
from hero.modules.contracts import NotificationSink, UserLookup
from hero.modules.http import Problem, bad_request, not_found
from hero.realtime import Audience, Delivery, GroupMove

ADMIN, MEMBER = "admin", "member"
MENTION = re.compile(r"(?<![\w@])@([\w][\w.\-]*)")
MAX_GROUP_DM = 8


class NoUsers:
    """A directory that knows nobody: no mention resolves."""

    async def resolve_names(
        self, work: UnitOfWork, tenant_id: str, names: Collection[str]
    ) -> dict[str, uuid.UUID]:
        return {}


class NoNotifications:
    """A sink that drops every notification."""

    async def notify(self, work: UnitOfWork, tenant_id: str, user_id: uuid.UUID, **_: Any) -> None:
        return None


_MESSAGES: Table = Message.__table__  # type: ignore[assignment]
_CHANNELS: Table = Channel.__table__  # type: ignore[assignment]
_MEMBERS: Table = Member.__table__  # type: ignore[assignment]

STAMP_CHANNEL = (
    update(_CHANNELS)
    .where(
        _CHANNELS.c.id == bindparam("channel"),
        _CHANNELS.c.tenant_id == bindparam("tenant"),
        _CHANNELS.c.archived_at.is_(None),
        exists()
        .where(
            _MEMBERS.c.channel_id == _CHANNELS.c.id,
            _MEMBERS.c.user_id == bindparam("user"),
        )
        .correlate(_CHANNELS),
    )
    .values(
        last_message_at=func.coalesce(
            bindparam("now", type_=_CHANNELS.c.last_message_at.type),
            _CHANNELS.c.last_message_at,
        )
    )
)
"""A new message's first statement: locks the channel's row (the write lock on SQLite),
stamps `last_message_at` with `now` (None: left as it is, for a keyed send that may be a
replay), and matches nothing unless the channel is live, of the tenant, and the author a
member (then: 404). Built once, so its compiled form is reused."""

SET_LAST_MESSAGE = (
    update(_CHANNELS)
    .where(_CHANNELS.c.id == bindparam("channel"))
    .values(last_message_at=bindparam("now"))
)


def _memberships(column: Any, *where: Any) -> Any:
    """`column` of the memberships of user `:user` of tenant `:tenant` in channels that are
    not archived (an archived channel counts as not-member)."""
    return (
        select(column)
        .select_from(_MEMBERS.join(_CHANNELS, _CHANNELS.c.id == _MEMBERS.c.channel_id))
        .where(
            _MEMBERS.c.tenant_id == bindparam("tenant"),
            _MEMBERS.c.user_id == bindparam("user"),
            _CHANNELS.c.archived_at.is_(None),
            *where,
        )
    )


def _memberships_of_users(*where: Any) -> Any:
    """(tenant, user, channel) of the memberships of the users `:users` of the tenants
    `:tenants` (two lists; the (tenant, user) index serves both) in channels that are not
    archived; the caller keeps the rows of the pairs it asked about."""
    return (
        select(_MEMBERS.c.tenant_id, _MEMBERS.c.user_id, _MEMBERS.c.channel_id)
        .select_from(_MEMBERS.join(_CHANNELS, _CHANNELS.c.id == _MEMBERS.c.channel_id))
        .where(
            _MEMBERS.c.tenant_id.in_(bindparam("tenants", expanding=True)),
            _MEMBERS.c.user_id.in_(bindparam("users", expanding=True)),
            _CHANNELS.c.archived_at.is_(None),
            *where,
        )
    )


CHANNELS_OF = _memberships_of_users()
"""The channels AppHub joins on connect, for a batch of connecting users."""
IS_MEMBER = _memberships_of_users(_MEMBERS.c.channel_id.in_(bindparam("channels", expanding=True)))
"""Membership checks (Typing, JoinChannel), for a batch of (user, channel) pairs."""

INSERT_MESSAGE = insert(_MESSAGES).values(
    seq=select(func.coalesce(func.max(_MESSAGES.c.seq), 0) + 1)
    .where(_MESSAGES.c.channel_id == bindparam("seq_channel"))
    .scalar_subquery()
)
"""A new message's row, every column given (a Core INSERT: no ORM flush), numbered after the
channel's last message: the caller holds the channel (STAMP_CHANNEL), so numbers follow the
commit order. Parameters: the row and `seq_channel`, its channel id again."""


LOOKUP_PACE = 0.010
"""Seconds between the starts of two lookups of one kind under load (`BatchedLookup`): a
connect (or Typing call) in a burst waits at most this long for its batch; the first one
after a quiet moment does not wait. 10 ms rather than 4 took about 5 % off a connect's
server CPU in a burst, on average (bench/connections.py; docs/benchmarks.md, "2026-12-04,
evening"): at 1,400 connects/s a batch holds about 14 users instead of 6."""

_UserKey = tuple[str, uuid.UUID]
"""(tenant, user)"""
_MemberKey = tuple[str, uuid.UUID, uuid.UUID]
"""(tenant, channel, user)"""


def slug_of(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:200] or "channel"


def trimmed_body(text: str, field: str = "body") -> str:
    text = text.strip()
    if not 1 <= len(text) <= MAX_BODY:
        raise bad_request(f"{field} must be 1..{MAX_BODY} characters after trimming.", field)
    return text


def send_event(  # noqa: PLR0917 (internal call sites, fixed order)
    work: UnitOfWork,
    tenant: str,
    channel_id: uuid.UUID,
    group: str,
    target: str,
    payload: Mapping[str, Any],
) -> None:
    delivery = Delivery(Audience.group(group), target, (dict(payload),))
    work.publish(tenant, channel_group(channel_id), delivery.to_wire())


def _dialect(s: AsyncSession) -> str:
    return s.bind.dialect.name if s.bind is not None else ""


async def _take_write_lock(s: AsyncSession, channel_id: uuid.UUID) -> None:
    """SQLite has no row locks, and its driver opens the transaction only at the first
    write, so a check-then-write (is it pinned? is this reaction there?) raced a
    concurrent request. A no-op UPDATE takes the database's write lock first; every read
    after it sees what the previous writer committed, as after `FOR UPDATE` elsewhere."""
    await s.execute(
        update(Channel)
        .where(Channel.id == channel_id)
        .values(updated_at=Channel.updated_at)
        .execution_options(synchronize_session=False)
    )


class ChatCore:
    """Hub lookups (`channels_of`, `is_member`) and the helpers of the chat commands
    (channels, membership, messages, reactions, pins, read state and search)."""

    def __init__(
        self,
        outbox: Outbox,
        users: UserLookup | None = None,
        notifications: NotificationSink | None = None,
    ) -> None:
        self.outbox = outbox
        self.users: UserLookup = users or NoUsers()
        self.notifications: NotificationSink = notifications or NoNotifications()
        # Hub connects and Typing calls come in bursts: the ones asked at the same time
        # share one Core read (no session, nothing to commit), one pooled connection.
        self._channels_of: BatchedLookup[_UserKey, list[uuid.UUID]] = BatchedLookup(
            self._fetch_channels_of, list, pace=LOOKUP_PACE
        )
        self._is_member: BatchedLookup[_MemberKey, bool] = BatchedLookup(
            self._fetch_is_member, bool, pace=LOOKUP_PACE
        )

    # -- hub lookups -------------------------------------------------------------------

    async def channels_of(self, tenant_id: str, user_id: uuid.UUID) -> list[uuid.UUID]:
        """Run on every hub connect."""
        return await self._channels_of.get((tenant_id, user_id))

    async def is_member(self, tenant_id: str, channel_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        return await self._is_member.get((tenant_id, channel_id, user_id))

    async def _fetch_channels_of(
        self, keys: Collection[_UserKey]
    ) -> dict[_UserKey, list[uuid.UUID]]:
        found: dict[_UserKey, list[uuid.UUID]] = {}
        asked = set(keys)
        tenants = list({tenant for tenant, _ in keys})
        users = list({user for _, user in keys})
        rows = await self.outbox.database.lookup(CHANNELS_OF, {"tenants": tenants, "users": users})
        for tenant, user, channel in rows:
            if (tenant, user) in asked:
                found.setdefault((tenant, user), []).append(channel)
        return found

    async def _fetch_is_member(self, keys: Collection[_MemberKey]) -> dict[_MemberKey, bool]:
        asked = set(keys)
        tenants = list({tenant for tenant, _, _ in keys})
        users = list({user for _, _, user in keys})
        channels = list({channel for _, channel, _ in keys})
        parameters = {"tenants": tenants, "users": users, "channels": channels}
        rows = await self.outbox.database.lookup(IS_MEMBER, parameters)
        return {
            (tenant, channel, user): True
            for tenant, user, channel in rows
            if (tenant, channel, user) in asked
        }

    # -- helpers -----------------------------------------------------------------------

    async def _channel(
        self,
        s: AsyncSession,
        tenant: str,
        channel_id: uuid.UUID,
        *,
        lock: bool = False,
        archived: bool = False,
    ) -> Channel:
        query = select(Channel).where(Channel.id == channel_id, Channel.tenant_id == tenant)
        if lock and _dialect(s) == "sqlite":
            await _take_write_lock(s, channel_id)
        elif lock:
            query = query.with_for_update()
        channel = await s.scalar(query)
        if channel is None or (channel.archived_at is not None and not archived):
            raise not_found("Channel")
        return channel

    async def _member(
        self, s: AsyncSession, channel_id: uuid.UUID, user: uuid.UUID
    ) -> Member | None:
        return await s.get(Member, (channel_id, user))

    async def _member_channel(
        self,
        s: AsyncSession,
        tenant: str,
        channel_id: uuid.UUID,
        user: uuid.UUID,
        *,
        lock: bool = False,
    ) -> tuple[Channel, Member]:
        channel = await self._channel(s, tenant, channel_id, lock=lock)
        member = await self._member(s, channel_id, user)
        if member is None:
            raise not_found("Channel")
        return channel, member

    async def _members(self, s: AsyncSession, channel_id: uuid.UUID) -> Sequence[Member]:
        rows = await s.scalars(
            select(Member).where(Member.channel_id == channel_id).order_by(Member.joined_at)
        )
        return rows.all()

    async def _unread(self, s: AsyncSession, channel: Channel, member: Member | None) -> int:
        """Top-level messages of others after the member's watermark (in commit order, by
        `seq`), not deleted: the author's own messages are never unread, and thread replies
        are read in the thread."""
        if member is None:
            return 0
        query = select(func.count()).where(
            Message.channel_id == channel.id,
            Message.parent_id.is_(None),
            Message.author_user_id != member.user_id,
            Message.deleted_at.is_(None),
        )
        if member.last_read_message_id is not None:
            watermark = select(Message.seq).where(Message.id == member.last_read_message_id)
            query = query.where(Message.seq > func.coalesce(watermark.scalar_subquery(), 0))
        return int(await s.scalar(query) or 0)

    async def _channel_dto(
        self, s: AsyncSession, channel: Channel, user: uuid.UUID
    ) -> dict[str, Any]:
        members = await self._members(s, channel.id)
        mine = next((m for m in members if m.user_id == user), None)
        return channel_dto(channel, members, await self._unread(s, channel, mine))

    async def _message_dto(self, s: AsyncSession, message: Message) -> dict[str, Any]:
        rows = await s.scalars(
            select(Reaction).where(Reaction.message_id == message.id).order_by(Reaction.created_at)
        )
        return message_dto(message, rows.all())

    async def _message(
        self,
        s: AsyncSession,
        tenant: str,
        message_id: uuid.UUID,
        user: uuid.UUID,
        *,
        lock: bool = True,
    ) -> tuple[Channel, Member, Message]:
        message = await s.scalar(
            select(Message).where(Message.id == message_id, Message.tenant_id == tenant)
        )
        if message is None:
            raise not_found("Message")
        try:
            channel, member = await self._member_channel(
                s, tenant, message.channel_id, user, lock=lock
            )
        except Problem:
            raise not_found("Message") from None
        await s.refresh(message)
        return channel, member, message

    def _add_member(self, work: UnitOfWork, channel: Channel, user: uuid.UUID, role: str) -> None:
        work.session.add(
            Member(
                channel_id=channel.id,
                user_id=user,
                tenant_id=channel.tenant_id,
                role=role,
                joined_at=utc_now(),
            )
        )
        stream = channel_group(channel.id)
        work.publish(
            channel.tenant_id,
            stream,
            GroupMove.add(realtime_user(channel.tenant_id, user), stream).to_wire(),
        )
        payload = {"channelId": str(channel.id), "userId": str(user)}
        send_event(
            work, channel.tenant_id, channel.id, stream, Events.CHAT_CHANNEL_MEMBER_ADDED, payload
        )
        send_event(
            work,
            channel.tenant_id,
            channel.id,
            user_group(channel.tenant_id, user),
            Events.CHAT_CHANNEL_ADDED,
            {"channelId": str(channel.id)},
        )

    async def _remove_member(self, work: UnitOfWork, channel: Channel, member: Member) -> None:
        await work.session.delete(member)
        stream = channel_group(channel.id)
        payload = {"channelId": str(channel.id), "userId": str(member.user_id)}
        send_event(
            work, channel.tenant_id, channel.id, stream, Events.CHAT_CHANNEL_MEMBER_REMOVED, payload
        )
        work.publish(
            channel.tenant_id,
            stream,
            GroupMove.remove(realtime_user(channel.tenant_id, member.user_id), stream).to_wire(),
        )
        send_event(
            work,
            channel.tenant_id,
            channel.id,
            user_group(channel.tenant_id, member.user_id),
            Events.CHAT_CHANNEL_REMOVED,
            {"channelId": str(channel.id)},
        )

    def _new_channel(  # noqa: PLR0917 (internal call sites, fixed order)
        self,
        tenant: str,
        user: uuid.UUID,
        kind: str,
        name: str,
        description: str | None = None,
        private: bool = False,
        dm_key: str | None = None,
    ) -> Channel:
        now = utc_now()
        return Channel(
            id=new_id(),
            tenant_id=tenant,
            type=kind,
            name=name,
            slug=slug_of(name),
            description=description,
            is_private=private,
            dm_key=dm_key,
            created_by_user_id=user,
            created_at=now,
            updated_at=now,
        )
