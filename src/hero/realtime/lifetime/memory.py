"""MemoryLifetimeManager: the single-instance default, O(1) indices for every target."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from hero.realtime.lifetime.base import ClientResultError, HubLifetimeManager, LocalConnection
from hero.realtime.lifetime.local import LocalConnections, PendingResults
from hero.realtime.protocol import CompletionMessage, InvocationMessage, SerializedMessage


class MemoryLifetimeManager(HubLifetimeManager):
    """All state in dicts: id -> connection, group -> members, user -> connections.

    Group and user maps hold `{connection_id: connection}` so add, remove and lookup are
    O(1) and a send touches only its recipients.
    """

    def __init__(self) -> None:
        self._local = LocalConnections()
        self._results = PendingResults()

    @property
    def connection_count(self) -> int:
        return len(self._local.connections)

    def is_local(self, connection_id: str) -> bool:
        return connection_id in self._local.connections

    def local_connection_ids(self) -> Collection[str]:
        return self._local.connections.keys()

    def groups_of(self, connection_id: str) -> frozenset[str]:
        return frozenset(self._local.groups_of.get(connection_id, ()))

    async def on_connected(self, connection: LocalConnection) -> None:
        self._local.add(connection)

    async def on_disconnected(self, connection: LocalConnection) -> None:
        self._local.remove(connection)
        self._results.fail_connection(connection.connection_id)

    async def send_all(self, message: InvocationMessage, excluded: Collection[str] = ()) -> None:
        self._local.deliver_all(SerializedMessage(message), excluded)

    async def send_connection(self, connection_id: str, message: InvocationMessage) -> None:
        self._local.deliver_connection(connection_id, SerializedMessage(message))

    async def send_connections(
        self, connection_ids: Collection[str], message: InvocationMessage
    ) -> None:
        serialized = SerializedMessage(message)
        for cid in connection_ids:
            self._local.deliver_connection(cid, serialized)

    async def send_group(
        self, group: str, message: InvocationMessage, excluded: Collection[str] = ()
    ) -> None:
        if group in self._local.groups:
            self._local.deliver_group(group, SerializedMessage(message), excluded)

    async def send_groups(self, groups: Collection[str], message: InvocationMessage) -> None:
        serialized = SerializedMessage(message)
        for group in groups:
            self._local.deliver_group(group, serialized)

    async def send_user(self, user_id: str, message: InvocationMessage) -> None:
        if user_id in self._local.users:
            self._local.deliver_user(user_id, SerializedMessage(message))

    async def send_users(self, user_ids: Collection[str], message: InvocationMessage) -> None:
        serialized = SerializedMessage(message)
        for user in user_ids:
            self._local.deliver_user(user, serialized)

    async def add_to_group(self, connection_id: str, group: str) -> None:
        self._local.add_to_group(connection_id, group)

    async def remove_from_group(self, connection_id: str, group: str) -> None:
        self._local.remove_from_group(connection_id, group)

    def connection_groups(self, connection_id: str) -> Collection[str] | None:
        return self._local.groups_of.get(connection_id, ())

    async def add_user_to_group(self, user_id: str, group: str) -> None:
        for cid in self._local.user_connection_ids(user_id):
            self._local.add_to_group(cid, group)

    async def remove_user_from_group(self, user_id: str, group: str) -> None:
        for cid in self._local.user_connection_ids(user_id):
            self._local.remove_from_group(cid, group)

    async def invoke_connection(
        self, connection_id: str, target: str, arguments: tuple[Any, ...], timeout: float | None
    ) -> Any:
        connection = self._local.connections.get(connection_id)
        if connection is None:
            raise ClientResultError(f"Connection '{connection_id}' does not exist.")

        async def send(message: InvocationMessage) -> None:
            connection.write(message)

        return await self._results.invoke(connection_id, target, arguments, timeout, send)

    async def set_connection_result(
        self, connection_id: str, completion: CompletionMessage
    ) -> bool:
        return self._results.complete(connection_id, completion)
