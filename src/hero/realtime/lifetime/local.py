"""LocalConnections: the connections one instance serves, with O(1) indices.

Shared by every lifetime manager: the in-memory manager is just this; the Valkey manager
uses it for its own connections and adds pub/sub for everyone else's. Delivery is
synchronous (appends to each connection's send queue) and takes a SerializedMessage, so a
broadcast is encoded at most once per protocol however it is fanned out.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

from hero.realtime.lifetime.base import ClientResultError, LocalConnection
from hero.realtime.protocol import CompletionMessage, InvocationMessage, SerializedMessage


class PendingResults:
    """Client-result invocations awaiting a Completion, keyed by invocation id.

    Each entry remembers the connection it was sent to: only that connection's Completion
    is accepted (docs/protocol.md §9.5).
    """

    def __init__(self, id_prefix: str = "s") -> None:
        self._counter = itertools.count(1)
        self._prefix = id_prefix
        self._pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self._by_connection: dict[str, set[str]] = {}

    def register(self, connection_id: str) -> tuple[str, asyncio.Future[Any]]:
        invocation_id = f"{self._prefix}{next(self._counter)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[invocation_id] = (connection_id, future)
        self._by_connection.setdefault(connection_id, set()).add(invocation_id)
        return invocation_id, future

    async def invoke(
        self,
        connection_id: str,
        target: str,
        arguments: tuple[Any, ...],
        timeout: float | None,
        send: Callable[[InvocationMessage], Awaitable[None]],
    ) -> Any:
        """Register a client-result invocation, hand it to `send`, await the Completion.

        Raises ClientResultError: the client's error, a disconnect, or a timeout
        (`Invocation canceled by the server.`). The entry is always removed.
        """
        invocation_id, future = self.register(connection_id)
        try:
            await send(
                InvocationMessage(target=target, arguments=arguments, invocation_id=invocation_id)
            )
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise ClientResultError("Invocation canceled by the server.") from None
        finally:
            self.discard(invocation_id)

    def discard(self, invocation_id: str) -> None:
        entry = self._pending.pop(invocation_id, None)
        if entry is not None:
            ids = self._by_connection.get(entry[0])
            if ids is not None:
                ids.discard(invocation_id)
                if not ids:
                    del self._by_connection[entry[0]]

    def owner(self, invocation_id: str) -> str | None:
        """The connection a pending invocation was sent to."""
        entry = self._pending.get(invocation_id)
        return entry[0] if entry is not None else None

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


def _deliver(recipients: Iterable[LocalConnection], message: SerializedMessage) -> None:
    for connection in recipients:
        connection.write_serialized(message)


class LocalConnections:
    """id -> connection, group -> {id: connection}, user -> {id: connection}, id -> groups."""

    def __init__(self) -> None:
        self.connections: dict[str, LocalConnection] = {}
        self.groups: dict[str, dict[str, LocalConnection]] = {}
        self.groups_of: dict[str, set[str]] = {}
        self.users: dict[str, dict[str, LocalConnection]] = {}

    def add(self, connection: LocalConnection) -> bool:
        """Register; True when it is the user's first local connection."""
        cid = connection.connection_id
        self.connections[cid] = connection
        user = connection.user_id
        if user is None:
            return False
        conns = self.users.setdefault(user, {})
        conns[cid] = connection
        return len(conns) == 1

    def remove(self, connection: LocalConnection) -> tuple[list[str], bool]:
        """Forget; returns (groups left empty locally, whether the user has none left)."""
        cid = connection.connection_id
        self.connections.pop(cid, None)
        emptied: list[str] = []
        for group in self.groups_of.pop(cid, ()):
            members = self.groups.get(group)
            if members is not None:
                members.pop(cid, None)
                if not members:
                    del self.groups[group]
                    emptied.append(group)
        user_gone = False
        user = connection.user_id
        if user is not None:
            conns = self.users.get(user)
            if conns is not None:
                conns.pop(cid, None)
                if not conns:
                    del self.users[user]
                    user_gone = True
        return emptied, user_gone

    def add_to_group(self, connection_id: str, group: str) -> bool | None:
        """Join; None for an unknown connection, else True when the group was empty here."""
        connection = self.connections.get(connection_id)
        if connection is None:
            return None
        members = self.groups.setdefault(group, {})
        first = not members
        members[connection_id] = connection
        self.groups_of.setdefault(connection_id, set()).add(group)
        return first

    def remove_from_group(self, connection_id: str, group: str) -> bool:
        """Leave; True when the group became empty here."""
        emptied = False
        members = self.groups.get(group)
        if members is not None and members.pop(connection_id, None) is not None and not members:
            del self.groups[group]
            emptied = True
        groups = self.groups_of.get(connection_id)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self.groups_of[connection_id]
        return emptied

    def user_connection_ids(self, user_id: str) -> list[str]:
        return list(self.users.get(user_id, ()))

    def deliver_all(self, message: SerializedMessage, excluded: Collection[str] = ()) -> None:
        if excluded:
            skip = set(excluded)
            _deliver([c for cid, c in self.connections.items() if cid not in skip], message)
        else:
            _deliver(list(self.connections.values()), message)

    def deliver_connection(self, connection_id: str, message: SerializedMessage) -> bool:
        connection = self.connections.get(connection_id)
        if connection is None:
            return False
        connection.write_serialized(message)
        return True

    def deliver_group(
        self, group: str, message: SerializedMessage, excluded: Collection[str] = ()
    ) -> None:
        members = self.groups.get(group)
        if not members:
            return
        if excluded:
            skip = set(excluded)
            _deliver([c for cid, c in members.items() if cid not in skip], message)
        else:
            _deliver(list(members.values()), message)

    def deliver_user(self, user_id: str, message: SerializedMessage) -> None:
        conns = self.users.get(user_id)
        if conns:
            _deliver(list(conns.values()), message)
