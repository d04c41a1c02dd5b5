"""Group names and groups per connection, seen from clients of a library hub (in-process
test kit): refusals are error Completions, the connection and its groups keep working, and
a second connection is never affected."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
from starlette.applications import Starlette

from hero.realtime import (
    GroupNameError,
    HubOptions,
    HubRoute,
    HubServer,
    HubServerOptions,
)
from hero.realtime.runtime import LimitObserver
from hero.realtime.testing import ConformanceHub, HubInvocationError, HubTestClient
from tests.support.servers import UNIT

TIMEOUT = 10 * UNIT
JOIN_FAILED = "An unexpected error occurred invoking 'JoinGroup' on the server. "


class Refusals(LimitObserver):
    """Counts what the hub limits refused."""

    def __init__(self) -> None:
        self.names = 0
        self.joins = 0

    def group_name_refused(self) -> None:
        self.names += 1

    def group_limit_reached(self) -> None:
        self.joins += 1


class LobbyHub(ConformanceHub):
    """ConformanceHub whose connections join some groups in `on_connected` (server-decided)."""

    def __init__(self, joined_on_connect: Sequence[str]) -> None:
        self.joined_on_connect = joined_on_connect

    async def on_connected(self) -> None:
        for name in self.joined_on_connect:
            await self.groups.add(self.context.connection_id, name)


def serve(
    options: HubOptions, refusals: Refusals, joined_on_connect: Sequence[str] = ()
) -> tuple[HubServer, Starlette]:
    server = HubServer(
        LobbyHub,
        options=HubServerOptions(hub=options),
        hub_factory=lambda: LobbyHub(joined_on_connect),
        limit_observer=refusals,
    )
    return server, Starlette(routes=[HubRoute("/hub", server)])


def connect(app: Starlette) -> HubTestClient:
    return HubTestClient(app, "/hub", transport="WebSockets", timeout=TIMEOUT)


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return not [r for r in caplog.records if r.levelno >= logging.ERROR]


def groups_of(server: HubServer, client: HubTestClient) -> set[str]:
    assert client.connection_id is not None
    return set(server.lifetime.connection_groups(client.connection_id) or ())


BAD_NAMES = [
    pytest.param("r" * 257, "Group names are limited to 256 characters (got 257).", id="long"),
    pytest.param("r" * 30_000, "Group names are limited to 256 characters (got 30000).", id="30k"),
    pytest.param("", "Group names cannot be empty.", id="empty"),
    *(
        pytest.param(
            f"room{char}x",
            f"Group names cannot contain control characters (U+{ord(char):04X} at position 4).",
            id=f"U+{ord(char):04X}",
        )
        for char in "\x00\x01\r\n\x1b\x1f\x7f\x85\x9f"
    ),
]


@pytest.mark.parametrize(("name", "problem"), BAD_NAMES)
async def test_a_bad_group_name_is_refused_and_joins_nothing(
    name: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    refusals = Refusals()
    server, app = serve(HubOptions(), refusals)
    async with connect(app) as caller, connect(app) as bystander:
        await bystander.invoke("JoinGroup", "room")
        with pytest.raises(HubInvocationError) as refused:
            await caller.invoke("JoinGroup", name)
        assert str(refused.value) == f"{JOIN_FAILED}GroupNameError: {problem}"
        with pytest.raises(HubInvocationError) as leave:
            await caller.invoke("LeaveGroup", name)
        assert str(leave.value).endswith(f"GroupNameError: {problem}")
        assert refusals.names == 2
        assert groups_of(server, caller) == set()
        # Both connections keep working; the bystander's group still delivers.
        assert await caller.invoke("Echo", "still open") == "still open"
        await caller.invoke("SendToGroup", "room", "Note", "to the room")
        assert await bystander.next_message("Note") == ("to the room",)
    assert no_errors_logged(caplog)


async def test_names_up_to_the_limit_without_control_characters_are_accepted() -> None:
    refusals = Refusals()
    server, app = serve(HubOptions(maximum_group_name_length=8), refusals)
    accepted = ["12345678", "é ü\u00a0", "💬 chat", "tab-less"]
    async with connect(app) as caller:
        for name in accepted:
            await caller.invoke("JoinGroup", name)
        with pytest.raises(HubInvocationError) as refused:
            await caller.invoke("JoinGroup", "123456789")
        assert str(refused.value).endswith(
            "GroupNameError: Group names are limited to 8 characters (got 9)."
        )
        assert groups_of(server, caller) == set(accepted)
        assert refusals.names == 1


async def test_server_code_gets_a_value_error_for_a_bad_name() -> None:
    refusals = Refusals()
    server, app = serve(HubOptions(), refusals)
    async with connect(app) as client:
        assert client.connection_id is not None
        groups = server.context.groups
        for call in (groups.add, groups.remove):
            with pytest.raises(ValueError, match=r"control characters \(U\+000A at position 1\)"):
                await call(client.connection_id, "a\nb")
        for call in (groups.add_user, groups.remove_user):
            with pytest.raises(GroupNameError, match="limited to 256 characters"):
                await call("some-user", "x" * 300)
        assert refusals.names == 4
        assert groups_of(server, client) == set()
        await groups.add(client.connection_id, "fine")
        assert groups_of(server, client) == {"fine"}


async def test_a_join_past_the_group_limit_is_refused_and_the_groups_keep_working(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusals = Refusals()
    server, app = serve(HubOptions(maximum_groups_per_connection=3), refusals, ["lobby"])
    async with connect(app) as alice, connect(app) as bob:
        await alice.invoke("JoinGroup", "a")
        await alice.invoke("JoinGroup", "b")
        with pytest.raises(HubInvocationError) as refused:
            await alice.invoke("JoinGroup", "c")
        assert str(refused.value) == (
            f"{JOIN_FAILED}GroupLimitError: A connection can be in at most 3 groups; "
            "leave one to join another."
        )
        assert refusals.joins == 1
        assert groups_of(server, alice) == {"lobby", "a", "b"}
        await alice.invoke("JoinGroup", "a")  # already a member: still fine
        # The other connection has its own count.
        await bob.invoke("JoinGroup", "c")
        # Alice's groups still deliver; she did not get into "c".
        await bob.invoke("SendToGroup", "c", "Note", "to c")
        assert await bob.next_message("Note") == ("to c",)
        await bob.invoke("SendToGroup", "a", "Note", "to a")
        await bob.invoke("SendToGroup", "lobby", "Note", "to the lobby")
        assert await alice.next_message("Note") == ("to a",)
        assert await alice.next_message("Note") == ("to the lobby",)
        assert await bob.next_message("Note") == ("to the lobby",)
        # Leaving one makes room.
        await alice.invoke("LeaveGroup", "b")
        await alice.invoke("JoinGroup", "c")
        assert groups_of(server, alice) == {"lobby", "a", "c"}
        assert refusals.joins == 1
    assert no_errors_logged(caplog)


async def test_joins_on_connect_and_from_server_code_count_but_are_never_refused() -> None:
    refusals = Refusals()
    server, app = serve(HubOptions(maximum_groups_per_connection=2), refusals, ["s1", "s2", "s3"])
    async with connect(app) as alice, connect(app) as bob:
        assert groups_of(server, alice) == {"s1", "s2", "s3"}  # connected, over the limit
        assert alice.connection_id is not None
        await server.context.groups.add(alice.connection_id, "extra")  # server code
        assert groups_of(server, alice) == {"s1", "s2", "s3", "extra"}
        with pytest.raises(HubInvocationError) as refused:
            await alice.invoke("JoinGroup", "mine")
        assert str(refused.value).endswith("at most 2 groups; leave one to join another.")
        await alice.invoke("JoinGroup", "s1")  # rejoining is not a new group
        await bob.invoke("SendToGroup", "s3", "Note", "to s3")
        assert await alice.next_message("Note") == ("to s3",)
        assert await bob.next_message("Note") == ("to s3",)
        assert refusals.joins == 1


async def test_without_a_limit_any_number_of_groups_can_be_joined() -> None:
    refusals = Refusals()
    server, app = serve(HubOptions(maximum_groups_per_connection=0), refusals)
    async with connect(app) as alice:
        for index in range(5):
            await alice.invoke("JoinGroup", f"g{index}")
        assert len(groups_of(server, alice)) == 5
        assert refusals.joins == 0
