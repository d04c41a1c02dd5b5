"""ShardedRelayBus and the Relay on it, on a real three-node Valkey Cluster
(tests/support/valkey_cluster.py): delivery between instances whose channels live on
different shards, liveness from the registry (not from receiver counts), a publish that
waits out a resubscription, and a relay to a stopped owner answering 404."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, MutableMapping
from typing import TYPE_CHECKING, Any

import pytest
from valkey.crc import key_slot

from hero.caching import create_valkey_client
from hero.realtime import Relay, ShardedRelayBus
from hero.realtime.lifetime.sharded import OwnerRegistry
from tests.support.servers import UNIT

if TYPE_CHECKING:  # the module itself is loaded as a pytest plugin, below
    from tests.support.valkey_cluster import ValkeyCluster

pytest_plugins = ("tests.support.valkey_cluster",)
pytestmark = pytest.mark.valkey

SLOT_RANGES = ((0, 5460), (5461, 10922), (10923, 16383))  # as the fixture assigns them


def node_of(channel: str) -> int:
    slot = key_slot(channel.encode())
    return next(i for i, (first, last) in enumerate(SLOT_RANGES) if first <= slot <= last)


class Inbox:
    """What one bus delivered, with a way to wait for the next message."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def __call__(self, data: bytes) -> None:
        self.queue.put_nowait(data)

    async def next(self) -> bytes:
        async with asyncio.timeout(10 * UNIT):
            return await self.queue.get()


class Buses:
    """Builds buses on one cluster under a prefix of the test's own; stops them all."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"test:{uuid.uuid4().hex[:12]}:"
        self.clients: list[Any] = []
        self.started: list[ShardedRelayBus] = []

    def bus(self, name: str, **options: Any) -> ShardedRelayBus:
        client = create_valkey_client(self.url, socket_timeout=10 * UNIT)
        self.clients.append(client)
        options.setdefault("poll_interval", 0.5)
        return ShardedRelayBus(client, key_prefix=self.prefix, name=name, **options)

    async def started_bus(self, name: str, **options: Any) -> tuple[ShardedRelayBus, Inbox]:
        bus = self.bus(name, **options)
        inbox = Inbox()
        await bus.start(inbox)
        self.started.append(bus)
        return bus, inbox

    def name_on_node(self, node: int, stem: str) -> str:
        """An instance name whose relay channel lives on `node`."""
        probe = self.bus("probe")  # no I/O: only its channel names are used
        n = 0
        while node_of(probe.channel(f"{stem}{n}")) != node:
            n += 1
        return f"{stem}{n}"

    async def aclose(self) -> None:
        for bus in self.started:
            await bus.stop()
        for client in self.clients:
            await client.aclose()


@pytest.fixture
async def buses(valkey_cluster: ValkeyCluster) -> AsyncIterator[Buses]:
    made = Buses(valkey_cluster.url)
    try:
        yield made
    finally:
        await made.aclose()


def spublish_calls(valkey_cluster: ValkeyCluster, node: int) -> int:
    client = valkey_cluster.client(node)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get("cmdstat_spublish", {}).get("calls", 0))


async def test_messages_reach_the_addressed_instance_on_every_shard(buses: Buses) -> None:
    """One instance per node; each sends to every other; each receives exactly its own."""
    names = [buses.name_on_node(node, f"shard{node}-") for node in range(len(SLOT_RANGES))]
    started = [await buses.started_bus(name) for name in names]
    assert sorted(node_of(bus.channel(bus.name)) for bus, _ in started) == [0, 1, 2]
    for sender, _ in started:
        for addressee, _ in started:
            if addressee is not sender:
                data = f"{sender.name}->{addressee.name}".encode()
                assert await sender.publish(addressee.name, data) == 1
    for bus, inbox in started:
        got = {await inbox.next() for _ in range(len(started) - 1)}
        assert got == {
            f"{other.name}->{bus.name}".encode() for other, _ in started if other is not bus
        }
        assert inbox.queue.empty()


async def test_alive_follows_start_and_stop_not_receiver_counts(buses: Buses) -> None:
    owner, _ = await buses.started_bus("owner")
    asker, _ = await buses.started_bus("asker")
    never = buses.bus("never-started")
    assert await asker.alive("owner")
    assert not await asker.alive(never.name)
    assert await asker.publish(never.name, b"to nobody") == 0  # not registered: no wait

    await owner.stop()
    buses.started.remove(owner)
    assert not await asker.alive("owner")  # deregistered at once by stop()
    assert await asker.publish("owner", b"too late") == 0


async def test_a_registered_instance_that_does_not_listen_gets_zero_after_retrying(
    buses: Buses, valkey_cluster: ValkeyCluster
) -> None:
    """What a crashed instance leaves behind: its registry entry, no subscriber. The
    publish is retried while the entry says it may be resubscribing, then answers 0."""
    asker, _ = await buses.started_bus("asker", resubscribe_wait=0.5 * UNIT)
    ghost = buses.name_on_node(1, "ghost-")
    channel = asker.channel(ghost)
    registry = OwnerRegistry(buses.clients[0], ghost, ttl=30 * UNIT)
    await registry.add(channel)
    try:
        assert await asker.alive(ghost)
        before = spublish_calls(valkey_cluster, 1)
        async with asyncio.timeout(10 * UNIT):  # bounded: it never hangs
            assert await asker.publish(ghost, b"lost?") == 0
        assert spublish_calls(valkey_cluster, 1) - before > 1  # tried again, not only once
    finally:
        await registry.remove(channel)
    assert not await asker.alive(ghost)


async def test_a_publish_while_the_owner_resubscribes_is_delivered(
    buses: Buses, valkey_cluster: ValkeyCluster
) -> None:
    """`CLIENT KILL TYPE pubsub` drops the owner's subscriber connection on its node; a
    publish made right after is received once the owner subscribed again (or before)."""
    name = buses.name_on_node(2, "cut-")
    _, inbox = await buses.started_bus(name)
    sender, _ = await buses.started_bus("sender", resubscribe_wait=10 * UNIT)
    node = valkey_cluster.client(2)
    try:
        assert int(node.execute_command("CLIENT", "KILL", "TYPE", "pubsub")) >= 1
    finally:
        node.close()
    assert await sender.publish(name, b"after the cut") == 1
    assert await inbox.next() == b"after the cut"
    assert await sender.alive(name)


# -- the Relay on this bus --------------------------------------------------------------------


async def streaming_app(scope: Any, receive: Any, send: Any) -> None:
    """Echoes the request body back in three chunks, after a header naming the method."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    method = scope["method"].encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-method", method)]})
    for part in (b"one:", b"two:", body):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def forward(relay: Relay, owner: str, body: bytes) -> list[MutableMapping[str, Any]]:
    """Run one request through `relay.forward` to `owner`; what the client would be sent."""
    scope = {"type": "http", "method": "POST", "path": "/x", "query_string": b"", "headers": []}
    parts = [{"type": "http.request", "body": body, "more_body": False}]
    hold = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if parts:
            return parts.pop()
        await hold.wait()  # the client stays until the response is complete
        return {"type": "http.disconnect"}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async with asyncio.timeout(10 * UNIT):
        await relay.forward(owner, scope, receive, send, timeout=5 * UNIT)
    return sent


def response_of(sent: list[MutableMapping[str, Any]]) -> tuple[int, bytes]:
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.fixture
async def relays(buses: Buses) -> AsyncIterator[tuple[Relay, Relay]]:
    owner = Relay(buses.bus(buses.name_on_node(0, "owner-")), window=2, liveness_interval=0.5)
    other = Relay(buses.bus(buses.name_on_node(1, "other-")), window=2, liveness_interval=0.5)
    await owner.start(streaming_app)
    await other.start(streaming_app)
    try:
        yield owner, other
    finally:
        for relay in (owner, other):
            with contextlib.suppress(Exception):
                await relay.stop()


async def test_a_relayed_request_is_served_by_its_owner_and_streamed_back(
    relays: tuple[Relay, Relay],
) -> None:
    owner, other = relays
    status, body = response_of(await forward(other, owner.name, b"payload"))
    assert (status, body) == (200, b"one:two:payload")
    status, body = response_of(await forward(owner, other.name, b"back"))
    assert (status, body) == (200, b"one:two:back")
    assert other.relayed == 1
    assert owner.relayed == 1


async def test_a_relay_to_a_stopped_owner_answers_404(relays: tuple[Relay, Relay]) -> None:
    owner, other = relays
    assert response_of(await forward(other, owner.name, b"first"))[0] == 200
    await owner.stop()
    status, body = response_of(await forward(other, owner.name, b"second"))
    assert (status, body) == (404, b"No Connection with that ID")
