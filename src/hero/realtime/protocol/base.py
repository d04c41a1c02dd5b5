"""The HubProtocol interface shared by the JSON and MessagePack hub protocols."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from enum import IntFlag
from typing import Any, Protocol

from hero.realtime.protocol.messages import HubMessage


class TransferFormat(IntFlag):
    """What a transport can carry (docs/protocol.md §2.3: `transferFormats`)."""

    TEXT = 1
    BINARY = 2


class Framer(Protocol):
    """Incremental splitter of a byte stream into unframed message payloads."""

    @property
    def buffered(self) -> int: ...

    def feed(self, data: bytes) -> list[bytes]: ...


def encode_extra(value: Any) -> Any:
    """Encoder hook for application values msgspec does not know natively.

    Pydantic models become their (alias-keyed) dicts; objects exposing `to_wire()` use it.
    """
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(by_alias=True)
    to_wire = getattr(value, "to_wire", None)
    if callable(to_wire):
        return to_wire()
    raise TypeError(f"Objects of type {type(value).__name__} are not serializable")


class HubProtocol(ABC):
    """Turns hub messages into framed bytes and framed bytes into hub messages.

    Implementations are stateless and shared by every connection that uses them; per-connection
    state (partial frames) lives in the Framer from `new_framer`.
    """

    name: str
    version: int
    transfer_format: TransferFormat

    def is_version_supported(self, version: int) -> bool:
        """Any version up to the protocol's own is accepted (docs/protocol.md §4.1)."""
        return version <= self.version

    @abstractmethod
    def new_framer(self, max_message_size: int | None) -> Framer: ...

    @abstractmethod
    def parse(self, payload: bytes) -> HubMessage | None:
        """Decode one unframed payload. None for a message type this side ignores.

        Raises ProtocolError for anything malformed.
        """

    @abstractmethod
    def write(self, message: HubMessage) -> bytes:
        """Encode one message, framing included."""

    def parse_all(self, framer: Framer, data: bytes) -> list[HubMessage]:
        """Feed `data` to `framer` and decode every complete message (unknown types dropped)."""
        out: list[HubMessage] = []
        for payload in framer.feed(data):
            message = self.parse(payload)
            if message is not None:
                out.append(message)
        return out

    def write_many(self, messages: Sequence[HubMessage]) -> bytes:
        return b"".join(self.write(m) for m in messages)
