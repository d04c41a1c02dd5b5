"""Deliveries as values: who a send goes to and what it carries, before anything is sent.

A `Delivery` (an invocation for an `Audience`) and a `GroupMove` (every connection of a user
joins or leaves a group) are small frozen values. `to_wire()` turns one into plain JSON data
and `operation_from_wire()` turns it back, so application code can store a send (a
transactional outbox), relay it, or replay it, and `apply()` performs it later through a
lifetime manager. The `clients.group(...).send(...)` spelling of the hub API builds these
values and applies them at once.

Arguments must be JSON-serialisable for `to_wire()` (MessagePack clients receive the same
values); a send applied directly, without storing it, may carry anything the hub protocols can
encode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hero.realtime.lifetime import HubLifetimeManager
from hero.realtime.protocol import EphemeralInvocationMessage, InvocationMessage


class AudienceKind(StrEnum):
    """Who a send reaches (docs/protocol.md §9.6's client proxies)."""

    ALL = "all"
    CONNECTION = "connection"
    CONNECTIONS = "connections"
    GROUP = "group"
    GROUPS = "groups"
    USER = "user"
    USERS = "users"


_TAKES_EXCLUDED = frozenset({AudienceKind.ALL, AudienceKind.GROUP})
_SINGLE = frozenset({AudienceKind.CONNECTION, AudienceKind.GROUP, AudienceKind.USER})


class DeliveryFormatError(ValueError):
    """Stored data that is not a delivery, group move or audience."""


@dataclass(frozen=True, slots=True)
class Audience:
    """The recipients of a send.

    Invariants: `names` is empty for ALL, holds exactly one name for CONNECTION, GROUP and
    USER, any number for the plural kinds; `excluded` (connection ids) is empty unless the
    kind is ALL or GROUP.
    """

    kind: AudienceKind
    names: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind is AudienceKind.ALL and self.names:
            raise ValueError("an ALL audience has no names")
        if self.kind in _SINGLE and len(self.names) != 1:
            raise ValueError(f"a {self.kind.value} audience names exactly one recipient")
        if self.excluded and self.kind not in _TAKES_EXCLUDED:
            raise ValueError(f"a {self.kind.value} audience cannot exclude connections")

    @classmethod
    def all(cls, excluded: tuple[str, ...] = ()) -> Audience:
        return cls(AudienceKind.ALL, (), excluded)

    @classmethod
    def group(cls, name: str, excluded: tuple[str, ...] = ()) -> Audience:
        return cls(AudienceKind.GROUP, (name,), excluded)

    @classmethod
    def groups(cls, names: tuple[str, ...]) -> Audience:
        return cls(AudienceKind.GROUPS, names)

    @classmethod
    def user(cls, user_id: str) -> Audience:
        return cls(AudienceKind.USER, (user_id,))

    @classmethod
    def users(cls, user_ids: tuple[str, ...]) -> Audience:
        return cls(AudienceKind.USERS, user_ids)

    @classmethod
    def connection(cls, connection_id: str) -> Audience:
        return cls(AudienceKind.CONNECTION, (connection_id,))

    @classmethod
    def connections(cls, connection_ids: tuple[str, ...]) -> Audience:
        return cls(AudienceKind.CONNECTIONS, connection_ids)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"kind": self.kind.value, "names": list(self.names)}
        if self.excluded:
            wire["excluded"] = list(self.excluded)
        return wire

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Audience:
        try:
            kind = AudienceKind(data["kind"])
            names = tuple(str(n) for n in data.get("names", ()))
            excluded = tuple(str(c) for c in data.get("excluded", ()))
            return cls(kind, names, excluded)
        except (KeyError, TypeError, ValueError) as exc:
            raise DeliveryFormatError(f"not an audience: {exc}") from None


@dataclass(frozen=True, slots=True)
class Delivery:
    """Invoke `target(*arguments)` on every connection of `audience` (no answer expected).

    `ephemeral`: news only while fresh (typing, presence). A recipient that is behind with
    its reading drops it instead of queueing it (so it is never the reason a slow client is
    disconnected), and a stateful reconnect does not replay it. Durable sends (the default)
    are queued, and a client that lets them pile up past its send queue is disconnected with
    `allowReconnect`, to catch up through the application's history.
    """

    audience: Audience
    target: str
    arguments: tuple[Any, ...] = ()
    ephemeral: bool = False

    def message(self) -> InvocationMessage:
        kind = EphemeralInvocationMessage if self.ephemeral else InvocationMessage
        return kind(target=self.target, arguments=self.arguments)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "op": "send",
            "audience": self.audience.to_wire(),
            "target": self.target,
            "arguments": list(self.arguments),
        }
        if self.ephemeral:
            wire["ephemeral"] = True
        return wire


class GroupMoveKind(StrEnum):
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class GroupMove:
    """Every live connection of `user_id`, on every instance, joins or leaves `group`."""

    kind: GroupMoveKind
    user_id: str
    group: str

    @classmethod
    def add(cls, user_id: str, group: str) -> GroupMove:
        return cls(GroupMoveKind.ADD, user_id, group)

    @classmethod
    def remove(cls, user_id: str, group: str) -> GroupMove:
        return cls(GroupMoveKind.REMOVE, user_id, group)

    def to_wire(self) -> dict[str, Any]:
        return {"op": "group", "kind": self.kind.value, "user": self.user_id, "group": self.group}


Operation = Delivery | GroupMove
"""Anything HubContext can apply later: a send or a group move."""


def operation_from_wire(data: Mapping[str, Any]) -> Operation:
    """The inverse of `to_wire()`; raises DeliveryFormatError for anything else."""
    try:
        op = data["op"]
        if op == "send":
            arguments = data.get("arguments", [])
            if not isinstance(arguments, list):
                raise TypeError("arguments must be a list")
            target = data["target"]
            if not isinstance(target, str) or not target:
                raise TypeError("target must be a non-empty string")
            ephemeral = data.get("ephemeral", False)
            if not isinstance(ephemeral, bool):
                raise TypeError("ephemeral must be a boolean")
            return Delivery(
                Audience.from_wire(data["audience"]), target, tuple(arguments), ephemeral
            )
        if op == "group":
            return GroupMove(GroupMoveKind(data["kind"]), str(data["user"]), str(data["group"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DeliveryFormatError(f"not a delivery: {exc}") from None
    raise DeliveryFormatError(f"unknown operation {op!r}")


async def apply(lifetime: HubLifetimeManager, operation: Operation) -> None:
    """Perform `operation` through `lifetime`; returns once every target instance has it
    (queued for local connections, published or acknowledged for remote ones)."""
    if isinstance(operation, GroupMove):
        if operation.kind is GroupMoveKind.ADD:
            await lifetime.add_user_to_group(operation.user_id, operation.group)
        else:
            await lifetime.remove_user_from_group(operation.user_id, operation.group)
        return
    audience = operation.audience
    message = operation.message()
    kind = audience.kind
    if kind is AudienceKind.ALL:
        await lifetime.send_all(message, audience.excluded)
    elif kind is AudienceKind.GROUP:
        await lifetime.send_group(audience.names[0], message, audience.excluded)
    elif kind is AudienceKind.GROUPS:
        await lifetime.send_groups(audience.names, message)
    elif kind is AudienceKind.USER:
        await lifetime.send_user(audience.names[0], message)
    elif kind is AudienceKind.USERS:
        await lifetime.send_users(audience.names, message)
    elif kind is AudienceKind.CONNECTION:
        await lifetime.send_connection(audience.names[0], message)
    else:
        await lifetime.send_connections(audience.names, message)
