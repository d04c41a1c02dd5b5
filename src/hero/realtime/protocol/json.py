"""The JSON hub protocol, "json", Text transfer format (docs/protocol.md §5)."""

from __future__ import annotations

from typing import Any

import msgspec

from hero.realtime.protocol.base import Framer, HubProtocol, TransferFormat, encode_extra
from hero.realtime.protocol.errors import DECODE_ERRORS, ProtocolError
from hero.realtime.protocol.framing import RECORD_SEPARATOR_BYTES, TextFramer
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

_PING_BYTES = b'{"type":6}\x1e'


def _required_str(obj: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or (not allow_empty and not value):
        raise ProtocolError(f"Missing required property '{key}'.")
    return value


def _optional_id(obj: dict[str, Any]) -> str | None:
    value = obj.get("invocationId")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ProtocolError("Expected 'invocationId' to be of type String.")
    return value


def _headers(obj: dict[str, Any]) -> dict[str, str]:
    value = obj.get("headers")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError("Expected 'headers' to be of type Object.")
    # A map of strings to strings, as .NET reads it. Converting other values with str()
    # would let a deeply nested value raise RecursionError here, outside the decoder.
    for key, item in value.items():
        if not isinstance(item, str):
            raise ProtocolError(f"Expected header {key!r} to be of type String.")
    return value


def _arguments(obj: dict[str, Any]) -> tuple[Any, ...]:
    value = obj.get("arguments")
    if not isinstance(value, list):
        raise ProtocolError("Missing required property 'arguments'.")
    return tuple(value)


def _stream_ids(obj: dict[str, Any]) -> tuple[str, ...]:
    value = obj.get("streamIds")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ProtocolError("Expected 'streamIds' to be an array of strings.")
    return tuple(value)


def _sequence_id(obj: dict[str, Any]) -> int:
    value = obj.get("sequenceId")
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError("Missing required property 'sequenceId'.")
    return value


class JsonHubProtocol(HubProtocol):
    """JSON objects terminated by 0x1E. Property order is free on input; output is compact."""

    name = "json"
    version = 2
    transfer_format = TransferFormat.TEXT

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder(enc_hook=encode_extra)
        self._decoder = msgspec.json.Decoder()

    def new_framer(self, max_message_size: int | None) -> Framer:
        return TextFramer(max_message_size)

    def parse(self, payload: bytes) -> HubMessage | None:
        try:
            obj = self._decoder.decode(payload)
        except DECODE_ERRORS as exc:
            raise ProtocolError(f"Error reading JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise ProtocolError("Unexpected JSON token; expected an object.")
        kind = obj.get("type")
        if not isinstance(kind, int) or isinstance(kind, bool):
            raise ProtocolError("Missing required property 'type'.")
        if kind == MessageType.INVOCATION:
            return InvocationMessage(
                target=_required_str(obj, "target"),
                arguments=_arguments(obj),
                invocation_id=_optional_id(obj),
                stream_ids=_stream_ids(obj),
                headers=_headers(obj),
            )
        if kind == MessageType.STREAM_INVOCATION:
            return StreamInvocationMessage(
                invocation_id=_required_str(obj, "invocationId"),
                target=_required_str(obj, "target"),
                arguments=_arguments(obj),
                stream_ids=_stream_ids(obj),
                headers=_headers(obj),
            )
        if kind == MessageType.STREAM_ITEM:
            if "item" not in obj:
                raise ProtocolError("Missing required property 'item'.")
            return StreamItemMessage(
                invocation_id=_required_str(obj, "invocationId"),
                item=obj["item"],
                headers=_headers(obj),
            )
        if kind == MessageType.COMPLETION:
            error = obj.get("error")
            has_result = "result" in obj
            if error is not None and not isinstance(error, str):
                raise ProtocolError("Expected 'error' to be of type String.")
            if error is not None and has_result:
                raise ProtocolError("The 'error' and 'result' properties are mutually exclusive.")
            return CompletionMessage(
                invocation_id=_required_str(obj, "invocationId"),
                error=error,
                result=obj.get("result"),
                has_result=has_result,
                headers=_headers(obj),
            )
        if kind == MessageType.CANCEL_INVOCATION:
            return CancelInvocationMessage(
                invocation_id=_required_str(obj, "invocationId"), headers=_headers(obj)
            )
        if kind == MessageType.PING:
            return PingMessage()
        if kind == MessageType.CLOSE:
            error = obj.get("error")
            if error is not None and not isinstance(error, str):
                raise ProtocolError("Expected 'error' to be of type String.")
            return CloseMessage(error=error, allow_reconnect=obj.get("allowReconnect") is True)
        if kind == MessageType.ACK:
            return AckMessage(sequence_id=_sequence_id(obj))
        if kind == MessageType.SEQUENCE:
            return SequenceMessage(sequence_id=_sequence_id(obj))
        return None  # unknown types are ignored (forward compatibility)

    def write(self, message: HubMessage) -> bytes:
        if isinstance(message, PingMessage):
            return _PING_BYTES
        return self._encoder.encode(self._to_wire(message)) + RECORD_SEPARATOR_BYTES

    @staticmethod
    def _to_wire(message: HubMessage) -> dict[str, Any]:
        obj: dict[str, Any]
        if isinstance(message, InvocationMessage | StreamInvocationMessage):
            kind = (
                MessageType.INVOCATION
                if isinstance(message, InvocationMessage)
                else MessageType.STREAM_INVOCATION
            )
            obj = {"type": int(kind)}
            if message.headers:
                obj["headers"] = message.headers
            if message.invocation_id:
                obj["invocationId"] = message.invocation_id
            obj["target"] = message.target
            obj["arguments"] = list(message.arguments)
            if message.stream_ids:
                obj["streamIds"] = list(message.stream_ids)
            return obj
        if isinstance(message, StreamItemMessage):
            obj = {"type": 2}
            if message.headers:
                obj["headers"] = message.headers
            obj["invocationId"] = message.invocation_id
            obj["item"] = message.item
            return obj
        if isinstance(message, CompletionMessage):
            obj = {"type": 3}
            if message.headers:
                obj["headers"] = message.headers
            obj["invocationId"] = message.invocation_id
            if message.error is not None:
                obj["error"] = message.error
            elif message.has_result:
                obj["result"] = message.result
            return obj
        if isinstance(message, CancelInvocationMessage):
            obj = {"type": 5}
            if message.headers:
                obj["headers"] = message.headers
            obj["invocationId"] = message.invocation_id
            return obj
        if isinstance(message, CloseMessage):
            obj = {"type": 7}
            if message.error is not None:
                obj["error"] = message.error
            if message.allow_reconnect:
                obj["allowReconnect"] = True
            return obj
        if isinstance(message, AckMessage):
            return {"type": 8, "sequenceId": message.sequence_id}
        if isinstance(message, SequenceMessage):
            return {"type": 9, "sequenceId": message.sequence_id}
        raise TypeError(f"cannot write {type(message).__name__}")  # pragma: no cover
