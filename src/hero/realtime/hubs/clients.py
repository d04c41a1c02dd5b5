"""Client proxies: who a message goes to (docs/protocol.md §9.6).

Every proxy sends a non-blocking Invocation (no invocation id) through the lifetime
manager, which serialises it once per protocol. `SingleClientProxy.invoke` is the one
call that waits for an answer (client results, 9.5).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from hero.realtime.hubs.delivery import Audience, Delivery, apply
from hero.realtime.hubs.group_names import GroupLimitError, GroupNameError, group_name_problem
from hero.realtime.lifetime import HubLifetimeManager
from hero.realtime.runtime import (
    HubOptions,
    LimitObserver,
    invoking_connection_id,
    release_invocation_slot,
)


class ClientProxy:
    """A set of recipients; `await proxy.send("Target", arg1, arg2)`.

    `delivery(target, *arguments)` gives the same send as a value (see `Delivery`), to store
    or relay instead of sending now.
    """

    __slots__ = ("_lifetime", "audience")

    def __init__(self, lifetime: HubLifetimeManager, audience: Audience) -> None:
        self._lifetime = lifetime
        self.audience = audience

    def delivery(self, target: str, *arguments: Any, ephemeral: bool = False) -> Delivery:
        return Delivery(self.audience, target, arguments, ephemeral)

    async def send(self, target: str, *arguments: Any, ephemeral: bool = False) -> None:
        """Invoke `target(*arguments)` on every recipient; returns once queued everywhere.

        `ephemeral=True` for news that only matters while fresh (typing, presence): a
        recipient that is behind drops it instead of queueing it (see `Delivery`)."""
        await apply(self._lifetime, Delivery(self.audience, target, arguments, ephemeral))


class SingleClientProxy(ClientProxy):
    """One connection: can also `invoke` a client method and await its result."""

    __slots__ = ("_connection_id",)

    def __init__(self, lifetime: HubLifetimeManager, connection_id: str) -> None:
        super().__init__(lifetime, Audience.connection(connection_id))
        self._connection_id = connection_id

    async def invoke(self, target: str, *arguments: Any, timeout: float | None = None) -> Any:
        """Call a client handler and return what it returns.

        Raises ClientResultError (`Connection '<id>' disconnected.`, the client's own error
        text, ...). Inside a hub method the invocation slot is given back first, so the
        caller's own Completion can be read while waiting.
        """
        release_invocation_slot()
        return await self._lifetime.invoke_connection(
            self._connection_id, target, tuple(arguments), timeout
        )


class Clients:
    """Targets available anywhere (hub methods and HubContext)."""

    __slots__ = ("_lifetime",)

    def __init__(self, lifetime: HubLifetimeManager) -> None:
        self._lifetime = lifetime

    def _proxy(self, audience: Audience) -> ClientProxy:
        return ClientProxy(self._lifetime, audience)

    @property
    def all(self) -> ClientProxy:
        return self._proxy(Audience.all())

    def all_except(self, connection_ids: Collection[str]) -> ClientProxy:
        return self._proxy(Audience.all(tuple(connection_ids)))

    def client(self, connection_id: str) -> SingleClientProxy:
        return SingleClientProxy(self._lifetime, connection_id)

    def clients(self, connection_ids: Collection[str]) -> ClientProxy:
        return self._proxy(Audience.connections(tuple(connection_ids)))

    def group(self, name: str) -> ClientProxy:
        return self._proxy(Audience.group(name))

    def groups(self, names: Collection[str]) -> ClientProxy:
        return self._proxy(Audience.groups(tuple(names)))

    def group_except(self, name: str, connection_ids: Collection[str]) -> ClientProxy:
        return self._proxy(Audience.group(name, tuple(connection_ids)))

    def user(self, user_id: str) -> ClientProxy:
        return self._proxy(Audience.user(user_id))

    def users(self, user_ids: Collection[str]) -> ClientProxy:
        return self._proxy(Audience.users(tuple(user_ids)))


class CallerClients(Clients):
    """Targets relative to the connection that invoked the hub method."""

    __slots__ = ("_caller",)

    def __init__(self, lifetime: HubLifetimeManager, caller_id: str) -> None:
        super().__init__(lifetime)
        self._caller = caller_id

    @property
    def caller(self) -> SingleClientProxy:
        return self.client(self._caller)

    @property
    def others(self) -> ClientProxy:
        return self.all_except((self._caller,))

    def others_in_group(self, name: str) -> ClientProxy:
        return self.group_except(name, (self._caller,))


class Groups:
    """Group membership by connection id (or all connections of a user).

    Every name is checked first (`check_name`), before any backplane work. A join made from
    a hub method for the calling connection itself is refused with `GroupLimitError` once
    that connection is in `maximum_groups_per_connection` groups; joins made elsewhere
    (`on_connected`, server code, for another connection) count but are never refused.
    """

    __slots__ = ("_lifetime", "_max_groups", "_max_length", "_observer")

    def __init__(
        self,
        lifetime: HubLifetimeManager,
        options: HubOptions | None = None,
        observer: LimitObserver | None = None,
    ) -> None:
        options = options or HubOptions()
        self._lifetime = lifetime
        self._max_length = options.maximum_group_name_length
        self._max_groups = options.maximum_groups_per_connection
        self._observer = observer or LimitObserver()

    def check_name(self, group: str) -> None:
        """Raise GroupNameError (a HubException and a ValueError) for a name that is empty,
        too long or holds a control character."""
        problem = group_name_problem(group, self._max_length)
        if problem is not None:
            self._observer.group_name_refused()
            raise GroupNameError(problem)

    def _check_room(self, connection_id: str, group: str) -> None:
        limit = self._max_groups
        if not limit or invoking_connection_id() != connection_id:
            return
        joined = self._lifetime.connection_groups(connection_id)
        if joined is not None and len(joined) >= limit and group not in joined:
            self._observer.group_limit_reached()
            raise GroupLimitError(
                f"A connection can be in at most {limit} groups; leave one to join another."
            )

    async def add(self, connection_id: str, group: str) -> None:
        self.check_name(group)
        self._check_room(connection_id, group)
        await self._lifetime.add_to_group(connection_id, group)

    async def remove(self, connection_id: str, group: str) -> None:
        self.check_name(group)
        await self._lifetime.remove_from_group(connection_id, group)

    async def add_user(self, user_id: str, group: str) -> None:
        """Every live connection of the user joins `group`."""
        self.check_name(group)
        await self._lifetime.add_user_to_group(user_id, group)

    async def remove_user(self, user_id: str, group: str) -> None:
        self.check_name(group)
        await self._lifetime.remove_user_from_group(user_id, group)
