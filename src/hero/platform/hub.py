"""AppHub: the one hub serving every realtime concern (docs/platform.md §5).

On connect a connection joins `user:{tenantId}:{userId}`, `tenant:{tenantId}` and one `channel:{id}`
per channel of its user; these count towards `Realtime:MaximumGroupsPerConnection` but are
never refused by it (docs/groups.md). Identity always comes from the connection's own principal,
captured at connect time. Modules add hub methods by contributing mixin classes; the
platform composes them into one AppHub type (`compose_app_hub`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from hero.auth import Principal
from hero.caching import Cache
from hero.conventions import (
    RESERVED_GROUP_PREFIXES,
    ChannelLookup,
    ChannelMembership,
    Events,
    NoChannels,
    channel_group,
    tenant_group,
    typing_throttle_key,
    user_group,
)
from hero.platform.presence import PresenceTracker
from hero.realtime import Hub, HubException, hub_method

TYPING_WINDOW_SECONDS = 3.0

GroupAuthorizer = Callable[[Principal, dict[str, str]], Awaitable[bool] | bool]
"""Decides whether `principal` may join a group; gets the pattern's named parts."""


class GroupPolicy:
    """A domain group pattern such as `dashboard:{tenantId}:{dashboardId}` and its authorizer.

    Placeholders match one segment (no `:`); the authorizer sees them by name.
    """

    def __init__(self, pattern: str, authorizer: GroupAuthorizer) -> None:
        self.pattern = pattern
        self.authorizer = authorizer
        regex = ""
        for literal, name in re.findall(r"([^{]*)(?:\{(\w+)\})?", pattern):
            regex += re.escape(literal)
            if name:
                regex += f"(?P<{name}>[^:]+)"
        self._regex = re.compile(regex)

    def match(self, group: str) -> dict[str, str] | None:
        found = self._regex.fullmatch(group)
        return found.groupdict() if found else None


def same_tenant_dashboards() -> GroupPolicy:
    """`dashboard:{tenantId}:{dashboardId}`: any user of that tenant may watch."""

    def authorize(principal: Principal, parts: dict[str, str]) -> bool:
        return parts["tenantId"] == principal.tenant_id

    return GroupPolicy("dashboard:{tenantId}:{dashboardId}", authorize)


class TypingObserver:
    """Metrics hook for the typing throttle."""

    def throttled(self) -> None:
        """A Typing call lost the claim (within the 3 s window)."""


@dataclass
class RealtimeServices:
    """What AppHub methods need; built once by `create_app`."""

    cache: Cache
    presence: PresenceTracker
    channels: ChannelLookup = field(default_factory=NoChannels)
    membership: ChannelMembership = field(default_factory=NoChannels)
    group_policies: Sequence[GroupPolicy] = ()
    typing_observer: TypingObserver = field(default_factory=TypingObserver)


class AppHub(Hub):
    """Group conventions, typing throttle, domain groups and presence."""

    def __init__(self, services: RealtimeServices) -> None:
        self.services = services

    @property
    def principal(self) -> Principal:
        principal = self.context.user
        if not isinstance(principal, Principal):
            raise HubException("No user id in JWT claims.")
        return principal

    async def on_connected(self) -> None:
        principal = self.principal
        cid = self.context.connection_id
        await self.groups.add(cid, user_group(principal.tenant_id, principal.user_id))
        await self.groups.add(cid, tenant_group(principal.tenant_id))
        for channel_id in await self.services.channels.channels_of(
            principal.tenant_id, principal.user_id
        ):
            await self.groups.add(cid, channel_group(channel_id))
        await self.services.presence.connected(principal.tenant_id, principal.user_id, cid)

    async def on_disconnected(self, exception: BaseException | None) -> None:
        await self.services.presence.disconnected(self.context.connection_id)

    @hub_method
    async def typing(self, channel_id: UUID) -> None:
        """Announce that the caller is typing, at most once per 3 s per (channel, user)."""
        principal = self.principal
        if not await self.services.membership.is_member(
            principal.tenant_id, channel_id, principal.user_id
        ):
            return
        key = typing_throttle_key(channel_id, principal.user_id)
        if not await self.services.cache.claim(key, TYPING_WINDOW_SECONDS):
            self.services.typing_observer.throttled()
            return
        await self.clients.others_in_group(channel_group(channel_id)).send(
            Events.CHAT_TYPING_STARTED,
            {"channelId": str(channel_id), "userId": str(principal.user_id)},
            ephemeral=True,  # a slow client may miss it; the next one comes within 3 s
        )

    @hub_method
    async def join_channel(self, channel_id: UUID) -> None:
        """Join `channel:{id}` if the caller is a member (idempotent); else a silent no-op."""
        principal = self.principal
        if await self.services.membership.is_member(
            principal.tenant_id, channel_id, principal.user_id
        ):
            await self.groups.add(self.context.connection_id, channel_group(channel_id))

    async def _authorize_group(self, name: str) -> None:
        if name.startswith(RESERVED_GROUP_PREFIXES):
            raise HubException(f"The group '{name}' is reserved and cannot be joined by name.")
        for policy in self.services.group_policies:
            parts = policy.match(name)
            if parts is None:
                continue
            allowed = policy.authorizer(self.principal, parts)
            if not isinstance(allowed, bool):
                allowed = await allowed
            if allowed:
                return
            raise HubException(f"Not allowed to join the group '{name}'.")
        raise HubException(f"The group '{name}' does not match any registered group pattern.")

    @hub_method
    async def join_group(self, name: str) -> None:
        """Join a domain group registered by application code (its authorizer decides).

        The name is checked (length, control characters) before any pattern matching.
        """
        self.groups.check_name(name)
        await self._authorize_group(name)
        await self.groups.add(self.context.connection_id, name)

    @hub_method
    async def leave_group(self, name: str) -> None:
        self.groups.check_name(name)
        await self._authorize_group(name)
        await self.groups.remove(self.context.connection_id, name)


def compose_app_hub(mixins: Sequence[type[Any]]) -> type[AppHub]:
    """One AppHub type with every module's hub methods (mixins first in the MRO)."""
    if not mixins:
        return AppHub
    return type("AppHub", (*mixins, AppHub), {})
