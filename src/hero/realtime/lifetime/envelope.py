"""What instances send each other over the Valkey backplane: typed, MessagePack-encoded.

Each envelope is a MessagePack array `[kind, origin, ...fields]` (msgspec structs, array-like
and tagged with `kind`). `origin` is the sending instance's server name; an instance ignores
its own envelopes. An invocation's `payload` holds the complete framed wire message for every
configured hub protocol (`{"json": bytes, "messagepack": bytes}`), so receivers write bytes
without re-encoding.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "ADD",
    "REMOVE",
    "Ack",
    "ClientInvoke",
    "Envelope",
    "EphemeralInvoke",
    "GroupMove",
    "Invoke",
    "Result",
    "decode",
    "encode",
]

ADD = 1
REMOVE = 2


class _Base(msgspec.Struct, array_like=True, frozen=True):
    origin: str


class Invoke(_Base, tag=1, frozen=True):
    """An invocation for the channel's recipients, except the `excluded` connection ids."""

    excluded: list[str]
    payload: dict[str, bytes]


class EphemeralInvoke(Invoke, tag=6, frozen=True):
    """An `Invoke` of an ephemeral message (`EphemeralInvocationMessage`): a recipient that
    is behind drops it. A tag of its own keeps `Invoke`'s wire form unchanged; an instance
    of an older version cannot read it and drops it, which an ephemeral message allows."""


class GroupMove(_Base, tag=2, frozen=True):
    """Add (`ADD`) or remove (`REMOVE`) a connection, or every connection of a user, to or
    from `group`; the receiver acks `request` to the origin's server channel."""

    request: int
    action: int
    group: str
    connection_id: str | None
    user_id: str | None


class Ack(_Base, tag=3, frozen=True):
    request: int


class ClientInvoke(_Base, tag=4, frozen=True):
    """A client-result invocation for `connection_id`; the answer goes back as a Result."""

    invocation_id: str
    connection_id: str
    payload: dict[str, bytes]


class Result(_Base, tag=5, frozen=True):
    invocation_id: str
    error: str | None
    has_result: bool
    result: Any


Envelope = Invoke | EphemeralInvoke | GroupMove | Ack | ClientInvoke | Result

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope)


def encode(envelope: Envelope) -> bytes:
    return _encoder.encode(envelope)


def decode(data: bytes) -> Envelope:
    """Raises msgspec.ValidationError / DecodeError for anything that is not an envelope."""
    return _decoder.decode(data)
