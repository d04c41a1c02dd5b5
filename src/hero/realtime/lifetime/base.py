"""HubLifetimeManager: fan-out, groups and users behind one interface.

Everything crossing this interface is ids and messages, never connection objects, except
the local connection handed over in `on_connected` / `on_disconnected`. That keeps the
contract implementable by a multi-instance backplane (targets may live on other instances).

Every send takes a plain `InvocationMessage` (no invocation id): the manager serialises it
once per hub protocol and writes the same bytes to every recipient using that protocol.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import Any, Protocol

from hero.realtime.protocol import (
    CompletionMessage,
    HubMessage,
    HubProtocol,
    InvocationMessage,
    SerializedMessage,
)


class LocalConnection(Protocol):
    """What a lifetime manager needs from a connection served by this instance."""

    @property
    def connection_id(self) -> str: ...

    @property
    def user_id(self) -> str | None: ...

    @property
    def protocol(self) -> HubProtocol: ...

    def write(self, message: HubMessage) -> None:
        """Queue one message; never awaits. A full send queue disconnects the connection."""

    def write_serialized(self, message: SerializedMessage) -> None:
        """Queue pre-serialised bytes for this connection's protocol; never awaits."""


class ClientResultError(Exception):
    """A client result could not be obtained; the text follows docs/protocol.md §9.5."""


class HubLifetimeManager(ABC):
    """Tracks connections, groups and users and delivers invocations to them."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open backplane resources (nothing for the in-memory manager)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release backplane resources."""

    @abstractmethod
    async def on_connected(self, connection: LocalConnection) -> None: ...

    @abstractmethod
    async def on_disconnected(self, connection: LocalConnection) -> None:
        """Forget the connection: it leaves every group; pending client results fail."""

    @abstractmethod
    async def send_all(self, message: InvocationMessage, excluded: Collection[str] = ()) -> None:
        """Every connection of the hub except the `excluded` connection ids."""

    @abstractmethod
    async def send_connection(self, connection_id: str, message: InvocationMessage) -> None: ...

    @abstractmethod
    async def send_connections(
        self, connection_ids: Collection[str], message: InvocationMessage
    ) -> None: ...

    @abstractmethod
    async def send_group(
        self, group: str, message: InvocationMessage, excluded: Collection[str] = ()
    ) -> None:
        """Members of `group` (case-sensitive name) except the `excluded` connection ids."""

    @abstractmethod
    async def send_groups(self, groups: Collection[str], message: InvocationMessage) -> None:
        """Members of each group; a connection in two listed groups gets two copies."""

    @abstractmethod
    async def send_user(self, user_id: str, message: InvocationMessage) -> None: ...

    @abstractmethod
    async def send_users(self, user_ids: Collection[str], message: InvocationMessage) -> None: ...

    @abstractmethod
    async def add_to_group(self, connection_id: str, group: str) -> None:
        """Idempotent; unknown connection ids are ignored."""

    @abstractmethod
    async def remove_from_group(self, connection_id: str, group: str) -> None:
        """Idempotent; unknown connection ids are ignored."""

    def connection_groups(self, connection_id: str) -> Collection[str] | None:
        """The groups a connection served by this instance is in (a live view: read it, do
        not keep or change it). None when the manager does not track them; then `Groups`
        cannot enforce `HubOptions.maximum_groups_per_connection`."""
        return None

    @abstractmethod
    async def add_user_to_group(self, user_id: str, group: str) -> None:
        """Every live connection of `user_id`, on every instance, joins `group`."""

    @abstractmethod
    async def remove_user_from_group(self, user_id: str, group: str) -> None:
        """Every live connection of `user_id`, on every instance, leaves `group`."""

    @abstractmethod
    async def invoke_connection(
        self, connection_id: str, target: str, arguments: tuple[Any, ...], timeout: float | None
    ) -> Any:
        """Invoke `target` on one client and await its result (client results, 9.5).

        Raises ClientResultError with the reference texts: unknown connection, disconnect
        while waiting, the client's own error, or a timeout.
        """

    @abstractmethod
    async def set_connection_result(
        self, connection_id: str, completion: CompletionMessage
    ) -> bool:
        """Deliver a client's Completion for a pending client result. False if not pending."""
