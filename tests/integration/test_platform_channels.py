"""AppHub's channel-dependent behaviour end to end, with the official JS client under Node.

`hero serve` has no chat module yet, so these run `tests/integration/platform_app.py`: the real
`create_app` with a static channel membership and test-only probe hub methods (`SendToUser`
through the `user:{id}` group, `SendToGroup`, `WhoAmI`). Absence of a message is always proven
with a follow-up probe on the same connection (delivery is ordered per connection), never with
a sleep.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.js.agent import AgentError, NodeAgent
from tests.integration.platform_app import (
    CHANNELS_ENV,
    LATE_CHANNELS_ENV,
    SIGNING_KEY,
    clean_environ,
    mint,
    platform_app,
)

pytestmark = pytest.mark.interop

TYPING = "ChatTypingStarted"
PROBE = "Probe"
TARGETS = [TYPING, PROBE]
THROTTLE_WINDOW = 3.0
WINDOW_TOLERANCE = 0.25


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    tenant: str
    name: str

    def token(self, **kwargs: Any) -> str:
        kwargs.setdefault("name", self.name)
        return mint(self.id, tenant=self.tenant, **kwargs)


@dataclass
class World:
    base_url: str
    users: dict[str, User]
    channels: dict[str, uuid.UUID]

    @property
    def hub(self) -> str:
        return self.base_url + "/realtime/hub"


# Channels by the test that uses them (the typing throttle is per (channel, user), so tests
# never share a channel). "late" channels pass the membership check but are not returned on
# connect: as if the member had been added after connecting.
MEMBERS = {
    "groups": ["alice", "bob"],
    "typing": ["alice", "bob", "carol"],
    "echo": ["alice", "bob"],
    "quiet": ["alice", "bob"],
    "side": ["alice", "carol"],
}
LATE_MEMBERS = {"late": ["alice"]}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    users = {
        name: User(uuid.uuid4(), tenant, name.title())
        for name, tenant in [
            ("alice", "acme"),
            ("bob", "acme"),
            ("carol", "acme"),
            ("mallory", "acme"),  # in the tenant, in no channel
            ("oscar", "globex"),  # another tenant
        ]
    }
    channels = {name: uuid.uuid4() for name in [*MEMBERS, *LATE_MEMBERS]}

    def as_json(spec: dict[str, list[str]]) -> str:
        return json.dumps(
            {str(channels[c]): [str(users[u].id) for u in members] for c, members in spec.items()}
        )

    env = clean_environ(
        {
            "JwtOptions__SigningKey": SIGNING_KEY,
            CHANNELS_ENV: as_json(MEMBERS),
            LATE_CHANNELS_ENV: as_json(LATE_MEMBERS),
        }
    )
    with platform_app(env) as server:
        yield World(server.base_url, users, channels)


async def connect(
    agent: NodeAgent, world: World, name: str, user: str, transport: str | None = None
) -> str:
    return await agent.connect(
        name,
        world.hub,
        tokens=[world.users[user].token()],
        targets=TARGETS,
        transport=transport,
    )


async def probe(agent: NodeAgent, world: World, sender: str, to: dict[str, str]) -> None:
    """Send a fresh Probe to each connection's user (`{connection: user}`) and wait until
    every connection has it: anything sent to them before has been delivered by then."""
    marker = uuid.uuid4().hex
    for user in set(to.values()):
        who = world.users[user]
        await agent.invoke(sender, "SendToTenantUser", who.tenant, str(who.id), PROBE, marker)
    for connection in to:
        await agent.next_message(connection, PROBE, where=lambda arg: arg == marker)


def typing_from(agent: NodeAgent, connection: str, user: User, channel: uuid.UUID) -> list[Any]:
    expected = {"channelId": str(channel), "userId": str(user.id)}
    return [arg for arg in agent.args_of(connection, TYPING) if arg == expected]


# ------------------------------------------------------------------ group conventions


async def test_user_group_reaches_every_device_of_that_user(agent: NodeAgent, world: World) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    await connect(agent, world, "a1", "alice")
    await connect(agent, world, "a2", "alice")
    await connect(agent, world, "b1", "bob")

    await agent.invoke("b1", "SendToUser", str(alice.id), PROBE, "for-alice")
    for device in ("a1", "a2"):
        await agent.next_message(device, PROBE, where=lambda arg: arg == "for-alice")
    await agent.invoke("a1", "SendToUser", str(bob.id), PROBE, "for-bob")
    await agent.next_message("b1", PROBE, where=lambda arg: arg == "for-bob")

    await probe(agent, world, "b1", {"a1": "alice", "a2": "alice", "b1": "bob"})
    assert "for-alice" not in agent.args_of("b1", PROBE)
    assert "for-bob" not in agent.args_of("a1", PROBE) + agent.args_of("a2", PROBE)
    assert agent.args_of("a1", PROBE).count("for-alice") == 1


async def test_identity_is_the_connections_own_principal(agent: NodeAgent, world: World) -> None:
    """Long polling sends the access token again on every request; the hub still sees the
    principal captured at connect time (here the factory hands out a renamed token later)."""
    alice = world.users["alice"]
    connection_id = await agent.connect(
        "lp",
        world.hub,
        tokens=[alice.token(), alice.token(name="Renamed Later")],
        transport="LongPolling",
        targets=TARGETS,
    )
    for _ in range(3):
        assert await agent.invoke("lp", "WhoAmI") == {
            "userId": str(alice.id),
            "tenantId": "acme",
            "name": "Alice",
            "connectionId": connection_id,
        }


async def test_channel_groups_are_joined_on_connect(agent: NodeAgent, world: World) -> None:
    await connect(agent, world, "a1", "alice")
    await connect(agent, world, "b1", "bob")
    await connect(agent, world, "c1", "carol")  # not in "groups"
    await connect(agent, world, "m1", "mallory")

    group = f"channel:{world.channels['groups']}"
    await agent.invoke("m1", "SendToGroup", group, PROBE, "to-groups")
    for member in ("a1", "b1"):
        await agent.next_message(member, PROBE, where=lambda arg: arg == "to-groups")
    # one channel group per channel of the user: alice is also in "side" (with carol)
    await agent.invoke("m1", "SendToGroup", f"channel:{world.channels['side']}", PROBE, "to-t")
    for member in ("a1", "c1"):
        await agent.next_message(member, PROBE, where=lambda arg: arg == "to-t")

    await probe(agent, world, "m1", {"b1": "bob", "c1": "carol", "m1": "mallory"})
    assert "to-groups" not in agent.args_of("c1", PROBE)
    assert "to-t" not in agent.args_of("b1", PROBE)
    assert not {"to-groups", "to-t"} & set(agent.args_of("m1", PROBE))


# ------------------------------------------------------------------ typing


async def test_typing_is_throttled_to_one_event_per_window(
    agent: NodeAgent, world: World, unit: float
) -> None:
    alice = world.users["alice"]
    channel = world.channels["typing"]
    await connect(agent, world, "a1", "alice")
    await connect(agent, world, "b1", "bob")
    await connect(agent, world, "c1", "carol")

    for _ in range(5):
        assert await agent.invoke("a1", "Typing", str(channel)) is None
    first = await agent.next_message("b1", TYPING)
    assert first.arg == {"channelId": str(channel), "userId": str(alice.id)}
    await probe(agent, world, "a1", {"b1": "bob", "c1": "carol"})
    assert len(typing_from(agent, "b1", alice, channel)) == 1
    assert len(typing_from(agent, "c1", alice, channel)) == 1

    # keep typing every 200 ms: the next event comes once the 3 s window has passed
    deadline = time.monotonic() + 8 * unit
    while len(typing_from(agent, "b1", alice, channel)) < 2:
        assert time.monotonic() < deadline, "no second ChatTypingStarted within 8 s"
        await agent.invoke("a1", "Typing", str(channel))
        try:
            await agent.next_message("b1", TYPING, count=2, timeout=0.2)
        except AssertionError:
            continue
    second = agent.messages("b1", TYPING)[1]
    assert second.arg == first.arg
    elapsed = second.at - first.at
    assert elapsed >= THROTTLE_WINDOW - WINDOW_TOLERANCE, f"second event after {elapsed:.2f} s"


async def test_typing_goes_to_the_channel_except_the_calling_connection(
    agent: NodeAgent, world: World
) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    channel = world.channels["echo"]
    await connect(agent, world, "a1", "alice")
    await connect(agent, world, "a2", "alice")  # alice's other device
    await connect(agent, world, "b1", "bob")
    await connect(agent, world, "c1", "carol")  # same tenant, not a member
    await connect(agent, world, "o1", "oscar")  # other tenant

    await agent.invoke("a1", "Typing", str(channel))
    expected = {"channelId": str(channel), "userId": str(alice.id)}
    for receiver in ("b1", "a2"):
        assert (await agent.next_message(receiver, TYPING)).arg == expected

    # the same user on another device shares the throttle window
    await agent.invoke("a2", "Typing", str(channel))
    # bob types: alice's first device gets bob's event, after anything aimed at it before
    await agent.invoke("b1", "Typing", str(channel))
    await agent.next_message("a1", TYPING, where=lambda arg: arg["userId"] == str(bob.id))
    await probe(agent, world, "b1", {"a2": "alice", "b1": "bob", "c1": "carol", "o1": "oscar"})

    assert typing_from(agent, "a1", alice, channel) == []  # not echoed to the caller
    assert len(typing_from(agent, "b1", alice, channel)) == 1  # a2's call was throttled
    assert agent.args_of("c1", TYPING) == []
    assert agent.args_of("o1", TYPING) == []


async def test_typing_by_a_non_member_is_a_silent_no_op(agent: NodeAgent, world: World) -> None:
    mallory, bob = world.users["mallory"], world.users["bob"]
    channel = world.channels["quiet"]
    await connect(agent, world, "a1", "alice")
    await connect(agent, world, "m1", "mallory")
    await connect(agent, world, "b1", "bob")

    assert await agent.invoke("m1", "Typing", str(channel)) is None
    await agent.invoke("b1", "Typing", str(channel))
    await agent.next_message("a1", TYPING, where=lambda arg: arg["userId"] == str(bob.id))
    assert typing_from(agent, "a1", mallory, channel) == []
    assert agent.args_of("a1", TYPING) == [{"channelId": str(channel), "userId": str(bob.id)}]


# ------------------------------------------------------------------ JoinChannel


async def test_join_channel_adds_only_a_member_connection(agent: NodeAgent, world: World) -> None:
    channel = world.channels["late"]
    group = f"channel:{channel}"
    await connect(agent, world, "a1", "alice")
    await connect(agent, world, "a2", "alice")
    await connect(agent, world, "b1", "bob")  # not a member

    # not returned by the lookup on connect: not in the group yet
    await agent.invoke("b1", "SendToGroup", group, PROBE, "before")
    await probe(agent, world, "b1", {"a1": "alice", "a2": "alice"})
    assert "before" not in agent.args_of("a1", PROBE)

    for _ in range(2):  # idempotent
        assert await agent.invoke("a1", "JoinChannel", str(channel)) is None
    assert await agent.invoke("b1", "JoinChannel", str(channel)) is None  # silent no-op

    await agent.invoke("b1", "SendToGroup", group, PROBE, "after")
    await agent.next_message("a1", PROBE, where=lambda arg: arg == "after")
    await probe(agent, world, "a1", {"a1": "alice", "a2": "alice", "b1": "bob"})
    assert agent.args_of("a1", PROBE).count("after") == 1
    assert "after" not in agent.args_of("a2", PROBE)  # only the calling connection joined
    assert "after" not in agent.args_of("b1", PROBE)


# ------------------------------------------------------------------ domain groups


async def test_dashboard_groups_of_the_callers_tenant(agent: NodeAgent, world: World) -> None:
    await connect(agent, world, "a1", "alice")
    await connect(agent, world, "b1", "bob")
    await connect(agent, world, "o1", "oscar")
    mine, theirs = "dashboard:acme:d1", "dashboard:globex:d1"

    assert await agent.invoke("a1", "JoinGroup", mine) is None
    assert await agent.invoke("o1", "JoinGroup", theirs) is None
    with pytest.raises(AgentError) as refused:
        await agent.invoke("o1", "JoinGroup", mine)
    assert "HubException" in refused.value.error

    await agent.invoke("b1", "SendToGroup", mine, PROBE, "dash-1")
    await agent.next_message("a1", PROBE, where=lambda arg: arg == "dash-1")

    assert await agent.invoke("a1", "LeaveGroup", mine) is None
    await agent.invoke("b1", "SendToGroup", mine, PROBE, "dash-2")
    await probe(agent, world, "b1", {"a1": "alice", "o1": "oscar"})
    assert "dash-2" not in agent.args_of("a1", PROBE)
    assert not {"dash-1", "dash-2"} & set(agent.args_of("o1", PROBE))


async def test_reserved_and_unregistered_groups_are_refused(agent: NodeAgent, world: World) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    await connect(agent, world, "a1", "alice")
    await connect(agent, world, "b1", "bob")
    names = [
        f"user:{bob.id}",
        f"user:acme:{bob.id}",
        "tenant:acme",
        "tenant:globex",
        f"channel:{world.channels['echo']}",
        f"channel:{world.channels['late']}",
        "random",
        "dashboard:acme",
        "dashboard:acme:d1:extra",
        "dashboard::d1",
    ]
    outcomes: dict[str, str] = {}
    for name in names:
        try:
            await agent.invoke("a1", "JoinGroup", name)
            outcomes[name] = "joined"
        except AgentError as error:
            outcomes[name] = "HubException" if "HubException" in error.error else error.error
    assert outcomes == dict.fromkeys(names, "HubException")

    # nor may a connection leave its own user group
    with pytest.raises(AgentError) as leave:
        await agent.invoke("a1", "LeaveGroup", f"user:acme:{alice.id}")
    assert "HubException" in leave.value.error

    # nothing was joined or left: bob's and the channels' traffic does not reach alice
    await agent.invoke("b1", "SendToUser", str(bob.id), PROBE, "bob-only")
    await agent.invoke("b1", "SendToGroup", f"channel:{world.channels['late']}", PROBE, "late")
    await agent.next_message("b1", PROBE, where=lambda arg: arg == "bob-only")
    await probe(agent, world, "b1", {"a1": "alice"})
    assert not {"bob-only", "late"} & set(agent.args_of("a1", PROBE))
