"""MemoryLifetimeManager: the single-instance default, O(1) indices for every target."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Collection, Iterable
from typing import Any

from hero.realtime.lifetime.base import ClientResultError, HubLifetimeManager, LocalConnection
from hero.realtime.protocol import CompletionMessage, InvocationMessage, SerializedMessage


class _PendingResults:
    """Client-result invocations awaiting a Completion, keyed by invocation id."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self._by_connection: dict[str, set[str]] = {}

    def register(self, connection_id: str) -> tuple[str, asyncio.Future[Any]]:
        invocation_id = f"s{next(self._counter)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[invocation_id] = (connection_id, future)
        self._by_connection.setdefault(connection_id, set()).add(invocation_id)
        return invocation_id, future

    def discard(self, invocation_id: str) -> None:
        entry = self._pending.pop(invocation_id, None)
        if entry is not None:
            ids = self._by_connection.get(entry[0])
            if ids is not None:
                ids.discard(invocation_id)
                if not ids:
                    del self._by_connection[entry[0]]

    def complete(self, connection_id: str, completion: CompletionMessage) -> bool:
        entry = self._pending.get(completion.invocation_id)
        if entry is None or entry[0] != connection_id:
            return False
        future = entry[1]
        self.discard(completion.invocation_id)
        if future.done():
            return True
        if completion.error is not None:
            future.set_exception(ClientResultError(completion.error))
        elif not completion.has_result:
            future.set_exception(ClientResultError("Client didn't provide a result."))
        else:
            future.set_result(completion.result)
        return True

    def fail_connection(self, connection_id: str) -> None:
        for invocation_id in list(self._by_connection.get(connection_id, ())):
            entry = self._pending.get(invocation_id)
            self.discard(invocation_id)
            if entry is not None and not entry[1].done():
                entry[1].set_exception(
                    ClientResultError(f"Connection '{connection_id}' disconnected.")
                )


class MemoryLifetimeManager(HubLifetimeManager):
    """All state in dicts: id -> connection, group -> members, user -> connections.

    Group and user maps hold `{connection_id: connection}` so add, remove and lookup are
    O(1) and a send touches only its recipients.
    """

    def __init__(self) -> None:
        self._connections: dict[str, LocalConnection] = {}
        self._groups: dict[str, dict[str, LocalConnection]] = {}
        self._groups_of: dict[str, set[str]] = {}
        self._users: dict[str, dict[str, LocalConnection]] = {}
        self._results = _PendingResults()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def is_local(self, connection_id: str) -> bool:
        return connection_id in self._connections

    def local_connection_ids(self) -> Collection[str]:
        return self._connections.keys()

    def groups_of(self, connection_id: str) -> frozenset[str]:
        return frozenset(self._groups_of.get(connection_id, ()))

    async def on_connected(self, connection: LocalConnection) -> None:
        cid = connection.connection_id
        self._connections[cid] = connection
        user = connection.user_id
        if user is not None:
            self._users.setdefault(user, {})[cid] = connection

    async def on_disconnected(self, connection: LocalConnection) -> None:
        cid = connection.connection_id
        self._connections.pop(cid, None)
        for group in self._groups_of.pop(cid, ()):
            members = self._groups.get(group)
            if members is not None:
                members.pop(cid, None)
                if not members:
                    del self._groups[group]
        user = connection.user_id
        if user is not None:
            conns = self._users.get(user)
            if conns is not None:
                conns.pop(cid, None)
                if not conns:
                    del self._users[user]
        self._results.fail_connection(cid)

    @staticmethod
    def _deliver(recipients: Iterable[LocalConnection], message: SerializedMessage) -> None:
        for connection in recipients:
            connection.write_serialized(message)

    async def send_all(self, message: InvocationMessage, excluded: Collection[str] = ()) -> None:
        serialized = SerializedMessage(message)
        if excluded:
            skip = set(excluded)
            self._deliver(
                (c for cid, c in self._connections.items() if cid not in skip), serialized
            )
        else:
            self._deliver(list(self._connections.values()), serialized)

    async def send_connection(self, connection_id: str, message: InvocationMessage) -> None:
        connection = self._connections.get(connection_id)
        if connection is not None:
            connection.write_serialized(SerializedMessage(message))

    async def send_connections(
        self, connection_ids: Collection[str], message: InvocationMessage
    ) -> None:
        serialized = SerializedMessage(message)
        for cid in connection_ids:
            connection = self._connections.get(cid)
            if connection is not None:
                connection.write_serialized(serialized)

    async def send_group(
        self, group: str, message: InvocationMessage, excluded: Collection[str] = ()
    ) -> None:
        members = self._groups.get(group)
        if not members:
            return
        serialized = SerializedMessage(message)
        if excluded:
            skip = set(excluded)
            self._deliver([c for cid, c in members.items() if cid not in skip], serialized)
        else:
            self._deliver(list(members.values()), serialized)

    async def send_groups(self, groups: Collection[str], message: InvocationMessage) -> None:
        serialized = SerializedMessage(message)
        for group in groups:
            members = self._groups.get(group)
            if members:
                self._deliver(list(members.values()), serialized)

    async def send_user(self, user_id: str, message: InvocationMessage) -> None:
        conns = self._users.get(user_id)
        if conns:
            self._deliver(list(conns.values()), SerializedMessage(message))

    async def send_users(self, user_ids: Collection[str], message: InvocationMessage) -> None:
        serialized = SerializedMessage(message)
        for user in user_ids:
            conns = self._users.get(user)
            if conns:
                self._deliver(list(conns.values()), serialized)

    async def add_to_group(self, connection_id: str, group: str) -> None:
        connection = self._connections.get(connection_id)
        if connection is None:
            return
        self._groups.setdefault(group, {})[connection_id] = connection
        self._groups_of.setdefault(connection_id, set()).add(group)

    async def remove_from_group(self, connection_id: str, group: str) -> None:
        members = self._groups.get(group)
        if members is not None and members.pop(connection_id, None) is not None and not members:
            del self._groups[group]
        groups = self._groups_of.get(connection_id)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self._groups_of[connection_id]

    async def add_user_to_group(self, user_id: str, group: str) -> None:
        for cid in list(self._users.get(user_id, ())):
            await self.add_to_group(cid, group)

    async def remove_user_from_group(self, user_id: str, group: str) -> None:
        for cid in list(self._users.get(user_id, ())):
            await self.remove_from_group(cid, group)

    async def invoke_connection(
        self, connection_id: str, target: str, arguments: tuple[Any, ...], timeout: float | None
    ) -> Any:
        connection = self._connections.get(connection_id)
        if connection is None:
            raise ClientResultError(f"Connection '{connection_id}' does not exist.")
        invocation_id, future = self._results.register(connection_id)
        try:
            connection.write(
                InvocationMessage(target=target, arguments=arguments, invocation_id=invocation_id)
            )
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise ClientResultError("Invocation canceled by the server.") from None
        finally:
            self._results.discard(invocation_id)

    async def set_connection_result(
        self, connection_id: str, completion: CompletionMessage
    ) -> bool:
        return self._results.complete(connection_id, completion)
