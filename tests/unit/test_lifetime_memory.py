"""MemoryLifetimeManager: the lifetime-manager conformance suite, plus its own index checks."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from hero.realtime.lifetime import ClientResultError, HubLifetimeManager, MemoryLifetimeManager
from hero.realtime.protocol import (
    CompletionMessage,
    InvocationMessage,
    JsonHubProtocol,
    MessagePackHubProtocol,
)
from hero.realtime.testing.lifetime_conformance import (
    CountingProtocol,
    FakeConnection,
    LifetimeManagerConformance,
    answer_with_result,
)
from tests.support.servers import UNIT


class TestMemoryLifetimeManager(LifetimeManagerConformance):
    """The whole suite; a "cluster" of n instances is one manager, n times over.

    The in-memory manager cannot span processes, so every instance of the cluster is the
    same object: the two-instance runs exercise the same paths as the one-instance runs,
    and the suite's checks per instance apply to that one manager.
    """

    timeout_unit = UNIT

    async def make_cluster(self, instances: int) -> list[HubLifetimeManager]:
        manager = MemoryLifetimeManager()
        return [manager] * instances


def run_without_suspending(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run `coro` to completion in one step; fail if it ever awaits something pending."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("the coroutine suspended")


async def connected(
    manager: MemoryLifetimeManager,
    name: str,
    *,
    user: str | None = None,
    protocol: str = "json",
) -> FakeConnection:
    hub_protocol = JsonHubProtocol() if protocol == "json" else MessagePackHubProtocol()
    connection = FakeConnection(name, manager, hub_protocol, user_id=user)
    await connection.connect()
    return connection


def note(label: str) -> InvocationMessage:
    return InvocationMessage(target="Receive", arguments=(label,))


async def test_indices_follow_connections_groups_and_users() -> None:
    manager = MemoryLifetimeManager()
    a = await connected(manager, "a", user="alice")
    b = await connected(manager, "b", user="alice")
    c = await connected(manager, "c")
    assert manager.connection_count == 3
    assert manager.is_local("a") and not manager.is_local("missing")
    assert set(manager.local_connection_ids()) == {"a", "b", "c"}

    await manager.add_to_group("a", "x")
    await manager.add_to_group("a", "y")
    await manager.add_to_group("a", "y")
    await manager.add_user_to_group("alice", "team")
    assert manager.groups_of("a") == {"x", "y", "team"}
    assert manager.groups_of("b") == {"team"}
    assert manager.groups_of("c") == frozenset()
    assert manager.groups_of("missing") == frozenset()

    await manager.remove_from_group("a", "x")
    await manager.remove_from_group("a", "x")
    await manager.remove_user_from_group("alice", "team")
    assert manager.groups_of("a") == {"y"}
    assert manager.groups_of("b") == frozenset()
    # No empty index entries are left behind (they would grow with every group ever used).
    assert set(manager._local.groups) == {"y"}
    assert set(manager._local.groups_of) == {"a"}

    await a.disconnect()
    assert manager.connection_count == 2
    assert not manager.is_local("a")
    assert manager.groups_of("a") == frozenset()
    await b.disconnect()
    await c.disconnect()
    assert manager.connection_count == 0
    assert manager._local.connections == {}
    assert manager._local.groups == {}
    assert manager._local.groups_of == {}
    assert manager._local.users == {}


async def test_sends_never_await_a_recipient() -> None:
    """Every send delivers synchronously: the coroutine finishes without suspending once."""
    manager = MemoryLifetimeManager()
    a = await connected(manager, "a", user="alice")
    b = await connected(manager, "b", user="bob", protocol="messagepack")
    run_without_suspending(manager.add_to_group("a", "g"))
    run_without_suspending(manager.add_to_group("b", "h"))
    sends = [
        manager.send_all(note("all")),
        manager.send_all(note("all-except"), ["a"]),
        manager.send_connection("a", note("one")),
        manager.send_connections(["a", "b"], note("some")),
        manager.send_group("g", note("group")),
        manager.send_group("g", note("group-except"), ["b"]),
        manager.send_groups(["g", "h"], note("groups")),
        manager.send_user("alice", note("user")),
        manager.send_users(["alice", "bob"], note("users")),
    ]
    for send in sends:
        run_without_suspending(send)
    assert [m.arguments[0] for m in a.received] == [
        "all",
        "one",
        "some",
        "group",
        "group-except",
        "groups",
        "user",
        "users",
    ]
    assert [m.arguments[0] for m in b.received] == ["all", "all-except", "some", "groups", "users"]


@pytest.mark.parametrize(
    "target", ["all", "all_except", "connections", "group", "group_except", "groups", "users"]
)
async def test_every_send_encodes_exactly_once_per_protocol(target: str) -> None:
    """Stricter than the suite: one encode and one bytes object per protocol, for any target."""
    manager = MemoryLifetimeManager()
    protocols = {
        "json": CountingProtocol(JsonHubProtocol()),
        "messagepack": CountingProtocol(MessagePackHubProtocol()),
    }
    connections = []
    for n in range(60):
        protocol = protocols["json" if n % 3 else "messagepack"]
        connection = FakeConnection(f"c{n}", manager, protocol, user_id=f"u{n % 5}")
        await connection.connect()
        await manager.add_to_group(connection.connection_id, "everyone")
        await manager.add_to_group(connection.connection_id, f"part{n % 2}")
        connections.append(connection)
    ids = [c.connection_id for c in connections]
    message = InvocationMessage(target="Once", arguments=("payload",))
    if target == "all":
        await manager.send_all(message)
    elif target == "all_except":
        await manager.send_all(message, ids[:3])
    elif target == "connections":
        await manager.send_connections(ids, message)
    elif target == "group":
        await manager.send_group("everyone", message)
    elif target == "group_except":
        await manager.send_group("everyone", message, ids[:3])
    elif target == "groups":
        await manager.send_groups(["part0", "part1", "everyone"], message)
    else:
        await manager.send_users([f"u{n}" for n in range(5)], message)
    for name, protocol in protocols.items():
        assert protocol.writes["Once"] == 1, name
        chunks = [f for c in connections if c.protocol is protocol for f in c.frames]
        assert chunks
        assert len({id(chunk) for chunk in chunks}) == 1, name


async def test_pending_client_results_are_forgotten() -> None:
    manager = MemoryLifetimeManager()
    answering = await connected(manager, "answering")
    answering.answer = answer_with_result(7)
    silent = await connected(manager, "silent")
    async with asyncio.timeout(5 * UNIT):
        assert await manager.invoke_connection("answering", "Ask", (), 5 * UNIT) == 7
        with pytest.raises(ClientResultError):
            await manager.invoke_connection("silent", "Ask", (), 0.05 * UNIT)
        pending = asyncio.create_task(manager.invoke_connection("silent", "Ask", (), 5 * UNIT))
        await silent.wait_for(2, 5 * UNIT)
        assert len(manager._results._pending) == 1
        await silent.disconnect()
        with pytest.raises(ClientResultError):
            await pending
    assert manager._results._pending == {}
    assert manager._results._by_connection == {}
    await answering.aclose(5 * UNIT)


async def test_a_completion_only_resolves_its_own_connection() -> None:
    manager = MemoryLifetimeManager()
    await connected(manager, "a")
    b = await connected(manager, "b")
    pending = asyncio.create_task(manager.invoke_connection("b", "Ask", (), 5 * UNIT))
    [invocation] = await b.wait_for(1, 5 * UNIT)
    assert invocation.invocation_id is not None
    completion = CompletionMessage.with_result(invocation.invocation_id, "x")
    assert not await manager.set_connection_result("a", completion)
    assert not await manager.set_connection_result("missing", completion)
    assert await manager.set_connection_result("b", completion)
    async with asyncio.timeout(5 * UNIT):
        assert await pending == "x"
