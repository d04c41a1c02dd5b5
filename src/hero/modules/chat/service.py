"""The chat service: every command runs in one outbox unit of work, so its rows and its
events commit together and the events reach the hub right after the commit.

Commands that publish on a channel lock the channel row first, so events of one channel
commit (and are delivered) in the order they were written. Archived channels behave as if
the caller were not a member (404), except for an admin's restore.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, literal_column, or_, select, text
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hero.conventions import Events, channel_group, user_group
from hero.data import Outbox, UnitOfWork, new_id, utc_now
from hero.modules.chat.dtos import MAX_BODY, channel_dto, message_dto
from hero.modules.chat.models import Channel, Member, Message, Reaction
from hero.modules.contracts import NotificationSink, UserLookup
from hero.modules.http import Problem, bad_request, forbidden, not_found
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


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:200] or "channel"


def _body(text: str, field: str = "body") -> str:
    text = text.strip()
    if not 1 <= len(text) <= MAX_BODY:
        raise bad_request(f"{field} must be 1..{MAX_BODY} characters after trimming.", field)
    return text


def _send(  # noqa: PLR0917 (internal call sites, fixed order)
    work: UnitOfWork,
    tenant: str,
    channel_id: uuid.UUID,
    group: str,
    target: str,
    payload: Mapping[str, Any],
) -> None:
    delivery = Delivery(Audience.group(group), target, (dict(payload),))
    work.publish(tenant, channel_group(channel_id), delivery.to_wire())


class ChatService:
    """Channels, membership, messages, reactions, pins, read state and search."""

    def __init__(
        self,
        outbox: Outbox,
        users: UserLookup | None = None,
        notifications: NotificationSink | None = None,
    ) -> None:
        self.outbox = outbox
        self.users: UserLookup = users or NoUsers()
        self.notifications: NotificationSink = notifications or NoNotifications()

    # -- hub lookups -------------------------------------------------------------------

    async def channels_of(self, tenant_id: str, user_id: uuid.UUID) -> list[uuid.UUID]:
        async with self.outbox.transaction() as work:
            rows = await work.session.scalars(
                select(Member.channel_id)
                .join(Channel, Channel.id == Member.channel_id)
                .where(
                    Member.tenant_id == tenant_id,
                    Member.user_id == user_id,
                    Channel.archived_at.is_(None),
                )
            )
            return list(rows.all())

    async def is_member(self, tenant_id: str, channel_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        async with self.outbox.transaction() as work:
            found = await work.session.scalar(
                select(Member.user_id)
                .join(Channel, Channel.id == Member.channel_id)
                .where(
                    Member.tenant_id == tenant_id,
                    Member.channel_id == channel_id,
                    Member.user_id == user_id,
                    Channel.archived_at.is_(None),
                )
            )
            return found is not None

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
        if lock:
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
        if member is None:
            return 0
        query = select(func.count()).where(
            Message.channel_id == channel.id, Message.deleted_at.is_(None)
        )
        if member.last_read_message_id is not None:
            query = query.where(Message.id > member.last_read_message_id)
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
        work.publish(channel.tenant_id, stream, GroupMove.add(str(user), stream).to_wire())
        payload = {"channelId": str(channel.id), "userId": str(user)}
        _send(
            work, channel.tenant_id, channel.id, stream, Events.CHAT_CHANNEL_MEMBER_ADDED, payload
        )
        _send(
            work,
            channel.tenant_id,
            channel.id,
            user_group(user),
            Events.CHAT_CHANNEL_ADDED,
            {"channelId": str(channel.id)},
        )

    async def _remove_member(self, work: UnitOfWork, channel: Channel, member: Member) -> None:
        await work.session.delete(member)
        stream = channel_group(channel.id)
        payload = {"channelId": str(channel.id), "userId": str(member.user_id)}
        _send(
            work, channel.tenant_id, channel.id, stream, Events.CHAT_CHANNEL_MEMBER_REMOVED, payload
        )
        work.publish(
            channel.tenant_id, stream, GroupMove.remove(str(member.user_id), stream).to_wire()
        )
        _send(
            work,
            channel.tenant_id,
            channel.id,
            user_group(member.user_id),
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
            slug=_slug(name),
            description=description,
            is_private=private,
            dm_key=dm_key,
            created_by_user_id=user,
            created_at=now,
            updated_at=now,
        )

    # -- channels ----------------------------------------------------------------------

    async def create_channel(
        self, tenant: str, user: uuid.UUID, name: str, description: str | None, private: bool
    ) -> dict[str, Any]:
        name = name.strip()
        if not name:
            raise bad_request("name must not be blank.", "name")
        async with self.outbox.transaction() as work:
            channel = self._new_channel(tenant, user, "channel", name, description, private)
            work.session.add(channel)
            await work.session.flush()
            self._add_member(work, channel, user, ADMIN)
            await work.session.flush()
            return await self._channel_dto(work.session, channel, user)

    async def my_channels(
        self, tenant: str, user: uuid.UUID, page: int, size: int
    ) -> list[dict[str, Any]]:
        async with self.outbox.transaction() as work:
            rows = await work.session.scalars(
                select(Channel)
                .join(Member, Member.channel_id == Channel.id)
                .where(
                    Member.user_id == user,
                    Channel.tenant_id == tenant,
                    Channel.archived_at.is_(None),
                )
                .order_by(
                    func.coalesce(Channel.last_message_at, Channel.created_at).desc(),
                    Channel.id.desc(),
                )
                .offset((page - 1) * size)
                .limit(size)
            )
            return [await self._channel_dto(work.session, c, user) for c in rows.all()]

    async def discover(
        self, tenant: str, user: uuid.UUID, search: str | None, page: int, size: int
    ) -> list[dict[str, Any]]:
        async with self.outbox.transaction() as work:
            mine = select(Member.channel_id).where(Member.user_id == user)
            query = select(Channel).where(
                Channel.tenant_id == tenant,
                Channel.type == "channel",
                Channel.is_private.is_(False),
                Channel.archived_at.is_(None),
                Channel.id.not_in(mine),
            )
            if search:
                pattern = f"%{search.strip().lower()}%"
                query = query.where(
                    or_(
                        func.lower(Channel.name).like(pattern),
                        func.lower(Channel.description).like(pattern),
                    )
                )
            rows = await work.session.scalars(
                query.order_by(Channel.name, Channel.id).offset((page - 1) * size).limit(size)
            )
            return [await self._channel_dto(work.session, c, user) for c in rows.all()]

    async def get_channel(
        self, tenant: str, user: uuid.UUID, channel_id: uuid.UUID
    ) -> dict[str, Any]:
        async with self.outbox.transaction() as work:
            channel, _ = await self._member_channel(work.session, tenant, channel_id, user)
            return await self._channel_dto(work.session, channel, user)

    async def update_channel(  # noqa: PLR0917 (internal call sites, fixed order)
        self,
        tenant: str,
        user: uuid.UUID,
        channel_id: uuid.UUID,
        name: str,
        description: str | None,
        private: bool,
    ) -> dict[str, Any]:
        name = name.strip()
        if not name:
            raise bad_request("name must not be blank.", "name")
        async with self.outbox.transaction() as work:
            channel, member = await self._member_channel(
                work.session, tenant, channel_id, user, lock=True
            )
            if member.role != ADMIN or channel.type != "channel":
                raise forbidden("Only a channel admin may change the channel.")
            channel.name, channel.slug, channel.description = name, _slug(name), description
            channel.is_private, channel.updated_at = private, utc_now()
            return await self._channel_dto(work.session, channel, user)

    async def archive(
        self, tenant: str, user: uuid.UUID, channel_id: uuid.UUID, archived: bool
    ) -> None:
        async with self.outbox.transaction() as work:
            channel = await self._channel(
                work.session, tenant, channel_id, lock=True, archived=not archived
            )
            member = await self._member(work.session, channel_id, user)
            if member is None:
                raise not_found("Channel")
            if member.role != ADMIN:
                raise forbidden("Only a channel admin may archive or restore it.")
            if archived and channel.archived_at is None:
                channel.archived_at = utc_now()
            elif not archived and channel.archived_at is not None:
                channel.archived_at = None
            else:
                return
            stream = channel_group(channel.id)
            for m in await self._members(work.session, channel.id):
                move = GroupMove.remove if archived else GroupMove.add
                work.publish(tenant, stream, move(str(m.user_id), stream).to_wire())

    async def join(self, tenant: str, user: uuid.UUID, channel_id: uuid.UUID) -> dict[str, Any]:
        async with self.outbox.transaction() as work:
            channel = await self._channel(work.session, tenant, channel_id, lock=True)
            if await self._member(work.session, channel_id, user) is None:
                if channel.is_private or channel.type != "channel":
                    raise not_found("Channel")
                self._add_member(work, channel, user, MEMBER)
                await work.session.flush()
            return await self._channel_dto(work.session, channel, user)

    async def add_members(
        self, tenant: str, user: uuid.UUID, channel_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
    ) -> dict[str, Any]:
        async with self.outbox.transaction() as work:
            channel, member = await self._member_channel(
                work.session, tenant, channel_id, user, lock=True
            )
            if channel.type == "directMessage":
                raise forbidden("Members cannot be added to a direct message.")
            if channel.is_private and member.role != ADMIN:
                raise forbidden("Only an admin may add members to a private channel.")
            for new in dict.fromkeys(user_ids):
                if await self._member(work.session, channel_id, new) is None:
                    self._add_member(work, channel, new, MEMBER)
            await work.session.flush()
            return await self._channel_dto(work.session, channel, user)

    async def remove_member(
        self, tenant: str, user: uuid.UUID, channel_id: uuid.UUID, target: uuid.UUID
    ) -> None:
        async with self.outbox.transaction() as work:
            channel, member = await self._member_channel(
                work.session, tenant, channel_id, user, lock=True
            )
            if target != user and member.role != ADMIN:
                raise forbidden("Only an admin may remove other members.")
            removed = await self._member(work.session, channel_id, target)
            if removed is None:
                raise not_found("Member")
            await self._remove_member(work, channel, removed)

    async def open_dm(
        self, tenant: str, user: uuid.UUID, user_ids: Sequence[uuid.UUID]
    ) -> tuple[dict[str, Any], bool]:
        others = list(dict.fromkeys(u for u in user_ids))
        if user in others:
            raise bad_request("userIds must not contain the caller.", "userIds")
        if not 1 <= len(others) <= MAX_GROUP_DM:
            raise bad_request(f"userIds must hold 1..{MAX_GROUP_DM} other users.", "userIds")
        if len(others) == 1:
            key = ":".join(sorted([str(user), str(others[0])]))
            for attempt in range(2):
                try:
                    async with self.outbox.transaction() as work:
                        found = await work.session.scalar(
                            select(Channel).where(
                                Channel.tenant_id == tenant, Channel.dm_key == key
                            )
                        )
                        if found is not None:
                            return await self._channel_dto(work.session, found, user), False
                        channel = self._new_channel(
                            tenant, user, "directMessage", "", dm_key=key, private=True
                        )
                        work.session.add(channel)
                        await work.session.flush()
                        self._add_member(work, channel, user, MEMBER)
                        self._add_member(work, channel, others[0], MEMBER)
                        await work.session.flush()
                        return await self._channel_dto(work.session, channel, user), True
                except IntegrityError:
                    if attempt:
                        raise
            raise AssertionError("unreachable")
        async with self.outbox.transaction() as work:
            channel = self._new_channel(tenant, user, "groupMessage", "", private=True)
            work.session.add(channel)
            await work.session.flush()
            self._add_member(work, channel, user, ADMIN)
            for other in others:
                self._add_member(work, channel, other, MEMBER)
            await work.session.flush()
            return await self._channel_dto(work.session, channel, user), True

    # -- messages ----------------------------------------------------------------------

    async def _mentions(
        self, work: UnitOfWork, tenant: str, channel: Channel, author: uuid.UUID, body: str
    ) -> list[uuid.UUID]:
        names = {name.lower().rstrip(".-") for name in MENTION.findall(body)}
        if not names:
            return []
        found = await self.users.resolve_names(work, tenant, names)
        members = {m.user_id for m in await self._members(work.session, channel.id)}
        return [u for u in dict.fromkeys(found.values()) if u != author and u in members]

    async def post(  # noqa: PLR0917 (internal call sites, fixed order)
        self,
        tenant: str,
        user: uuid.UUID,
        channel_id: uuid.UUID,
        text: str,
        parent_id: uuid.UUID | None,
        key: str | None,
    ) -> tuple[dict[str, Any], bool]:
        body = _body(text)
        if key is not None and not 1 <= len(key) <= 200:
            raise bad_request("Idempotency-Key must be 1..200 characters.", "Idempotency-Key")
        async with self.outbox.transaction() as work:
            s = work.session
            channel, _ = await self._member_channel(s, tenant, channel_id, user, lock=True)
            if key is not None:
                first = await s.scalar(
                    select(Message).where(
                        Message.channel_id == channel_id,
                        Message.author_user_id == user,
                        Message.idempotency_key == key,
                    )
                )
                if first is not None:
                    return await self._message_dto(s, first), False
            parent = None
            if parent_id is not None:
                parent = await s.get(Message, parent_id)
                if (
                    parent is None
                    or parent.channel_id != channel_id
                    or parent.deleted_at is not None
                ):
                    raise bad_request(
                        "parentMessageId is not a message of this channel.", "parentMessageId"
                    )
                if parent.parent_id is not None:
                    raise bad_request("Replies are one level deep.", "parentMessageId")
                parent.reply_count += 1
            now = utc_now()
            mentions = await self._mentions(work, tenant, channel, user, body)
            message = Message(
                id=new_id(),
                tenant_id=tenant,
                channel_id=channel_id,
                author_user_id=user,
                body=body,
                parent_id=parent_id,
                reply_count=0,
                mentions=[str(m) for m in mentions],
                idempotency_key=key,
                created_at=now,
            )
            s.add(message)
            channel.last_message_at = now
            await s.flush()
            dto = await self._message_dto(s, message)
            _send(
                work,
                tenant,
                channel_id,
                channel_group(channel_id),
                Events.CHAT_MESSAGE_CREATED,
                dto,
            )
            for mentioned in mentions:
                await self.notifications.notify(
                    work,
                    tenant,
                    mentioned,
                    type="chat.mention",
                    title="You were mentioned",
                    body=body[:200],
                    link=f"/channels/{channel_id}/messages/{message.id}",
                    source="chat",
                    metadata={
                        "channelId": str(channel_id),
                        "messageId": str(message.id),
                        "authorUserId": str(user),
                    },
                )
            return dto, True

    async def messages(  # noqa: PLR0917 (internal call sites, fixed order)
        self,
        tenant: str,
        user: uuid.UUID,
        channel_id: uuid.UUID,
        before: uuid.UUID | None,
        after: uuid.UUID | None,
        size: int,
    ) -> list[dict[str, Any]]:
        async with self.outbox.transaction() as work:
            await self._member_channel(work.session, tenant, channel_id, user)
            query = select(Message).where(
                Message.channel_id == channel_id, Message.parent_id.is_(None)
            )
            if after is not None:
                query = query.where(Message.id > after).order_by(Message.id)
            else:
                if before is not None:
                    query = query.where(Message.id < before)
                query = query.order_by(Message.id.desc())
            rows = await work.session.scalars(query.limit(size))
            return [await self._message_dto(work.session, m) for m in rows.all()]

    async def replies(
        self,
        tenant: str,
        user: uuid.UUID,
        message_id: uuid.UUID,
        before: uuid.UUID | None,
        size: int,
    ) -> list[dict[str, Any]]:
        async with self.outbox.transaction() as work:
            await self._message(work.session, tenant, message_id, user, lock=False)
            query = select(Message).where(Message.parent_id == message_id)
            if before is not None:
                query = query.where(Message.id < before)
            rows = await work.session.scalars(query.order_by(Message.id.desc()).limit(size))
            return [await self._message_dto(work.session, m) for m in rows.all()]

    async def edit(
        self, tenant: str, user: uuid.UUID, message_id: uuid.UUID, text: str
    ) -> dict[str, Any]:
        body = _body(text)
        async with self.outbox.transaction() as work:
            _, _, message = await self._message(work.session, tenant, message_id, user)
            if message.author_user_id != user:
                raise forbidden("Only the author may edit a message.")
            if message.deleted_at is not None:
                raise Problem(409, "Conflict", "A deleted message cannot be edited.")
            if message.body == body:
                return await self._message_dto(work.session, message)
            message.body, message.edited_at = body, utc_now()
            dto = await self._message_dto(work.session, message)
            _send(
                work,
                tenant,
                message.channel_id,
                channel_group(message.channel_id),
                Events.CHAT_MESSAGE_EDITED,
                dto,
            )
            return dto

    async def delete(self, tenant: str, user: uuid.UUID, message_id: uuid.UUID) -> None:
        async with self.outbox.transaction() as work:
            _, member, message = await self._message(work.session, tenant, message_id, user)
            if message.author_user_id != user and member.role != ADMIN:
                raise forbidden("Only the author or a channel admin may delete a message.")
            if message.deleted_at is not None:
                return
            message.deleted_at = utc_now()
            if message.parent_id is not None:
                parent = await work.session.get(Message, message.parent_id)
                if parent is not None and parent.reply_count > 0:
                    parent.reply_count -= 1
            _send(
                work,
                tenant,
                message.channel_id,
                channel_group(message.channel_id),
                Events.CHAT_MESSAGE_DELETED,
                {"channelId": str(message.channel_id), "messageId": str(message.id)},
            )

    async def pin(
        self, tenant: str, user: uuid.UUID, message_id: uuid.UUID, pinned: bool
    ) -> dict[str, Any]:
        async with self.outbox.transaction() as work:
            _, _, message = await self._message(work.session, tenant, message_id, user)
            if message.deleted_at is not None and pinned:
                raise Problem(409, "Conflict", "A deleted message cannot be pinned.")
            if pinned == (message.pinned_at is not None):
                return await self._message_dto(work.session, message)
            message.pinned_at = utc_now() if pinned else None
            message.pinned_by_user_id = user if pinned else None
            dto = await self._message_dto(work.session, message)
            target = Events.CHAT_MESSAGE_PINNED if pinned else Events.CHAT_MESSAGE_UNPINNED
            _send(work, tenant, message.channel_id, channel_group(message.channel_id), target, dto)
            return dto

    async def react(
        self, tenant: str, user: uuid.UUID, message_id: uuid.UUID, emoji: str, added: bool
    ) -> dict[str, Any]:
        emoji = emoji.strip()
        if not 1 <= len(emoji) <= 64:
            raise bad_request("emoji must be 1..64 characters.", "emoji")
        async with self.outbox.transaction() as work:
            s = work.session
            _, _, message = await self._message(s, tenant, message_id, user)
            existing = await s.get(Reaction, (message_id, user, emoji))
            if added == (existing is not None):
                return await self._message_dto(s, message)
            if added:
                if message.deleted_at is not None:
                    raise Problem(409, "Conflict", "A deleted message cannot get reactions.")
                s.add(
                    Reaction(
                        message_id=message_id,
                        user_id=user,
                        emoji=emoji,
                        tenant_id=tenant,
                        created_at=utc_now(),
                    )
                )
            else:
                await s.delete(existing)
            await s.flush()
            _send(
                work,
                tenant,
                message.channel_id,
                channel_group(message.channel_id),
                Events.CHAT_REACTION_CHANGED,
                {
                    "channelId": str(message.channel_id),
                    "messageId": str(message_id),
                    "userId": str(user),
                    "emoji": emoji,
                    "kind": "added" if added else "removed",
                },
            )
            return await self._message_dto(s, message)

    async def pinned(
        self, tenant: str, user: uuid.UUID, channel_id: uuid.UUID
    ) -> list[dict[str, Any]]:
        async with self.outbox.transaction() as work:
            await self._member_channel(work.session, tenant, channel_id, user)
            rows = await work.session.scalars(
                select(Message)
                .where(Message.channel_id == channel_id, Message.pinned_at.is_not(None))
                .order_by(Message.pinned_at.desc())
            )
            return [await self._message_dto(work.session, m) for m in rows.all()]

    async def read(
        self, tenant: str, user: uuid.UUID, channel_id: uuid.UUID, message_id: uuid.UUID
    ) -> dict[str, Any]:
        async with self.outbox.transaction() as work:
            channel, member = await self._member_channel(
                work.session, tenant, channel_id, user, lock=True
            )
            message = await work.session.get(Message, message_id)
            if message is None or message.channel_id != channel_id:
                raise bad_request("messageId is not a message of this channel.", "messageId")
            current = member.last_read_message_id
            if current is None or message_id > current:
                member.last_read_message_id = message_id
                ids = {"channelId": str(channel_id), "lastReadMessageId": str(message_id)}
                _send(work, tenant, channel_id, user_group(user), Events.CHAT_CHANNEL_READ, ids)
                _send(
                    work,
                    tenant,
                    channel_id,
                    channel_group(channel_id),
                    Events.CHAT_CHANNEL_MEMBER_READ,
                    {**ids, "userId": str(user)},
                )
            return {
                "channelId": str(channel_id),
                "lastReadMessageId": str(member.last_read_message_id),
                "unreadCount": await self._unread(work.session, channel, member),
            }

    async def search(  # noqa: PLR0917 (internal call sites, fixed order)
        self,
        tenant: str,
        user: uuid.UUID,
        q: str,
        channel_id: uuid.UUID | None,
        page: int,
        size: int,
    ) -> list[dict[str, Any]]:
        terms = q.strip()
        if not terms:
            raise bad_request("q must not be blank.", "q")
        async with self.outbox.transaction() as work:
            mine = (
                select(Member.channel_id)
                .join(Channel, Channel.id == Member.channel_id)
                .where(
                    Member.user_id == user,
                    Channel.tenant_id == tenant,
                    Channel.archived_at.is_(None),
                )
            )
            query = select(Message).where(
                Message.tenant_id == tenant,
                Message.channel_id.in_(mine),
                Message.deleted_at.is_(None),
            )
            if channel_id is not None:
                query = query.where(Message.channel_id == channel_id)
            query = query.where(self._matches(work.session, terms))
            rows = await work.session.scalars(
                query.order_by(Message.id.desc()).offset((page - 1) * size).limit(size)
            )
            return [await self._message_dto(work.session, m) for m in rows.all()]

    @staticmethod
    def _matches(session: AsyncSession, terms: str) -> ColumnElement[bool]:
        """Full-text match of every word of `terms`: FTS5 on SQLite (each word a quoted
        prefix term), `to_tsvector` on PostgreSQL, a LIKE per word elsewhere."""
        words = terms.split()
        dialect = session.bind.dialect.name if session.bind is not None else ""
        if dialect == "sqlite":
            expression = " ".join('"' + w.replace('"', '""') + '"*' for w in words)
            matching = text(
                "SELECT rowid FROM chat_messages_fts WHERE chat_messages_fts MATCH :expression"
            ).bindparams(expression=expression)
            return literal_column("chat_messages.rowid").in_(matching)
        if dialect == "postgresql":
            vector = func.to_tsvector(literal("simple").cast(REGCONFIG), Message.body)
            query = func.plainto_tsquery(literal("simple").cast(REGCONFIG), terms)
            return vector.op("@@")(query)
        clauses = []
        for word in words:
            escaped = word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append(func.lower(Message.body).like(f"%{escaped}%", escape="\\"))
        return and_(*clauses)
