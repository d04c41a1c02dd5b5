"""The chat service: channel commands plus messages, threads, reactions, pins, read state
and search (each command one outbox unit of work; see `hero.modules.chat.core`)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, literal_column, select, text
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.ext.asyncio import AsyncSession

from hero.conventions import Events, channel_group, user_group
from hero.data import UnitOfWork, new_id, utc_now
from hero.data.cursors import beyond
from hero.modules.chat.channels import ChannelCommands
from hero.modules.chat.core import (
    ADMIN,
    INSERT_MESSAGE,
    MENTION,
    SET_LAST_MESSAGE,
    STAMP_CHANNEL,
    NoNotifications,
    NoUsers,
    send_event,
    trimmed_body,
)
from hero.modules.chat.dtos import new_message_dto
from hero.modules.chat.models import Channel, Member, Message, Reaction
from hero.modules.http import Problem, bad_request, forbidden, not_found

__all__ = ["ChatService", "NoNotifications", "NoUsers"]


class ChatService(ChannelCommands):
    """Channels, membership, messages, reactions, pins, read state and search."""

    # -- messages ----------------------------------------------------------------------

    async def _mentions(
        self, work: UnitOfWork, tenant: str, channel_id: uuid.UUID, author: uuid.UUID, body: str
    ) -> list[uuid.UUID]:
        names = {name.lower().rstrip(".-") for name in MENTION.findall(body)}
        if not names:
            return []
        found = await self.users.resolve_names(work, tenant, names)
        members = {m.user_id for m in await self._members(work.session, channel_id)}
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
        """One statement locks the channel, checks the membership and stamps
        `last_message_at`; the message and its event are two INSERTs (Core, no ORM flush)."""
        body = trimmed_body(text)
        if key is not None and not 1 <= len(key) <= 200:
            raise bad_request("Idempotency-Key must be 1..200 characters.", "Idempotency-Key")
        async with self.outbox.transaction() as work:
            s = work.session
            now = utc_now()
            connection = await s.connection()
            stamp = now if key is None else None  # a replay must change nothing
            stamped = await connection.execute(
                STAMP_CHANNEL, {"channel": channel_id, "tenant": tenant, "user": user, "now": stamp}
            )
            if stamped.rowcount != 1:
                raise not_found("Channel")
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
                await connection.execute(SET_LAST_MESSAGE, {"channel": channel_id, "now": now})
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
                await s.flush()
            mentions = await self._mentions(work, tenant, channel_id, user, body)
            message_id = new_id()
            row = {
                "id": message_id,
                "tenant_id": tenant,
                "channel_id": channel_id,
                "author_user_id": user,
                "body": body,
                "parent_id": parent_id,
                "reply_count": 0,
                "mentions": [str(m) for m in mentions],
                "idempotency_key": key,
                "created_at": now,
                "edited_at": None,
                "deleted_at": None,
                "pinned_by_user_id": None,
                "pinned_at": None,
            }
            await connection.execute(INSERT_MESSAGE, {**row, "seq_channel": channel_id})
            dto = new_message_dto(row)
            send_event(
                work,
                tenant,
                channel_id,
                channel_group(channel_id),
                Events.CHAT_MESSAGE_CREATED,
                dto,
            )
            for mentioned in sorted(mentions):  # one lock order for the users' counters
                await self.notifications.notify(
                    work,
                    tenant,
                    mentioned,
                    type="chat.mention",
                    title="You were mentioned",
                    body=body[:200],
                    link=f"/channels/{channel_id}/messages/{message_id}",
                    source="chat",
                    metadata={
                        "channelId": str(channel_id),
                        "messageId": str(message_id),
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
        """Top-level messages, newest first, or oldest first after `after`. A cursor that is
        a message of the channel is compared by commit order (`seq`): a catch-up `after=` the
        last id a client saw returns exactly what committed after it, whichever instance's
        clock minted the ids. Any other UUID is compared as a UUIDv7, by time."""
        async with self.outbox.transaction() as work:
            s = work.session
            await self._member_channel(s, tenant, channel_id, user)
            mine = Message.channel_id == channel_id
            query = select(Message).where(mine, Message.parent_id.is_(None))
            if after is not None:
                where, order = await self._since(s, mine, after, later=True)
                query = query.where(where).order_by(order)
            elif before is not None:
                where, order = await self._since(s, mine, before, later=False)
                query = query.where(where).order_by(order.desc())
            else:
                query = query.order_by(Message.seq.desc())
            rows = await s.scalars(query.limit(size))
            return [await self._message_dto(work.session, m) for m in rows.all()]

    @staticmethod
    async def _since(
        s: AsyncSession, among: ColumnElement[bool], cursor: uuid.UUID, *, later: bool
    ) -> tuple[ColumnElement[bool], Any]:
        """The messages committed after (`later`) or before the cursor, and the column to
        order them by (`hero.data.cursors`); the cursor counts when it is one of the
        messages `among` selects."""
        seq = await s.scalar(select(Message.seq).where(Message.id == cursor, among))
        return beyond(Message.seq, Message.id, cursor, seq, later=later)

    async def replies(
        self,
        tenant: str,
        user: uuid.UUID,
        message_id: uuid.UUID,
        before: uuid.UUID | None,
        size: int,
    ) -> list[dict[str, Any]]:
        async with self.outbox.transaction() as work:
            s = work.session
            await self._message(s, tenant, message_id, user, lock=False)
            thread = Message.parent_id == message_id
            query = select(Message).where(thread)
            order: Any = Message.seq
            if before is not None:
                where, order = await self._since(s, thread, before, later=False)
                query = query.where(where)
            rows = await s.scalars(query.order_by(order.desc()).limit(size))
            return [await self._message_dto(s, m) for m in rows.all()]

    async def edit(
        self, tenant: str, user: uuid.UUID, message_id: uuid.UUID, text: str
    ) -> dict[str, Any]:
        body = trimmed_body(text)
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
            send_event(
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
            # a tombstone is no pin: ChatMessageDeleted tells clients to drop it everywhere
            message.pinned_at, message.pinned_by_user_id = None, None
            if message.parent_id is not None:
                parent = await work.session.get(Message, message.parent_id)
                if parent is not None and parent.reply_count > 0:
                    parent.reply_count -= 1
            send_event(
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
            send_event(
                work, tenant, message.channel_id, channel_group(message.channel_id), target, dto
            )
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
            send_event(
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
            read_up_to = None
            if current is not None:
                read_up_to = await work.session.scalar(
                    select(Message.seq).where(Message.id == current)
                )
            if read_up_to is None or message.seq > read_up_to:
                member.last_read_message_id = message_id
                ids = {"channelId": str(channel_id), "lastReadMessageId": str(message_id)}
                send_event(
                    work,
                    tenant,
                    channel_id,
                    user_group(tenant, user),
                    Events.CHAT_CHANNEL_READ,
                    ids,
                )
                send_event(
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
