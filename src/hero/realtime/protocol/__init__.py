"""Sans-I/O SignalR hub protocol: bytes in, message objects out, and back.

Never awaits, never reads a clock, never imports asyncio, ASGI or Valkey.
"""

from hero.realtime.protocol.base import Framer, HubProtocol, TransferFormat
from hero.realtime.protocol.errors import HandshakeError, MessageTooLargeError, ProtocolError
from hero.realtime.protocol.json import JsonHubProtocol
from hero.realtime.protocol.messagepack import MessagePackHubProtocol
from hero.realtime.protocol.messages import (
    PING,
    AckMessage,
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    EphemeralInvocationMessage,
    HubMessage,
    InvocationMessage,
    MessageType,
    PingMessage,
    SequenceMessage,
    StreamInvocationMessage,
    StreamItemMessage,
)
from hero.realtime.protocol.serialized import SerializedMessage

__all__ = [
    "PING",
    "AckMessage",
    "CancelInvocationMessage",
    "CloseMessage",
    "CompletionMessage",
    "EphemeralInvocationMessage",
    "Framer",
    "HandshakeError",
    "HubMessage",
    "HubProtocol",
    "InvocationMessage",
    "JsonHubProtocol",
    "MessagePackHubProtocol",
    "MessageTooLargeError",
    "MessageType",
    "PingMessage",
    "ProtocolError",
    "SequenceMessage",
    "SerializedMessage",
    "StreamInvocationMessage",
    "StreamItemMessage",
    "TransferFormat",
]
