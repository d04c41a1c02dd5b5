"""What instances say to each other when one relays a request or a socket to another.

Every message names the relayed exchange by `rid` (`<origin instance>.<counter>`, unique per
origin). HTTP requests use `Request`, `Start`, `Chunk`, `Credit` and `Cancel`; WebSockets use
`Socket` to open, `Release`, `Moved` or `Accepted` (or `Start`/`Chunk`, a refusal) to answer,
then `Frame`, `Credit` and `Closed` in both directions. `Forget` tells the instance that
issued a connection token that the instance it released the connection to is done with it.
"""

from __future__ import annotations

import msgspec


class Request(msgspec.Struct, tag="req", array_like=True):
    rid: str
    origin: str
    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


class Start(msgspec.Struct, tag="start", array_like=True):
    """A response starts (or a WebSocket upgrade is refused with this status)."""

    rid: str
    status: int
    headers: list[tuple[bytes, bytes]]


class Chunk(msgspec.Struct, tag="body", array_like=True):
    rid: str
    data: bytes
    more: bool


class Credit(msgspec.Struct, tag="credit", array_like=True):
    """The receiver has passed one chunk or frame on: the sender may send one more."""

    rid: str


class Cancel(msgspec.Struct, tag="cancel", array_like=True):
    rid: str


class Socket(msgspec.Struct, tag="ws", array_like=True):
    """A WebSocket for a connection the addressee issued (a stateful resume, typically)."""

    rid: str
    origin: str
    token: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]


class Release(msgspec.Struct, tag="release", array_like=True):
    """The addressee does not hold the connection (any more): the asking instance takes it;
    `stateful` when the client negotiated stateful reconnect."""

    rid: str
    stateful: bool = False


class Moved(msgspec.Struct, tag="moved", array_like=True):
    """The connection was released to `holder` earlier: ask there."""

    rid: str
    holder: str


class Accepted(msgspec.Struct, tag="accept", array_like=True):
    rid: str


class Frame(msgspec.Struct, tag="frame", array_like=True):
    rid: str
    data: bytes
    text: bool


class Closed(msgspec.Struct, tag="closed", array_like=True):
    """One side of a relayed socket ended, with a WebSocket close code."""

    rid: str
    code: int


class Forget(msgspec.Struct, tag="forget", array_like=True):
    """The connection named by `token`, released by the addressee, has ended."""

    token: str


Message = (
    Request
    | Start
    | Chunk
    | Credit
    | Cancel
    | Socket
    | Release
    | Moved
    | Accepted
    | Frame
    | Closed
    | Forget
)
SocketReply = Release | Moved | Accepted | Start | Chunk | Frame | Closed
"""What can arrive for a relayed socket."""

encoder = msgspec.msgpack.Encoder()
decoder = msgspec.msgpack.Decoder(Message)
