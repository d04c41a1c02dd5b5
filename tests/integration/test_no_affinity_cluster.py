"""Long polling and SSE without affinity on a Valkey Cluster: two `hero serve` instances on a
real three-node cluster (tests/support/valkey_cluster.py, one cluster per test: the
platform's key prefix is fixed and a cluster has no logical databases) and one real
PostgreSQL, driven by the official JS client.

Each connection negotiates on one instance and sends every other request (each poll or the
SSE stream, each send, the DELETE) to the other one, so all of its traffic after negotiate
is relayed to its owner over the cluster (`ShardedRelayBus`). Two users do this in opposite
directions, so both instances relay to each other; messages flow both ways (invocations and
their results, REST-posted chat messages, typing notices from one user to the other). A
relay to an owner that was stopped, or killed, answers 404 at once.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.integration.js.agent import NodeAgent
from tests.integration.platform_app import SIGNING_KEY, clean_environ, hero_serve, mint
from tests.support.servers import UNIT, RunningServer

if TYPE_CHECKING:  # the module itself is loaded as a pytest plugin, below
    from tests.support.valkey_cluster import ValkeyCluster

pytest_plugins = ("tests.support.postgres", "tests.support.valkey_cluster")
pytestmark = [pytest.mark.valkey, pytest.mark.interop]

HUB = "/realtime/hub"
CHAT = "/api/v1/chat"
CREATED = "ChatMessageCreated"
TYPING = "ChatTypingStarted"
TARGETS = [CREATED, TYPING]


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    tenant: str

    @property
    def uid(self) -> str:
        return str(self.id)

    def token(self) -> str:
        return mint(self.id, tenant=self.tenant, name=f"user-{self.uid[:8]}")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}


def people(count: int) -> list[Person]:
    tenant = f"tenant-{uuid.uuid4().hex[:10]}"
    return [Person(uuid.uuid4(), tenant) for _ in range(count)]


@pytest.fixture
def instances(
    private_valkey_cluster: ValkeyCluster, postgres_url: str
) -> Iterator[tuple[RunningServer, RunningServer]]:
    env = clean_environ(
        {
            "JwtOptions__SigningKey": SIGNING_KEY,
            "CachingOptions__Redis": ",".join(private_valkey_cluster.seeds),
            "DatabaseOptions__ConnectionString": postgres_url,
        }
    )
    with ExitStack() as stack:
        first = stack.enter_context(hero_serve(env))
        second = stack.enter_context(hero_serve(env))
        yield first, second


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10 * UNIT, trust_env=False) as client:
        yield client


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
    response = await http.post(
        f"{server.base_url}{CHAT}/channels/{channel}/members",
        json={"userIds": [m.uid for m in members]},
        headers=owner.headers(),
    )
    assert response.status_code in (200, 201, 204), response.text
    return channel


async def post(
    http: httpx.AsyncClient, server: RunningServer, author: Person, channel: str, body: str
) -> None:
    response = await http.post(
        f"{server.base_url}{CHAT}/channels/{channel}/messages",
        json={"body": body},
        headers=author.headers(),
    )
    assert response.status_code == 201, response.text


def no_error_lines(*servers: RunningServer) -> None:
    for server in servers:
        bad = [
            line
            for line in server.output
            if line.startswith(("ERROR", "CRITICAL")) or "Traceback" in line
        ]
        assert not bad, server.log()


@pytest.mark.parametrize(
    ("transport", "protocol"),
    [("LongPolling", "json"), ("LongPolling", "messagepack"), ("ServerSentEvents", "json")],
)
async def test_negotiate_on_one_instance_and_everything_else_on_the_other(
    instances: tuple[RunningServer, RunningServer],
    http: httpx.AsyncClient,
    agent: NodeAgent,
    transport: str,
    protocol: str,
) -> None:
    first, second = instances
    owner, x, y = people(3)
    channel = await create_channel(http, first, owner, [x, y])
    common: dict[str, Any] = {"transport": transport, "protocol": protocol, "targets": TARGETS}
    # x is held by `first` and reaches it only through `second`; y the other way round.
    await agent.connect(
        "x",
        first.base_url + HUB,
        tokens=[x.token()],
        negotiate_on=first.base_url,
        instances=[second.base_url],
        **common,
    )
    await agent.connect(
        "y",
        second.base_url + HUB,
        tokens=[y.token()],
        negotiate_on=second.base_url,
        instances=[first.base_url],
        **common,
    )
    await agent.invoke("x", "JoinChannel", channel)  # a relayed send, a relayed result
    await agent.invoke("y", "JoinChannel", channel)

    bodies = [f"message {n}" for n in range(10)]
    for n, body in enumerate(bodies):
        await post(http, (first, second)[n % 2], owner, channel, body)
    for name in ("x", "y"):
        await agent.next_message(name, CREATED, count=len(bodies), timeout=30 * UNIT)
        assert [m["body"] for m in agent.args_of(name, CREATED)] == bodies  # all, in order

    await agent.invoke("x", "Typing", channel)  # from x's owner to y's owner, then relayed
    typed = (await agent.next_message("y", TYPING)).arg
    assert typed == {"channelId": channel, "userId": x.uid}
    await agent.invoke("y", "Typing", channel)
    typed = (await agent.next_message("x", TYPING)).arg
    assert typed == {"channelId": channel, "userId": y.uid}

    await agent.stop("x")
    await agent.stop("y")
    for name in ("x", "y"):
        closes = [e for e in agent.events[name] if e.kind == "close"]
        assert closes and closes[0].data.get("error") is None  # a clean stop (the DELETE)
    no_error_lines(first, second)


@pytest.mark.parametrize("how", ["stopped", "killed"])
async def test_a_relay_to_an_owner_that_is_gone_answers_404(
    instances: tuple[RunningServer, RunningServer], http: httpx.AsyncClient, how: str
) -> None:
    owner_server, other = instances
    [user] = people(1)
    negotiated = await http.post(
        f"{owner_server.base_url}{HUB}/negotiate?negotiateVersion=1", headers=user.headers()
    )
    assert negotiated.status_code == 200, negotiated.text
    token = negotiated.json()["connectionToken"]
    first = await http.get(f"{other.base_url}{HUB}", params={"id": token}, headers=user.headers())
    assert first.status_code == 200  # relayed: the owner started the long-polling connection

    if how == "killed":
        os.kill(owner_server.process.pid, signal.SIGKILL)
    else:
        owner_server.process.terminate()
    owner_server.process.wait(10 * UNIT)

    poll = await http.get(f"{other.base_url}{HUB}", params={"id": token}, headers=user.headers())
    assert poll.status_code == 404
    assert poll.text == "No Connection with that ID"
    send = await http.post(
        f"{other.base_url}{HUB}", params={"id": token}, content=b"{}", headers=user.headers()
    )
    assert send.status_code == 404
    # The relay's work shows in the surviving instance's metrics.
    metrics = (await http.get(f"{other.base_url}/metrics")).text
    assert _metric(metrics, "hero_relay_forwarded_total") >= 3
    assert _metric(metrics, "hero_relay_owner_gone_total") >= 2
    no_error_lines(other)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")
