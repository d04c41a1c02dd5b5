"""AppHub under the hub limits (the attacker review's findings), in-process with the whole
platform from `create_app`: bad group names inside a registered pattern, a connection in
too many groups, a client invoking too fast. Each refusal is an error Completion, shows in
/metrics, and leaves the caller's connection and a second connection working."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import httpx
import pytest
from starlette.applications import Starlette

from hero.auth import Principal, mint_token
from hero.conventions import channel_group
from hero.platform.app import PlatformModules, create_app
from hero.platform.hub import GroupPolicy
from hero.platform.settings import load_settings
from hero.realtime import hub_method
from hero.realtime.testing import HubInvocationError, HubTestClient, lifespan

KEY = "apphub-limits-signing-key-0123456789abcdef"
HUB = "/realtime/hub"
ALICE, BOB = uuid.uuid4(), uuid.uuid4()
SHARED, ALICE_ONLY_1, ALICE_ONLY_2 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


class GroupProbeMixin:
    """A test-only hub method: send to any group."""

    @hub_method
    async def send_to_group(self, name: str, target: str, arg: Any) -> None:
        await self.clients.group(name).send(target, arg)  # type: ignore[attr-defined]


class StaticChannels:
    """ChannelLookup + ChannelMembership over a fixed map."""

    def __init__(self, members: dict[UUID, set[UUID]]) -> None:
        self.members = members

    async def channels_of(self, tenant_id: str, user_id: UUID) -> list[UUID]:
        return [c for c, users in self.members.items() if user_id in users]

    async def is_member(self, tenant_id: str, channel_id: UUID, user_id: UUID) -> bool:
        return user_id in self.members.get(channel_id, set())


class Authorizations:
    """A dashboard pattern whose authorizer records every name it was asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def policy(self) -> GroupPolicy:
        def authorize(principal: Principal, parts: dict[str, str]) -> bool:
            self.asked.append(parts["dashboardId"])
            return parts["tenantId"] == principal.tenant_id

        return GroupPolicy("dashboard:{tenantId}:{dashboardId}", authorize)


AppFactory = Callable[..., Any]


@pytest.fixture
def platform(unit: float) -> AppFactory:
    @asynccontextmanager
    async def start(
        authorizations: Authorizations, **environ: str
    ) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
        settings = load_settings(
            None,
            {
                "JwtOptions__SigningKey": KEY,
                "DatabaseOptions__ConnectionString": "sqlite+aiosqlite:///:memory:",
                **environ,
            },
        )
        channels = StaticChannels(
            {SHARED: {ALICE, BOB}, ALICE_ONLY_1: {ALICE}, ALICE_ONLY_2: {ALICE}}
        )
        modules = PlatformModules(
            hub_mixins=[GroupProbeMixin],
            channels=channels,
            membership=channels,
            group_policies=[authorizations.policy()],
        )
        application = create_app(settings, modules)
        async with (
            lifespan(application),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=application), base_url="http://testserver"
            ) as http,
        ):
            yield application, http

    return start


def client(app: Starlette, user: UUID, unit: float) -> HubTestClient:
    token = mint_token(KEY, "hero.local", "hero.clients", user, tenant="acme")
    return HubTestClient(app, HUB, transport="LongPolling", access_token=token, timeout=10 * unit)


async def metric(http: httpx.AsyncClient, sample: str) -> float:
    """The value of one sample (`name` or `name{labels}`) of /metrics; 0 when absent."""
    response = await http.get("/metrics")
    assert response.status_code == 200
    for line in response.text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_bad_group_names_are_refused_before_the_pattern_is_matched(
    platform: AppFactory, unit: float, caplog: pytest.LogCaptureFixture
) -> None:
    authorizations = Authorizations()
    async with (
        platform(authorizations) as (app, http),
        client(app, ALICE, unit) as alice,
        client(app, BOB, unit) as bob,
    ):
        await bob.invoke("JoinGroup", "dashboard:acme:d1")
        assert authorizations.asked == ["d1"]
        bad = {
            "dashboard:acme:" + "x" * 30_000: "limited to 256 characters (got 30015).",
            "dashboard:acme:d\n1": "control characters (U+000A at position 16).",
            "dashboard:acme:\x00": "control characters (U+0000 at position 15).",
            "dashboard:acme:\x1b[2J": "control characters (U+001B at position 15).",
            "dashboard:acme:d\r": "control characters (U+000D at position 16).",
            "dashboard:acme:d\x7f": "control characters (U+007F at position 16).",
        }
        for name, problem in bad.items():
            for method in ("JoinGroup", "LeaveGroup"):
                with pytest.raises(HubInvocationError) as refused:
                    await alice.invoke(method, name)
                assert str(refused.value).startswith(
                    f"An unexpected error occurred invoking '{method}' on the server. "
                    "GroupNameError: Group names "
                )
                assert str(refused.value).endswith(problem)
        assert authorizations.asked == ["d1"]  # no bad name reached the pattern
        assert await metric(http, "hero_group_name_refusals_total") == 2 * len(bad)
        # Alice's connection still works, and so do Bob's groups.
        await alice.invoke("SendToGroup", "dashboard:acme:d1", "Probe", "to d1")
        assert await bob.next_message("Probe") == ("to d1",)
    assert no_errors_logged(caplog)


async def test_a_connection_in_too_many_groups_cannot_join_more_but_still_connects(
    platform: AppFactory, unit: float, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        platform(Authorizations(), Realtime__MaximumGroupsPerConnection="4") as (app, http),
        client(app, ALICE, unit) as alice,  # user:, tenant:, 3 channels: 5 groups at connect
        client(app, BOB, unit) as bob,  # user:, tenant:, 1 channel: 3 groups
    ):
        await bob.invoke("JoinGroup", "dashboard:acme:d1")  # his 4th
        limit = (
            "GroupLimitError: A connection can be in at most 4 groups; leave one to join another."
        )
        for member in (bob, alice):
            with pytest.raises(HubInvocationError) as refused:
                await member.invoke("JoinGroup", "dashboard:acme:d2")
            assert str(refused.value).endswith(limit)
        assert await metric(http, "hero_group_limit_refusals_total") == 2
        await alice.invoke("JoinChannel", str(SHARED))  # joined on connect: not a new group
        # Every group joined on connect (and Bob's dashboard) still delivers.
        for channel in (SHARED, ALICE_ONLY_1, ALICE_ONLY_2):
            await bob.invoke("SendToGroup", channel_group(channel), "Probe", str(channel))
            assert await alice.next_message("Probe") == (str(channel),)
        assert await bob.next_message("Probe") == (str(SHARED),)
        await alice.invoke("SendToGroup", "dashboard:acme:d1", "Probe", "to d1")
        assert await bob.next_message("Probe") == ("to d1",)
        # Leaving makes room.
        await bob.invoke("LeaveGroup", "dashboard:acme:d1")
        await bob.invoke("JoinGroup", "dashboard:acme:d2")
    assert no_errors_logged(caplog)


async def test_a_client_over_the_invocation_rate_gets_errors_and_others_go_on(
    platform: AppFactory, unit: float, caplog: pytest.LogCaptureFixture
) -> None:
    # One token per 1000 s: the bucket never refills during the test.
    settings = {"Realtime__MaximumInvocationsPerSecond": "0.001", "Realtime__InvocationBurst": "3"}
    async with (
        platform(Authorizations(), **settings) as (app, http),
        client(app, ALICE, unit) as alice,
        client(app, BOB, unit) as bob,
    ):
        for n in range(3):
            await alice.invoke("SendToGroup", channel_group(SHARED), "Probe", n)
            for member in (alice, bob):  # both are in the channel
                assert await member.next_message("Probe") == (n,)
        await alice.send("SendToGroup", channel_group(SHARED), "Probe", "dropped")
        with pytest.raises(HubInvocationError) as refused:
            await alice.invoke("Typing", str(SHARED))
        assert str(refused.value) == (
            "An unexpected error occurred invoking 'Typing' on the server. HubException: "
            "Too many invocations: at most 0.001 per second (bursts of 3)."
        )
        rate_limited = "hero_invocations_rate_limited_total"
        assert await metric(http, rate_limited + '{outcome="refused"}') == 1
        assert await metric(http, rate_limited + '{outcome="dropped"}') == 1
        # Bob has a bucket of his own; the dropped send never ran, so the next Probe either
        # of them gets is Bob's.
        await bob.invoke("SendToGroup", channel_group(SHARED), "Probe", "from bob")
        for member in (alice, bob):
            assert await member.next_message("Probe") == ("from bob",)
    assert no_errors_logged(caplog)
