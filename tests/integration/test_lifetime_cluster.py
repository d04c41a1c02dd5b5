"""ValkeyLifetimeManager with sharded pub/sub on a real three-node Valkey Cluster
(tests/support/valkey_cluster.py): the lifetime-manager conformance suite, one and two
instances, plus checks that a message stays in the shard owning its channel and that a
subscription follows its slot to another node."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest
from valkey.crc import key_slot

from hero.caching import create_valkey_client
from hero.realtime.lifetime import HubLifetimeManager, ValkeyLifetimeManager
from hero.realtime.protocol import InvocationMessage, JsonHubProtocol
from hero.realtime.testing.lifetime_conformance import (
    FENCE_TARGET,
    Cluster,
    FakeConnection,
    LifetimeManagerConformance,
)
from tests.support.servers import UNIT

if TYPE_CHECKING:  # the module itself is loaded as a pytest plugin, below
    from tests.support.valkey_cluster import ValkeyCluster

pytest_plugins = ("tests.support.valkey_cluster",)
pytestmark = pytest.mark.valkey

HUB = "ConformanceHub"
SLOT_RANGES = ((0, 5460), (5461, 10922), (10923, 16383))  # as the fixture assigns them


def node_of(channel: str) -> int:
    """Index of the fixture's node that owns `channel`'s slot (before any migration)."""
    slot = key_slot(channel.encode())
    return next(i for i, (first, last) in enumerate(SLOT_RANGES) if first <= slot <= last)


def group_channel(prefix: str, group: str) -> str:
    return f"{prefix}signalr:{HUB}:group:{group}"


def group_on_each_node(prefix: str, stem: str) -> list[str]:
    """One group name per node: the channel of names[i] lives on node i."""
    names: dict[int, str] = {}
    n = 0
    while len(names) < len(SLOT_RANGES):
        name = f"{stem}-{n}"
        names.setdefault(node_of(group_channel(prefix, name)), name)
        n += 1
    return [names[i] for i in range(len(SLOT_RANGES))]


def make_managers(url: str, prefix: str, instances: int, clients: list[Any]) -> list[Any]:
    managers = []
    for index in range(instances):
        client = create_valkey_client(url, socket_timeout=10 * UNIT)
        clients.append(client)
        managers.append(
            ValkeyLifetimeManager(
                client,
                hub_name=HUB,
                key_prefix=prefix,
                server_name=f"instance-{index}",
                ack_timeout=5 * UNIT,
                poll_interval=0.5,
            )
        )
    return managers


class TestShardedLifetimeManager(LifetimeManagerConformance):
    timeout_unit = UNIT

    @pytest.fixture(autouse=True)
    async def _valkey(self, valkey_cluster: ValkeyCluster) -> AsyncIterator[None]:
        self._clients: list[Any] = []
        self._url = valkey_cluster.url
        self._prefix = f"test:{uuid.uuid4().hex[:12]}:"
        self._fence_groups = group_on_each_node(self._prefix, "__fence")
        yield
        for client in self._clients:
            await client.aclose()

    async def make_cluster(self, instances: int) -> list[HubLifetimeManager]:
        managers = make_managers(self._url, self._prefix, instances, self._clients)
        assert all(manager.sharded for manager in managers)
        return list(managers)

    async def settle(self, cluster: Cluster) -> None:
        """Sharded pub/sub orders messages per node only, not across the cluster.

        An instance's subscriber reads each node on one connection, in the order that node
        processed the publications. So a fence sent, after everything else, from every
        instance to a group whose channel lives on node N arrives after every earlier
        message that went through node N. With one such group per node, every live
        connection (a member of them all) has seen everything once it saw every fence.
        """
        live = [c for c in cluster.connections if c.connected and not c.overflowed]
        for connection in live:
            for group in self._fence_groups:
                await connection.home.add_to_group(connection.connection_id, group)
        fences = []
        for manager in cluster.instances:
            for group in self._fence_groups:
                fence = cluster.new_id("fence")
                await manager.send_group(
                    group, InvocationMessage(target=FENCE_TARGET, arguments=(fence,))
                )
                fences.append(fence)
        for connection in live:
            if connection.connected and not connection.overflowed:
                for fence in fences:
                    await connection.wait_for_fence(fence, cluster.timeout)


# -- a message stays in its shard ----------------------------------------------------------


def shard_subscribers(node: Any, channel: str) -> int:
    """``PUBSUB SHARDNUMSUB`` of `channel` on one node."""
    return int(dict(node.pubsub_shardnumsub(channel)).get(channel.encode(), 0))


def _command_calls(client: Any, command: str) -> int:
    stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.fixture
async def pair(valkey_cluster: ValkeyCluster) -> AsyncIterator[tuple[str, list[Any]]]:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    clients: list[Any] = []
    managers = make_managers(valkey_cluster.url, prefix, 2, clients)
    for manager in managers:
        await manager.start()
    try:
        yield prefix, managers
    finally:
        for manager in managers:
            await manager.stop()
        for client in clients:
            await client.aclose()


async def test_a_group_message_reaches_only_the_shard_that_owns_its_channel(
    valkey_cluster: ValkeyCluster, pair: tuple[str, list[Any]]
) -> None:
    prefix, (sender, receiver) = pair
    nodes = [valkey_cluster.client(i) for i in range(len(valkey_cluster.nodes))]
    try:
        for owner, group in enumerate(group_on_each_node(prefix, "room")):
            channel = group_channel(prefix, group)
            member = FakeConnection(f"member-{owner}", receiver, JsonHubProtocol())
            await member.connect()
            await receiver.add_to_group(member.connection_id, group)
            # Only the owning node has the subscription...
            counts = [
                dict(node.pubsub_shardnumsub(channel)).get(channel.encode()) for node in nodes
            ]
            assert counts == [1 if i == owner else 0 for i in range(len(nodes))]
            # ... and only it handles the publication; no node sees a classic PUBLISH.
            spublish = [_command_calls(node, "spublish") for node in nodes]
            publish = [_command_calls(node, "publish") for node in nodes]
            await sender.send_group(group, InvocationMessage("Hi", (owner,)))
            [message] = await member.wait_for(1, 5 * UNIT)
            assert message.arguments == (owner,)
            after = [
                _command_calls(node, "spublish") - n
                for node, n in zip(nodes, spublish, strict=True)
            ]
            assert after == [1 if i == owner else 0 for i in range(len(nodes))]
            assert [_command_calls(node, "publish") for node in nodes] == publish
            await member.disconnect()
    finally:
        for node in nodes:
            node.close()


async def test_connection_targets_use_the_registry_not_receiver_counts(
    valkey_cluster: ValkeyCluster, pair: tuple[str, list[Any]]
) -> None:
    """Group moves and client results for a remote connection find its owner in the
    registry (a key in the connection channel's slot) and fail fast for unknown ids."""
    prefix, (caller, owner) = pair
    connection = FakeConnection("remote-1", owner, JsonHubProtocol())
    await connection.connect()
    key = f"{prefix}signalr:{HUB}:conn:remote-1:owners"
    node = valkey_cluster.client(node_of(key))
    try:
        assert node.zrange(key, 0, -1) == [b"instance-1"]
    finally:
        node.close()
    await caller.add_to_group("remote-1", "room")
    await caller.send_group("room", InvocationMessage("Hi", ("in room",)))
    [message] = await connection.wait_for(1, 5 * UNIT)
    assert message.arguments == ("in room",)
    async with asyncio.timeout(5 * UNIT):
        await caller.add_to_group("nobody", "room")  # nobody owns it: returns at once
    await connection.disconnect()
    node = valkey_cluster.client(node_of(key))
    try:
        assert node.zrange(key, 0, -1) == []
    finally:
        node.close()


# -- slot migration --------------------------------------------------------------------------


async def test_a_subscription_follows_its_slot_to_another_node(
    private_valkey_cluster: ValkeyCluster,
) -> None:
    """Moving a channel's slot makes the old node end the subscription (`sunsubscribe`);
    the manager refreshes the slot map and subscribes on the new owner."""
    cluster = private_valkey_cluster
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    clients: list[Any] = []
    sender, receiver = make_managers(cluster.url, prefix, 2, clients)
    nodes = [cluster.client(i) for i in range(len(cluster.nodes))]
    try:
        await sender.start()
        await receiver.start()
        group = "moving"
        channel = group_channel(prefix, group)
        source = node_of(channel)
        target = (source + 1) % len(nodes)
        member = FakeConnection("mover", receiver, JsonHubProtocol())
        await member.connect()
        await receiver.add_to_group("mover", group)
        await sender.send_group(group, InvocationMessage("Hi", ("before",)))
        assert [m.arguments for m in await member.wait_for(1, 5 * UNIT)] == [("before",)]
        member.clear()

        slot = key_slot(channel.encode())
        target_id = nodes[target].execute_command("CLUSTER", "MYID")
        # The slot holds no keys, so assigning it is the whole migration
        # (https://valkey.io/commands/cluster-setslot/): target first, then everyone.
        for index in (target, source, *(i for i in range(len(nodes)) if i not in (source, target))):
            nodes[index].execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)

        def counts() -> list[int]:
            return [
                int(dict(n.pubsub_shardnumsub(channel)).get(channel.encode(), 0)) for n in nodes
            ]

        async with asyncio.timeout(15 * UNIT):
            # Bounded poll of the servers' subscription state: no event tells a test when
            # the resubscription reached the new node.
            while counts() != [1 if i == target else 0 for i in range(len(nodes))]:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            # The sender's slot map is stale: its SPUBLISH is redirected (MOVED) and
            # retried by the cluster client.
            await send_when_up(sender, group, "after")
        assert [m.arguments for m in await member.wait_for(1, 5 * UNIT)] == [("after",)]
        await member.disconnect()
    finally:
        await sender.stop()
        await receiver.stop()
        for client in clients:
            await client.aclose()
        for node in nodes:
            node.close()


# -- end to end: the settings pick the cluster ------------------------------------------------


async def test_two_conformance_apps_configured_with_the_cluster_nodes_share_groups(
    valkey_cluster: ValkeyCluster,
) -> None:
    """`CachingOptions:Redis` listing the nodes builds a cluster client, and the app's
    backplane is sharded: a group send made on one app reaches a member on the other."""
    from hero.platform.conformance import create_conformance_app
    from hero.platform.settings import load_settings
    from hero.realtime.testing.client import HubTestClient

    settings = load_settings(None, {"CachingOptions__Redis": ",".join(valkey_cluster.seeds)})
    apps = [create_conformance_app(settings) for _ in range(2)]
    async with contextlib.AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
        for app in apps:
            [hub] = app.state.hubs
            assert isinstance(hub.lifetime, ValkeyLifetimeManager)
            assert hub.lifetime.sharded
        member, sender = [
            await stack.enter_async_context(
                HubTestClient(app, "/conformance", transport="WebSockets", timeout=10 * UNIT)
            )
            for app in apps
        ]
        group = f"room-{uuid.uuid4().hex}"
        await member.invoke("JoinGroup", group)
        await sender.invoke("SendToGroup", group, "Msg", "across instances")
        assert await member.next_message("Msg") == ("across instances",)


async def test_a_killed_node_connection_is_reopened_and_resubscribed(
    valkey_cluster: ValkeyCluster, pair: tuple[str, list[Any]]
) -> None:
    """`CLIENT KILL TYPE pubsub` cuts the subscribers' connections to one node; the
    supervisor reconnects and subscribes again, and group sends reach the member."""
    prefix, (sender, receiver) = pair
    group = group_on_each_node(prefix, "cut")[1]
    channel = group_channel(prefix, group)
    member = FakeConnection("cut-member", receiver, JsonHubProtocol())
    await member.connect()
    await receiver.add_to_group("cut-member", group)
    node = valkey_cluster.client(1)
    try:
        assert shard_subscribers(node, channel) == 1
        killed = node.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        assert int(killed) >= 1
        async with asyncio.timeout(15 * UNIT):
            # Bounded poll of the server's subscription state until the subscriber is back.
            while shard_subscribers(node, channel) != 1:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            await send_when_up(sender, group, "after the cut")
    finally:
        node.close()
    [message] = await member.wait_for(1, 5 * UNIT)
    assert message.arguments == ("after the cut",)
    await member.disconnect()


async def send_when_up(sender: Any, group: str, text: str) -> None:
    """Send once the backplane accepts sends again (it refuses them, raising BackplaneError,
    while a subscriber is down and for its grace period after)."""
    from hero.realtime.lifetime import BackplaneError

    while True:
        try:
            await sender.send_group(group, InvocationMessage("Hi", (text,)))
            return
        except BackplaneError:
            await asyncio.sleep(0.05)
