"""Exceptions raised by the sans-I/O protocol layer."""

import msgspec

DECODE_ERRORS: tuple[type[Exception], ...] = (
    msgspec.DecodeError,
    UnicodeDecodeError,  # invalid UTF-8 inside a string
    RecursionError,  # absurdly deep nesting (a few KB of brackets)
)
"""What the msgspec decoders raise for malformed input; all become ProtocolError."""


class ProtocolError(Exception):
    """Malformed input: the peer broke the wire protocol (a connection-level error)."""


class MessageTooLargeError(ProtocolError):
    """An incoming message (framing included) exceeded the configured maximum size."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The maximum message size of {limit}B was exceeded. "
            "The message size can be configured in the hub options."
        )
        self.limit = limit


class HandshakeError(ProtocolError):
    """The handshake request could not be accepted; the text goes back to the client."""
