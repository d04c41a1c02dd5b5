"""Hub protocol messages (docs/protocol.md §5.2), one frozen dataclass per message type.

These objects are protocol-neutral: the JSON and MessagePack hub protocols both read and
write them. Arguments, items and results are plain Python values (already bound or not yet
bound to hub-method parameter types).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class MessageType(IntEnum):
    """The `type` discriminator of every hub message (spec: HubProtocol.md)."""

    INVOCATION = 1
    STREAM_ITEM = 2
    COMPLETION = 3
    STREAM_INVOCATION = 4
    CANCEL_INVOCATION = 5
    PING = 6
    CLOSE = 7
    ACK = 8
    SEQUENCE = 9


Headers = dict[str, str]


@dataclass(frozen=True, slots=True)
class InvocationMessage:
    """Type 1. `invocation_id is None` means non-blocking: the callee sends nothing back."""

    target: str
    arguments: tuple[Any, ...] = ()
    invocation_id: str | None = None
    stream_ids: tuple[str, ...] = ()
    headers: Headers = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EphemeralInvocationMessage(InvocationMessage):
    """An Invocation that is news only while it is fresh (typing, presence): on the wire it is
    a plain Invocation, but a connection that is behind with its reading drops it instead of
    queueing it, and a suspended stateful connection never replays it."""


@dataclass(frozen=True, slots=True)
class StreamInvocationMessage:
    """Type 4: the client asks for a server-to-client stream. The id is always present."""

    invocation_id: str
    target: str
    arguments: tuple[Any, ...] = ()
    stream_ids: tuple[str, ...] = ()
    headers: Headers = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StreamItemMessage:
    """Type 2: one item of a stream, in either direction."""

    invocation_id: str
    item: Any
    headers: Headers = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CompletionMessage:
    """Type 3. At most one of `error` / `result`; `has_result` distinguishes `null` from void.

    A stream's final completion has neither (`has_result=False`, `error=None`).
    """

    invocation_id: str
    error: str | None = None
    result: Any = None
    has_result: bool = False
    headers: Headers = field(default_factory=dict)

    @classmethod
    def with_result(cls, invocation_id: str, result: Any) -> CompletionMessage:
        return cls(invocation_id=invocation_id, result=result, has_result=True)

    @classmethod
    def with_error(cls, invocation_id: str, error: str) -> CompletionMessage:
        return cls(invocation_id=invocation_id, error=error)

    @classmethod
    def empty(cls, invocation_id: str) -> CompletionMessage:
        return cls(invocation_id=invocation_id)


@dataclass(frozen=True, slots=True)
class CancelInvocationMessage:
    """Type 5: the client no longer wants the results of a stream invocation."""

    invocation_id: str
    headers: Headers = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PingMessage:
    """Type 6: keep-alive; carries nothing."""


@dataclass(frozen=True, slots=True)
class CloseMessage:
    """Type 7: the sender is closing; `allow_reconnect` tells the JS client to reconnect."""

    error: str | None = None
    allow_reconnect: bool = False


@dataclass(frozen=True, slots=True)
class AckMessage:
    """Type 8 (stateful reconnect): highest trackable message number processed."""

    sequence_id: int


@dataclass(frozen=True, slots=True)
class SequenceMessage:
    """Type 9 (stateful reconnect): number of the first message about to be replayed."""

    sequence_id: int


HubMessage = (
    InvocationMessage
    | StreamInvocationMessage
    | StreamItemMessage
    | CompletionMessage
    | CancelInvocationMessage
    | PingMessage
    | CloseMessage
    | AckMessage
    | SequenceMessage
)

PING = PingMessage()

TRACKABLE_TYPES = (
    InvocationMessage,
    StreamInvocationMessage,
    StreamItemMessage,
    CompletionMessage,
    CancelInvocationMessage,
)
"""Messages counted by stateful reconnect (docs/protocol.md §8.2)."""
