"""The handshake (docs/protocol.md §4): always JSON, always the first bytes each way."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from hero.realtime.protocol.errors import (
    DECODE_ERRORS,
    HandshakeError,
    MessageTooLargeError,
    ProtocolError,
)
from hero.realtime.protocol.framing import RECORD_SEPARATOR_BYTES

HANDSHAKE_OK = b"{}\x1e"
"""The success response, exactly `7B 7D 1E`."""

HANDSHAKE_CANCELED = "Handshake was canceled."
HANDSHAKE_UNEXPECTED = "An unexpected error occurred during connection handshake."


@dataclass(frozen=True, slots=True)
class HandshakeRequest:
    protocol: str
    version: int


def parse_handshake(buffer: bytes, max_size: int | None) -> tuple[HandshakeRequest, bytes] | None:
    """Parse a handshake request from the start of `buffer`.

    Returns (request, remaining bytes) or None when the separator has not arrived yet.
    Raises MessageTooLargeError when more than `max_size` bytes arrived without a
    separator, HandshakeError for anything malformed.
    """
    pos = buffer.find(RECORD_SEPARATOR_BYTES)
    if pos < 0:
        if max_size is not None and len(buffer) > max_size:
            raise MessageTooLargeError(max_size)
        return None
    if max_size is not None and pos + 1 > max_size:
        raise MessageTooLargeError(max_size)
    try:
        obj = msgspec.json.decode(buffer[:pos])
    except DECODE_ERRORS as exc:
        raise HandshakeError(f"{HANDSHAKE_UNEXPECTED} InvalidDataException: {exc}") from exc
    if not isinstance(obj, dict):
        raise HandshakeError(f"{HANDSHAKE_UNEXPECTED} InvalidDataException: expected an object.")
    protocol = obj.get("protocol")
    version = obj.get("version")
    if not isinstance(protocol, str):
        raise HandshakeError(
            f"{HANDSHAKE_UNEXPECTED} InvalidDataException: Missing required property 'protocol'."
        )
    if not isinstance(version, int) or isinstance(version, bool):
        raise HandshakeError(
            f"{HANDSHAKE_UNEXPECTED} InvalidDataException: Missing required property 'version'."
        )
    return HandshakeRequest(protocol=protocol, version=version), buffer[pos + 1 :]


def encode_handshake_error(text: str) -> bytes:
    """`{"error":"<text>"}` + 0x1E."""
    return msgspec.json.encode({"error": text}) + RECORD_SEPARATOR_BYTES


def encode_handshake_request(protocol: str, version: int) -> bytes:
    """What a client sends; used by the test kit."""
    return msgspec.json.encode({"protocol": protocol, "version": version}) + RECORD_SEPARATOR_BYTES


def parse_handshake_response(buffer: bytes) -> tuple[str | None, bytes] | None:
    """Client side: (error or None, remaining bytes), or None if incomplete."""
    pos = buffer.find(RECORD_SEPARATOR_BYTES)
    if pos < 0:
        return None
    try:
        obj = msgspec.json.decode(buffer[:pos])
    except DECODE_ERRORS as exc:
        raise ProtocolError("Invalid handshake response") from exc
    if not isinstance(obj, dict) or "type" in obj:
        raise ProtocolError("Expected a handshake response from the server.")
    error = obj.get("error")
    return (str(error) if error is not None else None), buffer[pos + 1 :]
