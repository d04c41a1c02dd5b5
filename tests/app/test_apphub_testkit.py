"""AppHub in-process with the test kit (ASP.NET Core's TestServer pattern for hubs):
no sockets, long polling forced (the TestServer pattern), the whole platform from
`create_app`. Use this module as the template for new realtime integration tests.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from starlette.applications import Starlette

from hero.auth import mint_token
from hero.conventions import user_group
from hero.platform.app import PlatformModules, create_app
from hero.platform.settings import load_settings
from hero.realtime import hub_method
from hero.realtime.testing import HubConnectionError, HubTestClient, lifespan

KEY = "apphub-testkit-signing-key-0123456789abcdef"
HUB = "/realtime/hub"


class ProbeMixin:
    """A test-only hub method: send to a user through the
    `user:{tenantId}:{userId}` group."""

    @hub_method
    async def send_to_user(self, user_id: str, target: str, arg: Any) -> None:
        """To a user of the caller's tenant."""
        tenant = self.context.user.tenant_id  # type: ignore[attr-defined]
        await self.clients.group(user_group(tenant, user_id)).send(target, arg)  # type: ignore[attr-defined]

    @hub_method
    async def send_to_tenant_user(self, tenant: str, user_id: str, target: str, arg: Any) -> None:
        await self.clients.group(user_group(tenant, user_id)).send(target, arg)  # type: ignore[attr-defined]


class StaticChannels:
    """ChannelLookup + ChannelMembership over a fixed map."""

    def __init__(self, members: dict[UUID, set[UUID]]) -> None:
        self.members = members

    async def channels_of(self, tenant_id: str, user_id: UUID) -> list[UUID]:
        return [c for c, users in self.members.items() if user_id in users]

    async def is_member(self, tenant_id: str, channel_id: UUID, user_id: UUID) -> bool:
        return user_id in self.members.get(channel_id, set())


ALICE, BOB, CAROL = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
CHANNEL = uuid.uuid4()


def token(user: UUID, tenant: str = "acme") -> str:
    return mint_token(KEY, "hero.local", "hero.clients", user, tenant=tenant)


@pytest.fixture
async def app() -> AsyncIterator[Starlette]:
    settings = load_settings(
        None,
        {
            "JwtOptions__SigningKey": KEY,
            "DatabaseOptions__ConnectionString": "sqlite+aiosqlite:///:memory:",
        },
    )
    channels = StaticChannels({CHANNEL: {ALICE, BOB}})
    modules = PlatformModules(hub_mixins=[ProbeMixin], channels=channels, membership=channels)
    application = create_app(settings, modules)
    async with lifespan(application):
        yield application


def client(app: Starlette, user: UUID | None, unit: float, tenant: str = "acme") -> HubTestClient:
    return HubTestClient(
        app,
        HUB,
        transport="LongPolling",
        access_token=None if user is None else token(user, tenant),
        timeout=10 * unit,
    )


async def test_unauthenticated_connection_is_refused(app: Starlette, unit: float) -> None:
    with pytest.raises(HubConnectionError) as refused:
        async with client(app, None, unit):
            pass
    assert "401" in str(refused.value)


async def test_presence_and_user_group_over_long_polling(app: Starlette, unit: float) -> None:
    async with (
        client(app, ALICE, unit) as alice,
        client(app, ALICE, unit) as alice_phone,
        client(app, CAROL, unit, tenant="globex") as carol,
    ):
        async with client(app, BOB, unit) as bob:
            # bob's first connection: alice's tenant hears it, on both devices
            for device in (alice, alice_phone):
                while (await device.next_message("PresenceChanged", timeout=5 * unit)) != (
                    {"userId": str(BOB), "online": True},
                ):
                    pass
            await bob.invoke("SendToUser", str(ALICE), "Probe", "hi alice")
            for device in (alice, alice_phone):
                assert await device.next_message("Probe", timeout=5 * unit) == ("hi alice",)
            await alice.invoke("SendToTenantUser", "globex", str(CAROL), "Probe", "hi carol")
            assert await carol.next_message("Probe", timeout=5 * unit) == ("hi carol",)
        # bob's last connection closed
        while (await alice.next_message("PresenceChanged", timeout=5 * unit)) != (
            {"userId": str(BOB), "online": False},
        ):
            pass
        # a probe: whatever was sent to carol before has arrived once it has
        await alice.invoke("SendToTenantUser", "globex", str(CAROL), "Probe", "after")
        assert await carol.next_message("Probe", timeout=5 * unit) == ("after",)
        # carol (another tenant) heard only herself come online
        assert await carol.next_message("PresenceChanged", timeout=0) == (
            {"userId": str(CAROL), "online": True},
        )
        with pytest.raises(TimeoutError):
            await carol.next_message("PresenceChanged", timeout=0)
        with pytest.raises(TimeoutError):  # "hi alice" went to alice's devices only
            await carol.next_message("Probe", timeout=0)


async def test_typing_reaches_other_members_only(app: Starlette, unit: float) -> None:
    async with (
        client(app, ALICE, unit) as alice,
        client(app, BOB, unit) as bob,
        client(app, CAROL, unit) as carol,
    ):
        assert await alice.invoke("Typing", str(CHANNEL)) is None
        assert await bob.next_message("ChatTypingStarted", timeout=5 * unit) == (
            {"channelId": str(CHANNEL), "userId": str(ALICE)},
        )
        assert await carol.invoke("Typing", str(CHANNEL)) is None  # not a member: no-op
        # probes: whatever was sent to them before has arrived by now
        for user, member in ((ALICE, alice), (BOB, bob), (CAROL, carol)):
            await alice.invoke("SendToUser", str(user), "Probe", str(user))
            assert await member.next_message("Probe", timeout=5 * unit) == (str(user),)
        for member in (alice, carol):  # not echoed to the caller; nothing for non-members
            with pytest.raises(TimeoutError):
                await member.next_message("ChatTypingStarted", timeout=0)
        with pytest.raises(TimeoutError):  # carol's Typing reached nobody
            await bob.next_message("ChatTypingStarted", timeout=0)
