"""Channel commands: create, list, discover, update, archive/restore, join, members, DMs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from hero.conventions import channel_group, realtime_user
from hero.data import utc_now
from hero.modules.chat.core import ADMIN, MAX_GROUP_DM, MEMBER, ChatCore, slug_of
from hero.modules.chat.models import Channel, Member
from hero.modules.http import bad_request, forbidden, not_found
from hero.realtime import GroupMove


class ChannelCommands(ChatCore):
    """The channel half of the chat service."""

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
            channel.name, channel.slug, channel.description = name, slug_of(name), description
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
                work.publish(
                    tenant, stream, move(realtime_user(tenant, m.user_id), stream).to_wire()
                )

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
            if channel.type == "directMessage":
                # find-or-create would hand back a DM one of the pair is no longer in
                raise forbidden("Nobody leaves a direct message or is removed from it.")
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
