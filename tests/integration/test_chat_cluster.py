"""Chat end to end across two `hero serve` instances on one real Valkey and one real
PostgreSQL, driven over real HTTP and by the official JS client under Node.

- a message sent through instance 1 reaches members connected to instance 2, over
  WebSockets, Server-Sent Events and long polling;
- a member added on instance 1 starts receiving on a connection already open on instance 2,
  without reconnecting; a member removed on instance 1 stops receiving at once there;
- the typing throttle holds across both instances.

Absence is proven with a later message that must arrive (delivery per channel is ordered),
never with a sleep.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import valkey

from tests.integration.js.agent import NodeAgent
from tests.integration.platform_app import SIGNING_KEY, clean_environ, hero_serve, mint
from tests.support.servers import UNIT, RunningServer
from tests.support.valkey import ValkeyEndpoint

pytest_plugins = ("tests.support.postgres", "tests.support.valkey_fixtures")

HUB = "/realtime/hub"
CHAT = "/api/v1/chat"
CREATED = "ChatMessageCreated"
ADDED = "ChatChannelAdded"
TYPING = "ChatTypingStarted"
TARGETS = [CREATED, ADDED, TYPING, "ChatChannelMemberAdded", "ChatChannelMemberRemoved"]
_DATABASES = itertools.cycle(range(1, 9))  # flushed before each use


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    tenant: str
    name: str

    @property
    def uid(self) -> str:
        return str(self.id)

    def token(self) -> str:
        return mint(self.id, tenant=self.tenant, name=self.name)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}


@pytest.fixture
def cluster(
    valkey_server: ValkeyEndpoint, postgres_url: str
) -> Iterator[tuple[RunningServer, RunningServer]]:
    database = next(_DATABASES)
    redis = f"redis://{valkey_server.host}:{valkey_server.port}/{database}"
    client: Any = valkey.Valkey.from_url(redis, socket_timeout=10 * UNIT)
    try:
        client.flushdb()
    finally:
        client.close()
    env = clean_environ(
        {
            "JwtOptions__SigningKey": SIGNING_KEY,
            "CachingOptions__Redis": redis,
            "DatabaseOptions__ConnectionString": postgres_url,
        }
    )
    with ExitStack() as stack:
        first = stack.enter_context(hero_serve(env))
        second = stack.enter_context(hero_serve(env))
        yield first, second


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10 * UNIT) as client:
        yield client


def people(count: int) -> list[Person]:
    tenant = f"tenant-{uuid.uuid4().hex[:10]}"
    return [Person(uuid.uuid4(), tenant, f"user{n}{uuid.uuid4().hex[:4]}") for n in range(count)]


async def create_channel(
    http: httpx.AsyncClient, server: RunningServer, owner: Person, members: list[Person]
) -> str:
    response = await http.post(
        f"{server.base_url}{CHAT}/channels",
        json={"name": f"room-{uuid.uuid4().hex[:8]}", "isPrivate": False},
        headers=owner.headers(),
    )
    assert response.status_code == 201, response.text
    channel = str(response.json()["id"])
    if members:
        response = await http.post(
            f"{server.base_url}{CHAT}/channels/{channel}/members",
            json={"userIds": [m.uid for m in members]},
            headers=owner.headers(),
        )
        assert response.status_code in (200, 201, 204), response.text
    return channel


async def post(
    http: httpx.AsyncClient, server: RunningServer, author: Person, channel: str, body: str
) -> dict[str, Any]:
    response = await http.post(
        f"{server.base_url}{CHAT}/channels/{channel}/messages",
        json={"body": body},
        headers=author.headers(),
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def body_is(text: str) -> Any:
    return lambda message: isinstance(message, dict) and message.get("body") == text


@pytest.mark.parametrize(
    ("transport", "protocol"),
    [("WebSockets", "json"), ("ServerSentEvents", "json"), ("LongPolling", "messagepack")],
)
async def test_a_message_sent_on_one_instance_reaches_members_on_the_other(
    cluster: tuple[RunningServer, RunningServer],
    http: httpx.AsyncClient,
    agent: NodeAgent,
    transport: str,
    protocol: str,
) -> None:
    first, second = cluster
    owner, member = people(2)
    channel = await create_channel(http, first, owner, [member])
    await agent.connect(
        "member",
        second.base_url + HUB,
        tokens=[member.token()],
        transport=transport,
        protocol=protocol,
        targets=TARGETS,
    )
    # start() resolves at the handshake; an invocation is served once the hub's on-connected
    # work (joining the channel groups) is done.
    await agent.invoke("member", "JoinChannel", channel)
    sent = await post(http, first, owner, channel, "hello from instance 1")
    received = (await agent.next_message("member", CREATED, where=body_is(sent["body"]))).arg
    assert received["id"] == sent["id"]
    assert received["channelId"] == channel


async def test_membership_changes_on_one_instance_move_connections_on_the_other(
    cluster: tuple[RunningServer, RunningServer],
    http: httpx.AsyncClient,
    agent: NodeAgent,
) -> None:
    first, second = cluster
    owner, newcomer, witness = people(3)
    channel = await create_channel(http, first, owner, [witness])
    await agent.connect(
        "newcomer", second.base_url + HUB, tokens=[newcomer.token()], targets=TARGETS
    )
    await agent.connect("witness", second.base_url + HUB, tokens=[witness.token()], targets=TARGETS)
    await agent.invoke("witness", "JoinChannel", channel)  # its groups are joined

    before = await post(http, first, owner, channel, "before joining")
    await agent.next_message("witness", CREATED, where=body_is(before["body"]))

    response = await http.post(
        f"{first.base_url}{CHAT}/channels/{channel}/members",
        json={"userIds": [newcomer.uid]},
        headers=owner.headers(),
    )
    assert response.status_code in (200, 201, 204), response.text
    added = (await agent.next_message("newcomer", ADDED)).arg
    assert added == {"channelId": channel}
    joined = await post(http, first, owner, channel, "after joining")
    await agent.next_message("newcomer", CREATED, where=body_is(joined["body"]))

    response = await http.delete(
        f"{first.base_url}{CHAT}/channels/{channel}/members/{newcomer.uid}",
        headers=owner.headers(),
    )
    assert response.status_code in (200, 204), response.text
    gone = await post(http, first, owner, channel, "after leaving")
    # The witness got it; channel delivery is ordered, so the newcomer's connection would
    # have it by now too if it were still in the group.
    await agent.next_message("witness", CREATED, where=body_is(gone["body"]))
    bodies = [m.get("body") for m in agent.args_of("newcomer", CREATED)]
    assert bodies == ["after joining"]
    assert "before joining" not in bodies


async def test_the_typing_throttle_holds_across_instances(
    cluster: tuple[RunningServer, RunningServer],
    http: httpx.AsyncClient,
    agent: NodeAgent,
) -> None:
    first, second = cluster
    typist, listener = people(2)
    channel = await create_channel(http, first, typist, [listener])
    await agent.connect(
        "listener", first.base_url + HUB, tokens=[listener.token()], targets=TARGETS
    )
    await agent.connect("typist-1", first.base_url + HUB, tokens=[typist.token()], targets=TARGETS)
    await agent.connect("typist-2", second.base_url + HUB, tokens=[typist.token()], targets=TARGETS)
    for _ in range(3):
        await agent.invoke("typist-1", "Typing", channel)
        await agent.invoke("typist-2", "Typing", channel)
    first_typing = (await agent.next_message("listener", TYPING)).arg
    assert first_typing == {"channelId": channel, "userId": typist.uid}
    marker = await post(http, second, typist, channel, "typing done")
    await agent.next_message("listener", CREATED, where=body_is(marker["body"]))
    assert len(agent.args_of("listener", TYPING)) == 1
