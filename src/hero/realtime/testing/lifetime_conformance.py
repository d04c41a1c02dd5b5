"""THE lifetime-manager conformance suite (docs/protocol.md §9.5-9.7, 10).

Every `HubLifetimeManager` backend passes these same tests, unchanged. A backend's test
module subclasses `LifetimeManagerConformance` and says how to build a cluster:

    class TestMemoryLifetimeManager(LifetimeManagerConformance):
        async def make_cluster(self, instances: int) -> list[HubLifetimeManager]:
            manager = MemoryLifetimeManager()
            return [manager] * instances  # in-memory is ONE instance, whatever is asked

`make_cluster(n)` returns one manager per "server" of a cluster sharing one backplane:
n distinct managers on one Valkey for a backplane, the same manager n times for the
in-memory manager (it cannot span processes, so every "instance" is the same one). The
managers must be unstarted (constructors do no I/O); the suite starts each distinct manager
before a test and stops it afterwards.

Every test runs twice, with a cluster of one and of two instances. Connections are placed
round-robin over the instances and every target is sent from every instance, so each send
and group operation is exercised both for local and for remote connections.

Requires pytest-asyncio (`asyncio_mode = "auto"`, or mark the subclass with
`pytest.mark.asyncio`). Not exported from `hero.realtime.testing`, because importing this
module imports pytest.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from typing import ClassVar

import pytest
import pytest_asyncio

from hero.realtime.lifetime.base import ClientResultError, HubLifetimeManager
from hero.realtime.protocol import CompletionMessage, InvocationMessage
from hero.realtime.testing.lifetime_kit import (
    FENCE_TARGET,
    PROTOCOLS,
    Answer,
    Cluster,
    CountingProtocol,
    FakeConnection,
    answer_with_error,
    answer_with_result,
    every,
    labels,
    note,
)

__all__ = [
    "FENCE_TARGET",
    "Answer",
    "Cluster",
    "CountingProtocol",
    "FakeConnection",
    "LifetimeManagerConformance",
    "answer_with_error",
    "answer_with_result",
]


class LifetimeManagerConformance(ABC):
    """The tests every HubLifetimeManager passes; subclasses provide `make_cluster`.

    Class attributes: `timeout_unit` scales every wait (habit 10); `operation_timeout_units`
    bounds calls that must finish without any client's help (a backplane may wait for an
    owner's acknowledgement, but not longer than this).
    """

    timeout_unit: ClassVar[float] = 1.0
    operation_timeout_units: ClassVar[float] = 10.0

    @abstractmethod
    async def make_cluster(self, instances: int) -> list[HubLifetimeManager]:
        """`instances` unstarted managers sharing one backplane (memory: one manager, repeated)."""

    async def settle(self, cluster: Cluster) -> None:
        """Return once everything sent so far has reached its recipients.

        Default: every instance sends a fence with `send_all`, and every live connection
        must see every fence. That is exact for the memory manager (a send has delivered
        when it returns) and for a backplane that delivers the sends made by one instance in
        the order they were made. A backplane without that ordering overrides this.
        """
        fences = []
        for manager in cluster.instances:
            fence = cluster.new_id("fence")
            await manager.send_all(InvocationMessage(target=FENCE_TARGET, arguments=(fence,)))
            fences.append(fence)
        for connection in cluster.connections:
            if connection.connected and not connection.overflowed:
                for fence in fences:
                    await connection.wait_for_fence(fence, cluster.timeout)

    @property
    def operation_timeout(self) -> float:
        return self.operation_timeout_units * self.timeout_unit

    @pytest_asyncio.fixture(params=[1, 2], ids=["one-instance", "two-instances"])
    async def cluster(self, request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
        instances: int = request.param
        managers = await self.make_cluster(instances)
        assert len(managers) == instances, "make_cluster must return one manager per instance"
        cluster = Cluster(managers, timeout=5 * self.timeout_unit)
        started: list[HubLifetimeManager] = []
        try:
            for manager in cluster.instances:
                await manager.start()
                started.append(manager)
            yield cluster
        finally:
            await cluster.aclose()
            for manager in reversed(started):
                await manager.stop()

    async def expect(
        self, cluster: Cluster, expected: Mapping[FakeConnection, Iterable[str]]
    ) -> None:
        """Every connection of the cluster received exactly `expected` (any order), no more.

        Waits for the expected deliveries, settles, checks EVERY connection (absent ones
        must have received nothing), then clears the records for the next step.
        """
        want = {connection: Counter(items) for connection, items in expected.items()}
        for connection, counts in want.items():
            await connection.wait_for(counts.total(), cluster.timeout)
        await self.settle(cluster)
        problems = []
        for connection in cluster.connections:
            got = Counter(labels(connection))
            wanted = want.get(connection, Counter())
            if got != wanted:
                problems.append(f"{connection!r}: expected {dict(wanted)}, got {dict(got)}")
            if connection.unexpected:
                problems.append(f"{connection!r}: unexpected messages {connection.unexpected}")
            if any(m.invocation_id is not None for m in connection.received):
                problems.append(f"{connection!r}: a broadcast carried an invocation id")
        assert not problems, "\n".join(problems)
        cluster.clear()

    @staticmethod
    def ids(connections: Iterable[FakeConnection]) -> list[str]:
        return [connection.connection_id for connection in connections]

    # -- send_all (9.6 All / AllExcept) ------------------------------------------------------

    async def test_send_all_reaches_every_connection(self, cluster: Cluster) -> None:
        connections = await cluster.connect_many(8)
        sent = [f"all-{i}" for i in range(len(cluster.managers))]
        for i, sender in enumerate(cluster.managers):
            await sender.send_all(note(sent[i]))
        await self.expect(cluster, every(connections, sent))

    async def test_send_all_arguments_survive_both_protocols(self, cluster: Cluster) -> None:
        connections = await cluster.connect_many(4)
        assert {c.protocol.name for c in connections} == set(PROTOCOLS)
        arguments = ("text", 42, 1.5, None, True, [1, "two"], {"key": {"nested": [3]}})
        await cluster.managers[-1].send_all(
            InvocationMessage(target="Payload", arguments=arguments)
        )
        for connection in connections:
            [message] = await connection.wait_for(1, cluster.timeout)
            assert message.target == "Payload"
            assert message.arguments == arguments
            assert message.invocation_id is None

    async def test_send_all_with_excluded_ids(self, cluster: Cluster) -> None:
        connections = await cluster.connect_many(6)
        excluded = [connections[0], connections[3]]
        sent = [f"except-{i}" for i in range(len(cluster.managers))]
        for i, sender in enumerate(cluster.managers):
            await sender.send_all(note(sent[i]), [*self.ids(excluded), "missing-id"])
        await self.expect(cluster, {c: sent for c in connections if c not in excluded})
        await cluster.managers[-1].send_all(note("nobody-excluded"), ())
        await self.expect(cluster, every(connections, ["nobody-excluded"]))

    # -- send_connection / send_connections (9.6 Client / Clients) ---------------------------

    async def test_send_connection(self, cluster: Cluster) -> None:
        connections = await cluster.connect_many(4)
        for i, sender in enumerate(cluster.managers):
            for connection in connections:
                await sender.send_connection(connection.connection_id, note(f"to-{i}"))
            await sender.send_connection("missing-id", note("lost"))
        sent = [f"to-{i}" for i in range(len(cluster.managers))]
        await self.expect(cluster, every(connections, sent))

    async def test_send_connections(self, cluster: Cluster) -> None:
        connections = await cluster.connect_many(5)
        targets = [connections[0], connections[1], connections[4]]
        sent = [f"many-{i}" for i in range(len(cluster.managers))]
        for i, sender in enumerate(cluster.managers):
            await sender.send_connections([*self.ids(targets), "missing-id"], note(sent[i]))
            await sender.send_connections([], note("nobody"))
        await self.expect(cluster, every(targets, sent))

    # -- groups (9.6 Group / GroupExcept / Groups, 9.7) --------------------------------------

    async def test_send_group(self, cluster: Cluster) -> None:
        connections = await cluster.connect_many(6)
        members = connections[:4]
        for k, connection in enumerate(members):
            await cluster.caller(k).add_to_group(connection.connection_id, "room")
        sent = [f"room-{i}" for i in range(len(cluster.managers))]
        for i, sender in enumerate(cluster.managers):
            await sender.send_group("room", note(sent[i]))
            await sender.send_group("empty-room", note("nobody"))
        await self.expect(cluster, every(members, sent))

    async def test_send_group_with_excluded_ids(self, cluster: Cluster) -> None:
        connections = await cluster.connect_many(6)
        members = connections[:5]
        for k, connection in enumerate(members):
            await cluster.caller(k).add_to_group(connection.connection_id, "room")
        excluded = [connections[0], connections[1], connections[5]]  # the last is no member
        sent = [f"group-except-{i}" for i in range(len(cluster.managers))]
        for i, sender in enumerate(cluster.managers):
            await sender.send_group("room", note(sent[i]), [*self.ids(excluded), "missing-id"])
        await self.expect(cluster, {c: sent for c in members if c not in excluded})

    async def test_send_groups_gives_one_copy_per_listed_group(self, cluster: Cluster) -> None:
        connections = await cluster.connect_many(6)
        in_both, only_a, only_b = connections[0:2], connections[2:4], connections[4:5]
        for k, connection in enumerate(connections):
            cid = connection.connection_id
            if connection in in_both or connection in only_a:
                await cluster.caller(k).add_to_group(cid, "a")
            if connection in in_both or connection in only_b:
                await cluster.caller(k + 1).add_to_group(cid, "b")
        sent = [f"groups-{i}" for i in range(len(cluster.managers))]
        for i, sender in enumerate(cluster.managers):
            await sender.send_groups(["a", "b", "missing-group"], note(sent[i]))
            await sender.send_groups([], note("nobody"))
        expected = {c: sent * 2 for c in in_both}
        expected.update({c: sent for c in [*only_a, *only_b]})
        await self.expect(cluster, expected)

    async def test_add_and_remove_are_idempotent(self, cluster: Cluster) -> None:
        connections = await cluster.connect_many(4)
        for k, connection in enumerate(connections):
            await cluster.caller(k).add_to_group(connection.connection_id, "room")
            await cluster.caller(k + 1).add_to_group(connection.connection_id, "room")
        await cluster.managers[-1].send_group("room", note("once"))
        await self.expect(cluster, every(connections, ["once"]))
        leaving, staying = connections[:2], connections[2:]
        for k, connection in enumerate(leaving):
            await cluster.caller(k).remove_from_group(connection.connection_id, "room")
            await cluster.caller(k + 1).remove_from_group(connection.connection_id, "room")
        await cluster.caller(0).remove_from_group(staying[0].connection_id, "never-joined")
        await cluster.managers[0].send_group("room", note("after-remove"))
        await self.expect(cluster, every(staying, ["after-remove"]))
        await cluster.caller(1).add_to_group(leaving[1].connection_id, "room")
        await cluster.managers[-1].send_group("room", note("rejoined"))
        await self.expect(cluster, every([*staying, leaving[1]], ["rejoined"]))

    async def test_unknown_ids_are_ignored(self, cluster: Cluster) -> None:
        member = await cluster.connect(len(cluster.managers) - 1)
        await cluster.managers[0].add_to_group(member.connection_id, "room")
        async with asyncio.timeout(self.operation_timeout):
            for manager in cluster.instances:
                await manager.add_to_group("missing-id", "room")
                await manager.remove_from_group("missing-id", "room")
                await manager.add_user_to_group("missing-user", "room")
                await manager.remove_user_from_group("missing-user", "room")
                await manager.send_connection("missing-id", note("lost"))
                await manager.send_connections(["missing-id"], note("lost"))
                await manager.send_user("missing-user", note("lost"))
                await manager.send_users(["missing-user"], note("lost"))
                await manager.send_group("missing-group", note("lost"))
                await manager.send_groups(["missing-group"], note("lost"))
        await cluster.managers[0].send_group("room", note("room"))
        await self.expect(cluster, {member: ["room"]})

    async def test_group_names_are_case_sensitive(self, cluster: Cluster) -> None:
        upper = await cluster.connect(0)
        lower = await cluster.connect(1, protocol="messagepack")
        await cluster.manager(1).add_to_group(upper.connection_id, "Room")
        await cluster.manager(0).add_to_group(lower.connection_id, "room")
        await cluster.managers[0].send_group("Room", note("Room"))
        await cluster.managers[-1].send_group("room", note("room"))
        await cluster.managers[0].send_group("ROOM", note("ROOM"))
        await self.expect(cluster, {upper: ["Room"], lower: ["room"]})
        await cluster.manager(0).add_to_group(upper.connection_id, "room")
        await cluster.manager(1).remove_from_group(upper.connection_id, "ROOM")  # another group
        await cluster.managers[-1].send_groups(["Room", "room"], note("both"))
        await self.expect(cluster, {upper: ["both", "both"], lower: ["both"]})

    async def test_membership_ends_at_disconnect(self, cluster: Cluster) -> None:
        connections = await cluster.connect_many(4, user="dana")
        for k, connection in enumerate(connections):
            await cluster.caller(k).add_to_group(connection.connection_id, "a")
            await cluster.caller(k + 1).add_to_group(connection.connection_id, "b")
        leaving, staying = connections[:2], connections[2:]
        for connection in leaving:
            await connection.disconnect()
        sender = cluster.managers[-1]
        await sender.send_group("a", note("a"))
        await sender.send_group("b", note("b"), ["missing-id"])
        await sender.send_groups(["a", "b"], note("ab"))
        await sender.send_all(note("all"))
        await sender.send_user("dana", note("user"))
        await sender.send_connections(self.ids(connections), note("ids"))
        for connection in leaving:
            await sender.send_connection(connection.connection_id, note("gone"))
        await self.expect(cluster, every(staying, ["a", "b", "ab", "ab", "all", "user", "ids"]))
        for k, connection in enumerate(leaving):
            await cluster.caller(k).add_to_group(connection.connection_id, "a")
        await cluster.managers[0].send_group("a", note("a-again"))
        await self.expect(cluster, every(staying, ["a-again"]))

    async def test_connection_groups_lists_every_group_of_a_local_connection(
        self, cluster: Cluster
    ) -> None:
        """What `Groups` counts for `maximum_groups_per_connection`: every group the
        connection is in, whichever instance moved it. A manager that answers None does not
        track them (then the limit is not enforced) and skips this test."""
        home = cluster.manager(0)
        member = await cluster.connect(0, user="erin")
        cid = member.connection_id
        if home.connection_groups(cid) is None:
            pytest.skip("this manager does not report the groups of a connection")
        assert set(home.connection_groups(cid) or ()) == set()
        await cluster.manager(0).add_to_group(cid, "a")
        await cluster.manager(1).add_to_group(cid, "b")
        await cluster.manager(1).add_to_group(cid, "b")
        await cluster.manager(1).add_user_to_group("erin", "c")
        assert set(home.connection_groups(cid) or ()) == {"a", "b", "c"}
        await cluster.manager(1).remove_from_group(cid, "a")
        await cluster.manager(0).remove_user_from_group("erin", "c")
        assert set(home.connection_groups(cid) or ()) == {"b"}
        await member.disconnect()
        assert set(home.connection_groups(cid) or ()) == set()

    # -- users (9.6 User / Users, 9.7) ------------------------------------------------------

    async def test_send_user_reaches_every_connection_of_the_user(self, cluster: Cluster) -> None:
        alice = await cluster.connect_many(5, user="alice")
        await cluster.connect_many(2, user="bob")
        await cluster.connect_many(2)
        sent = [f"alice-{i}" for i in range(len(cluster.managers))]
        for i, sender in enumerate(cluster.managers):
            await sender.send_user("alice", note(sent[i]))
            await sender.send_user("ALICE", note("ordinal-compare"))
            await sender.send_user("nobody", note("nobody"))
        await self.expect(cluster, every(alice, sent))
        await alice[0].disconnect()
        await alice[3].disconnect()
        await cluster.managers[0].send_user("alice", note("fewer"))
        await self.expect(cluster, {c: ["fewer"] for c in alice if c.connected})

    async def test_send_users(self, cluster: Cluster) -> None:
        alice = await cluster.connect_many(3, user="alice")
        bob = await cluster.connect_many(2, user="bob")
        await cluster.connect_many(2, user="carol")
        await cluster.connect_many(2)
        sent = [f"users-{i}" for i in range(len(cluster.managers))]
        for i, sender in enumerate(cluster.managers):
            await sender.send_users(["alice", "bob", "nobody"], note(sent[i]))
            await sender.send_users([], note("nobody"))
        await self.expect(cluster, every([*alice, *bob], sent))

    async def test_user_group_operations_move_every_live_connection(self, cluster: Cluster) -> None:
        alice = await cluster.connect_many(4, user="alice")
        bob = await cluster.connect_many(2, user="bob")
        await alice[3].disconnect()
        await cluster.caller(0).add_to_group(bob[0].connection_id, "team")

        def live_alice() -> list[FakeConnection]:
            return [c for c in cluster.connections if c.user_id == "alice" and c.connected]

        for i, caller in enumerate(cluster.managers):
            await caller.add_user_to_group("alice", "team")
            await caller.add_user_to_group("alice", "team")
            members = live_alice()
            await cluster.manager(i + 1).send_group("team", note(f"joined-{i}"))
            await self.expect(cluster, every([*members, bob[0]], [f"joined-{i}"]))
            await cluster.connect(i, user="alice")  # joins after the move: not a member
            await cluster.manager(i).send_group("team", note("late"))
            await self.expect(cluster, every([*members, bob[0]], ["late"]))
            await cluster.manager(i + 1).remove_user_from_group("alice", "team")
            await cluster.manager(i + 1).remove_user_from_group("alice", "team")
            await caller.send_group("team", note(f"left-{i}"))
            await self.expect(cluster, {bob[0]: [f"left-{i}"]})

    # -- serialise once per protocol (habit 4, 9.6) -----------------------------------------

    @pytest.mark.parametrize(
        "target",
        ["all", "all_except", "connections", "group", "group_except", "groups", "user", "users"],
    )
    async def test_a_send_encodes_once_per_protocol(self, cluster: Cluster, target: str) -> None:
        """Per instance and protocol, a send is encoded once and recipients share the bytes.

        Holds as "at most one encode and one bytes object per protocol, per instance, per
        unit the send is made of" (a backplane publishes `send_groups` once per group, 10.3);
        a backplane that encodes with its own protocol objects counts no encodes here at all.
        """
        connections = [
            await cluster.connect(k, protocol=protocol, user=f"user{(k // 2) % 4}")
            for protocol, count in (("json", 100), ("messagepack", 20))
            for k in range(count)
        ]
        for k, connection in enumerate(connections):
            cid = connection.connection_id
            await cluster.caller(k).add_to_group(cid, "everyone")
            await cluster.caller(k + 1).add_to_group(cid, "half-a" if k // 2 % 2 else "half-b")
        cluster.clear()
        message = InvocationMessage(target="Once", arguments=("payload", {"n": 1}))
        sender = cluster.managers[-1]
        excluded = connections[:2]
        users = [f"user{n}" for n in range(4)]
        recipients: Collection[FakeConnection] = connections
        units = 1
        if target == "all":
            await sender.send_all(message)
        elif target == "all_except":
            await sender.send_all(message, self.ids(excluded))
            recipients = connections[2:]
        elif target == "connections":
            recipients = connections[::3]
            units = len(recipients)
            await sender.send_connections(self.ids(recipients), message)
        elif target == "group":
            await sender.send_group("everyone", message)
        elif target == "group_except":
            await sender.send_group("everyone", message, self.ids(excluded))
            recipients = connections[2:]
        elif target == "groups":
            units = 2
            await sender.send_groups(["half-a", "half-b"], message)
        elif target == "user":
            recipients = [c for c in connections if c.user_id == "user1"]
            await sender.send_user("user1", message)
        else:
            units = len(users)
            await sender.send_users(users, message)
        for connection in recipients:
            await connection.wait_for(1, cluster.timeout)
        await self.settle(cluster)
        frames: dict[tuple[int, str], list[bytes]] = {}
        for connection in connections:
            expected = 1 if connection in recipients else 0
            assert len(connection.received) == expected, connection
            key = (id(connection.home), connection.protocol.name)
            frames.setdefault(key, []).extend(connection.frames)
        for (_, name), chunks in frames.items():
            distinct = {id(chunk) for chunk in chunks}
            assert len(distinct) <= units, f"{name}: {len(distinct)} encodings on one instance"
            assert len(set(chunks)) <= 1, f"{name}: recipients got different bytes"
        for name, protocol in cluster.protocols.items():
            encodes = protocol.writes["Once"]
            assert encodes <= units * len(cluster.instances), f"{name} encoded {encodes} times"

    # -- a slow recipient (habit 7) ---------------------------------------------------------

    async def test_a_slow_connection_never_blocks_others(self, cluster: Cluster) -> None:
        slow = await cluster.connect(0, capacity=2)
        others = await cluster.connect_many(4)
        for k, connection in enumerate([slow, *others]):
            await cluster.caller(k).add_to_group(connection.connection_id, "room")
        sent = [f"m{n}" for n in range(20)]
        async with asyncio.timeout(self.operation_timeout):
            for n, label in enumerate(sent):
                await cluster.manager(n).send_group("room", note(label))
        for connection in others:
            await connection.wait_for(len(sent), cluster.timeout)
            assert Counter(labels(connection)) == Counter(sent)
        assert slow.overflowed
        assert len(slow.received) <= 2
        await slow.wait_closed(cluster.timeout)
        cluster.clear()
        await cluster.managers[-1].send_group("room", note("after"))
        await self.expect(cluster, every(others, ["after"]))

    # -- client results (9.5) ---------------------------------------------------------------

    async def test_client_result_is_returned(self, cluster: Cluster) -> None:
        connections = await cluster.connect_many(4)
        for connection in connections:
            connection.answer = answer_with_result({"from": connection.connection_id, "n": [1]})
        for caller in cluster.managers:
            for connection in connections:
                result = await caller.invoke_connection(
                    connection.connection_id, "Ask", (1, "two"), cluster.timeout
                )
                assert result == {"from": connection.connection_id, "n": [1]}
        for connection in connections:
            answers = await connection.wait_for_answers(len(cluster.managers), cluster.timeout)
            assert answers == [True] * len(cluster.managers)
            invocation_ids = {m.invocation_id for m in connection.received}
            assert None not in invocation_ids
            assert len(invocation_ids) == len(cluster.managers)
            assert all(m.target == "Ask" and m.arguments == (1, "two") for m in connection.received)

    async def test_client_error_completion_raises_with_its_text(self, cluster: Cluster) -> None:
        connections = await cluster.connect_many(2, answer=answer_with_error("Error: boom"))
        for caller in cluster.managers:
            for connection in connections:
                with pytest.raises(ClientResultError) as raised:
                    await caller.invoke_connection(
                        connection.connection_id, "Ask", (), cluster.timeout
                    )
                assert str(raised.value) == "Error: boom"

    async def test_completion_without_result_raises(self, cluster: Cluster) -> None:
        def no_result(invocation: InvocationMessage) -> CompletionMessage:
            assert invocation.invocation_id is not None
            return CompletionMessage.empty(invocation.invocation_id)

        connections = await cluster.connect_many(2, answer=no_result)
        for caller in cluster.managers:
            for connection in connections:
                with pytest.raises(ClientResultError):
                    await caller.invoke_connection(
                        connection.connection_id, "Ask", (), cluster.timeout
                    )

    async def test_client_result_from_unknown_connection(self, cluster: Cluster) -> None:
        gone = await cluster.connect(len(cluster.managers) - 1, answer=answer_with_result(1))
        await gone.disconnect()
        async with asyncio.timeout(self.operation_timeout):
            for caller in cluster.managers:
                for cid in ("missing-id", gone.connection_id):
                    with pytest.raises(ClientResultError) as raised:
                        await caller.invoke_connection(cid, "Ask", (), cluster.timeout)
                    assert str(raised.value) == f"Connection '{cid}' does not exist."
        assert gone.received == []

    async def test_client_result_fails_when_the_connection_disconnects(
        self, cluster: Cluster
    ) -> None:
        for i, caller in enumerate(cluster.managers):
            leaving = await cluster.connect(i)
            staying = await cluster.connect(i + 1, protocol="messagepack")
            lost = cluster.spawn(
                caller.invoke_connection(leaving.connection_id, "Ask", (), self.operation_timeout)
            )
            kept = cluster.spawn(
                caller.invoke_connection(staying.connection_id, "Ask", (), self.operation_timeout)
            )
            [invocation] = await staying.wait_for(1, cluster.timeout)
            await leaving.wait_for(1, cluster.timeout)
            await leaving.disconnect()
            with pytest.raises(ClientResultError) as raised:
                async with asyncio.timeout(cluster.timeout):
                    await lost
            assert str(raised.value) == f"Connection '{leaving.connection_id}' disconnected."
            assert not kept.done()
            assert invocation.invocation_id is not None
            completion = CompletionMessage.with_result(invocation.invocation_id, "still here")
            assert await staying.complete(completion)
            async with asyncio.timeout(cluster.timeout):
                assert await kept == "still here"

    async def test_completion_from_another_connection_is_rejected(self, cluster: Cluster) -> None:
        for i, caller in enumerate(cluster.managers):
            asked = await cluster.connect(i)
            same_instance = await cluster.connect(i)
            other_instance = await cluster.connect(i + 1, protocol="messagepack")
            pending = cluster.spawn(
                caller.invoke_connection(asked.connection_id, "Ask", (), self.operation_timeout)
            )
            [invocation] = await asked.wait_for(1, cluster.timeout)
            assert invocation.invocation_id is not None
            forged = CompletionMessage.with_result(invocation.invocation_id, "forged")
            assert not await same_instance.complete(forged)
            assert not await other_instance.complete(forged)
            assert not await asked.complete(CompletionMessage.with_result("no-such-id", "x"))
            assert not pending.done()
            genuine = CompletionMessage.with_result(invocation.invocation_id, "genuine")
            assert await asked.complete(genuine)
            async with asyncio.timeout(cluster.timeout):
                assert await pending == "genuine"
            assert not await asked.complete(genuine), "a result is accepted only once"

    async def test_concurrent_client_results_are_matched_by_invocation_id(
        self, cluster: Cluster
    ) -> None:
        connection = await cluster.connect(len(cluster.managers) - 1)
        first = cluster.spawn(
            cluster.managers[0].invoke_connection(
                connection.connection_id, "Ask", ("first",), self.operation_timeout
            )
        )
        await connection.wait_for(1, cluster.timeout)
        second = cluster.spawn(
            cluster.managers[-1].invoke_connection(
                connection.connection_id, "Ask", ("second",), self.operation_timeout
            )
        )
        ask_first, ask_second = await connection.wait_for(2, cluster.timeout)
        assert ask_first.invocation_id is not None and ask_second.invocation_id is not None
        assert ask_first.invocation_id != ask_second.invocation_id
        assert await connection.complete(CompletionMessage.with_result(ask_second.invocation_id, 2))
        async with asyncio.timeout(cluster.timeout):
            assert await second == 2
        assert not first.done()
        assert await connection.complete(CompletionMessage.with_result(ask_first.invocation_id, 1))
        async with asyncio.timeout(cluster.timeout):
            assert await first == 1

    async def test_client_result_times_out(self, cluster: Cluster) -> None:
        for i, caller in enumerate(cluster.managers):
            silent = await cluster.connect(i + 1)
            async with asyncio.timeout(self.operation_timeout):
                with pytest.raises(ClientResultError) as raised:
                    await caller.invoke_connection(
                        silent.connection_id, "Ask", (), 0.2 * self.timeout_unit
                    )
            assert str(raised.value) == "Invocation canceled by the server."
            [invocation] = await silent.wait_for(1, cluster.timeout)
            assert invocation.invocation_id is not None
            if caller is silent.home:  # a remote owner need not learn of the caller's timeout
                late = CompletionMessage.with_result(invocation.invocation_id, "late")
                assert not await silent.complete(late), "no longer pending after the timeout"
