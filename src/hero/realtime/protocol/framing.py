"""Message framing (docs/protocol.md §§5.1 and 6.2), incremental and size-capped.

Both framers take bytes in arbitrary chunks (WebSocket frames, POST bodies) and return the
complete message payloads found so far. The size limit counts framing too and is enforced
before a message is buffered: an over-long message is refused as soon as its size is known
(binary: from the length prefix; text: once more than the limit is buffered without a
separator).
"""

from __future__ import annotations

from hero.realtime.protocol.errors import MessageTooLargeError, ProtocolError

RECORD_SEPARATOR = 0x1E
RECORD_SEPARATOR_BYTES = b"\x1e"
_MAX_VARINT_BYTES = 5
_MAX_LENGTH = 2**31 - 1


class TextFramer:
    """Splits a byte stream at 0x1E. Payloads are returned without the separator."""

    __slots__ = ("_buffer", "_max_size")

    def __init__(self, max_message_size: int | None) -> None:
        self._buffer = bytearray()
        self._max_size = max_message_size

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add `data`; return every complete record now available, in order."""
        out: list[bytes] = []
        start = 0
        limit = self._max_size
        if self._buffer:
            pos = data.find(RECORD_SEPARATOR_BYTES)
            if pos < 0:
                self._buffer += data
                if limit is not None and len(self._buffer) > limit:
                    raise MessageTooLargeError(limit)
                return out
            record = bytes(self._buffer) + data[:pos]
            self._buffer.clear()
            if limit is not None and len(record) + 1 > limit:
                raise MessageTooLargeError(limit)
            out.append(record)
            start = pos + 1
        while True:
            pos = data.find(RECORD_SEPARATOR_BYTES, start)
            if pos < 0:
                break
            if limit is not None and pos - start + 1 > limit:
                raise MessageTooLargeError(limit)
            out.append(data[start:pos])
            start = pos + 1
        rest = len(data) - start
        if rest:
            if limit is not None and rest > limit:
                raise MessageTooLargeError(limit)
            self._buffer += data[start:]
        return out


def frame_text(payload: bytes) -> bytes:
    """Append the record separator. The payload must not contain 0x1E itself."""
    return payload + RECORD_SEPARATOR_BYTES


def encode_varint(length: int) -> bytes:
    """The length prefix of the binary framing: 7 bits per byte, low group first."""
    if length < 0 or length > _MAX_LENGTH:
        raise ValueError(f"length {length} cannot be framed")
    out = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def frame_binary(payload: bytes) -> bytes:
    return encode_varint(len(payload)) + payload


def decode_varint(data: bytes | bytearray, offset: int = 0) -> tuple[int, int] | None:
    """Read a length prefix at `offset`. Returns (value, prefix size), or None if incomplete.

    Raises ProtocolError for a prefix longer than five bytes or above 2**31-1.
    """
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        pos = offset + index
        if pos >= len(data):
            return None
        byte = data[pos]
        if index == _MAX_VARINT_BYTES - 1 and byte > 0x07:
            raise ProtocolError("Messages over 2GB in size are not supported.")
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, index + 1
    raise ProtocolError("Messages over 2GB in size are not supported.")  # pragma: no cover


class BinaryFramer:
    """Splits a byte stream of VarInt-length-prefixed messages; returns the payloads."""

    __slots__ = ("_buffer", "_max_size")

    def __init__(self, max_message_size: int | None) -> None:
        self._buffer = bytearray()
        self._max_size = max_message_size

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        buf = self._buffer
        buf += data
        offset = 0
        limit = self._max_size
        while offset < len(buf):
            header = decode_varint(buf, offset)
            if header is None:
                break
            length, prefix = header
            if limit is not None and length + prefix > limit:
                raise MessageTooLargeError(limit)
            end = offset + prefix + length
            if end > len(buf):
                break
            out.append(bytes(buf[offset + prefix : end]))
            offset = end
        if offset:
            del buf[:offset]
        return out
