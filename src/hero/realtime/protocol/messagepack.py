"""The MessagePack hub protocol, "messagepack", Binary transfer format (docs/protocol.md §6).

Each message is a MessagePack array whose first element is the message type, framed with a
VarInt length prefix. Map keys of application payloads are written as given (the JSON
protocol's camelCase DTO keys are kept, which is what the JS msgpack client expects to read).
"""

from __future__ import annotations

from typing import Any

import msgspec

from hero.realtime.protocol.base import Framer, HubProtocol, TransferFormat, encode_extra
from hero.realtime.protocol.errors import DECODE_ERRORS, ProtocolError
from hero.realtime.protocol.framing import BinaryFramer, encode_varint
from hero.realtime.protocol.messages import (
    AckMessage,
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    HubMessage,
    InvocationMessage,
    MessageType,
    PingMessage,
    SequenceMessage,
    StreamInvocationMessage,
    StreamItemMessage,
)

_PING_BYTES = b"\x02\x91\x06"
_ERROR_RESULT = 1
_VOID_RESULT = 2
_NON_VOID_RESULT = 3


def _at(arr: list[Any], index: int, what: str) -> Any:
    if index >= len(arr):
        raise ProtocolError(f"Reading '{what}' as part of a message failed: too few elements.")
    return arr[index]


def _string(arr: list[Any], index: int, what: str) -> str:
    value = _at(arr, index, what)
    if not isinstance(value, str):
        raise ProtocolError(f"Reading '{what}' as String failed.")
    return value


def _target(arr: list[Any]) -> str:
    target = _string(arr, 3, "target")
    if not target:
        raise ProtocolError("An invocation requires a non-empty target.")
    return target


def _optional_id(arr: list[Any], index: int) -> str | None:
    value = _at(arr, index, "invocationId")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ProtocolError("Reading 'invocationId' as String failed.")
    return value


def _headers(arr: list[Any], index: int) -> dict[str, str]:
    value = _at(arr, index, "headers")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError("Reading 'headers' as Map failed.")
    # Strings to strings, as .NET reads it (str() of a deeply nested value could raise
    # RecursionError here, outside the decoder).
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ProtocolError("Reading a header as String failed.")
    return value


def _array(arr: list[Any], index: int, what: str) -> list[Any]:
    value = _at(arr, index, what)
    if not isinstance(value, list):
        raise ProtocolError(f"Reading '{what}' as Array failed.")
    return value


def _stream_ids(arr: list[Any], index: int) -> tuple[str, ...]:
    if index >= len(arr) or arr[index] is None:
        return ()
    ids = _array(arr, index, "streamIds")
    if not all(isinstance(s, str) for s in ids):
        raise ProtocolError("Reading 'streamIds' as Array of String failed.")
    return tuple(ids)


def _integer(arr: list[Any], index: int, what: str) -> int:
    value = _at(arr, index, what)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(f"Reading '{what}' as Integer failed.")
    return value


class MessagePackHubProtocol(HubProtocol):
    """Arrays as in docs/protocol.md §6.3; accepts the 5-element Invocation the JS client sends."""

    name = "messagepack"
    version = 2
    transfer_format = TransferFormat.BINARY

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder(enc_hook=encode_extra)
        self._decoder = msgspec.msgpack.Decoder()

    def new_framer(self, max_message_size: int | None) -> Framer:
        return BinaryFramer(max_message_size)

    def parse(self, payload: bytes) -> HubMessage | None:
        try:
            arr = self._decoder.decode(payload)
        except DECODE_ERRORS as exc:
            raise ProtocolError(f"Error reading MessagePack: {exc}") from exc
        if not isinstance(arr, list) or not arr:
            raise ProtocolError("Message is not a non-empty MessagePack array.")
        kind = arr[0]
        if not isinstance(kind, int) or isinstance(kind, bool):
            raise ProtocolError("Reading 'messageType' as Integer failed.")
        if kind == MessageType.INVOCATION:
            return InvocationMessage(
                headers=_headers(arr, 1),
                invocation_id=_optional_id(arr, 2),
                target=_target(arr),
                arguments=tuple(_array(arr, 4, "arguments")),
                stream_ids=_stream_ids(arr, 5),
            )
        if kind == MessageType.STREAM_INVOCATION:
            invocation_id = _optional_id(arr, 2)
            if invocation_id is None:
                raise ProtocolError("A StreamInvocation requires an invocation id.")
            return StreamInvocationMessage(
                headers=_headers(arr, 1),
                invocation_id=invocation_id,
                target=_target(arr),
                arguments=tuple(_array(arr, 4, "arguments")),
                stream_ids=_stream_ids(arr, 5),
            )
        if kind == MessageType.STREAM_ITEM:
            return StreamItemMessage(
                headers=_headers(arr, 1),
                invocation_id=_string(arr, 2, "invocationId"),
                item=_at(arr, 3, "item"),
            )
        if kind == MessageType.COMPLETION:
            headers = _headers(arr, 1)
            invocation_id = _string(arr, 2, "invocationId")
            result_kind = _integer(arr, 3, "resultKind")
            if result_kind == _ERROR_RESULT:
                error = _at(arr, 4, "error")
                if not isinstance(error, str):
                    raise ProtocolError("Reading 'error' as String failed.")
                return CompletionMessage(invocation_id=invocation_id, error=error, headers=headers)
            if result_kind == _VOID_RESULT:
                return CompletionMessage(invocation_id=invocation_id, headers=headers)
            if result_kind == _NON_VOID_RESULT:
                return CompletionMessage(
                    invocation_id=invocation_id,
                    result=_at(arr, 4, "result"),
                    has_result=True,
                    headers=headers,
                )
            raise ProtocolError("Invalid invocation result kind.")
        if kind == MessageType.CANCEL_INVOCATION:
            return CancelInvocationMessage(
                headers=_headers(arr, 1), invocation_id=_string(arr, 2, "invocationId")
            )
        if kind == MessageType.PING:
            return PingMessage()
        if kind == MessageType.CLOSE:
            error = _at(arr, 1, "error")
            if error is not None and not isinstance(error, str):
                raise ProtocolError("Reading 'error' as String failed.")
            allow = arr[2] if len(arr) > 2 else False
            return CloseMessage(error=error, allow_reconnect=allow is True)
        if kind == MessageType.ACK:
            return AckMessage(sequence_id=_integer(arr, 1, "sequenceId"))
        if kind == MessageType.SEQUENCE:
            return SequenceMessage(sequence_id=_integer(arr, 1, "sequenceId"))
        return None

    def write(self, message: HubMessage) -> bytes:
        if isinstance(message, PingMessage):
            return _PING_BYTES
        body = self._encoder.encode(self._to_wire(message))
        return encode_varint(len(body)) + body

    @staticmethod
    def _to_wire(message: HubMessage) -> list[Any]:
        if isinstance(message, InvocationMessage | StreamInvocationMessage):
            kind = 1 if isinstance(message, InvocationMessage) else 4
            return [
                kind,
                message.headers,
                message.invocation_id,
                message.target,
                list(message.arguments),
                list(message.stream_ids),
            ]
        if isinstance(message, StreamItemMessage):
            return [2, message.headers, message.invocation_id, message.item]
        if isinstance(message, CompletionMessage):
            if message.error is not None:
                return [3, message.headers, message.invocation_id, _ERROR_RESULT, message.error]
            if message.has_result:
                return [3, message.headers, message.invocation_id, _NON_VOID_RESULT, message.result]
            return [3, message.headers, message.invocation_id, _VOID_RESULT]
        if isinstance(message, CancelInvocationMessage):
            return [5, message.headers, message.invocation_id]
        if isinstance(message, CloseMessage):
            return [7, message.error, message.allow_reconnect]
        if isinstance(message, AckMessage):
            return [8, message.sequence_id]
        if isinstance(message, SequenceMessage):
            return [9, message.sequence_id]
        raise TypeError(f"cannot write {type(message).__name__}")  # pragma: no cover
