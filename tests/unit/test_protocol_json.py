"""The JSON hub protocol (docs/protocol.md §5) and SerializedMessage.

Fixtures are taken literally from docs/protocol.md §5.3: every JS client line is parsed, every .NET
server line is written and compared byte for byte.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from hero.realtime.protocol import (
    PING,
    AckMessage,
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    HubMessage,
    InvocationMessage,
    JsonHubProtocol,
    MessagePackHubProtocol,
    MessageType,
    PingMessage,
    ProtocolError,
    SequenceMessage,
    SerializedMessage,
    StreamInvocationMessage,
    StreamItemMessage,
    TransferFormat,
)
from hero.realtime.protocol.framing import TextFramer
from hero.realtime.protocol.handshake import HandshakeRequest, parse_handshake

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

protocol = JsonHubProtocol()


def parse_one(raw: bytes) -> HubMessage | None:
    """Frame-strip one `...\\x1e` line and parse it."""
    assert raw.endswith(b"\x1e")
    (payload,) = TextFramer(None).feed(raw)
    return protocol.parse(payload)


# ---------------------------------------------------------------------------------------------
# Section 5.3 fixtures, literally
# ---------------------------------------------------------------------------------------------

# .NET server lines → the message that produces them.
SERVER_LINES: list[tuple[bytes, HubMessage]] = [
    (
        b'{"type":1,"target":"ReceiveMessage","arguments":["alice","hi"]}\x1e',
        InvocationMessage(target="ReceiveMessage", arguments=("alice", "hi")),
    ),
    (
        b'{"type":1,"invocationId":"s1","target":"GetMessage","arguments":[]}\x1e',
        InvocationMessage(target="GetMessage", arguments=(), invocation_id="s1"),
    ),
    (
        b'{"type":2,"invocationId":"1","item":0}\x1e',
        StreamItemMessage(invocation_id="1", item=0),
    ),
    (
        b'{"type":3,"invocationId":"0","result":42}\x1e',
        CompletionMessage.with_result("0", 42),
    ),
    (
        b'{"type":3,"invocationId":"0","result":null}\x1e',
        CompletionMessage.with_result("0", None),
    ),
    (
        b'{"type":3,"invocationId":"1"}\x1e',
        CompletionMessage.empty("1"),
    ),
    (
        b'{"type":3,"invocationId":"0","error":"An unexpected error occurred invoking \'Add\' on'
        b' the server."}\x1e',
        CompletionMessage.with_error(
            "0", "An unexpected error occurred invoking 'Add' on the server."
        ),
    ),
    (b'{"type":6}\x1e', PING),
    (b'{"type":7}\x1e', CloseMessage()),
    (
        b'{"type":7,"error":"Connection closed with an error.","allowReconnect":true}\x1e',
        CloseMessage(error="Connection closed with an error.", allow_reconnect=True),
    ),
    (b'{"type":8,"sequenceId":12}\x1e', AckMessage(sequence_id=12)),
    (b'{"type":9,"sequenceId":5}\x1e', SequenceMessage(sequence_id=5)),
]

# JS client 10.x lines (hub messages; the handshake line is tested separately) → parsed message.
JS_CLIENT_LINES: list[tuple[bytes, HubMessage]] = [
    (
        b'{"target":"Add","arguments":[1,2],"invocationId":"0","type":1}\x1e',
        InvocationMessage(target="Add", arguments=(1, 2), invocation_id="0"),
    ),
    (
        b'{"target":"Notify","arguments":["x"],"type":1}\x1e',
        InvocationMessage(target="Notify", arguments=("x",)),
    ),
    (
        b'{"target":"Counter","arguments":[5],"invocationId":"1","type":4}\x1e',
        StreamInvocationMessage(invocation_id="1", target="Counter", arguments=(5,)),
    ),
    (
        b'{"invocationId":"1","type":5}\x1e',
        CancelInvocationMessage(invocation_id="1"),
    ),
    (
        b'{"target":"Upload","arguments":[],"invocationId":"2","streamIds":["3"],"type":1}\x1e',
        InvocationMessage(target="Upload", arguments=(), invocation_id="2", stream_ids=("3",)),
    ),
    (
        b'{"invocationId":"3","item":"chunk","type":2}\x1e',
        StreamItemMessage(invocation_id="3", item="chunk"),
    ),
    (b'{"invocationId":"3","type":3}\x1e', CompletionMessage.empty("3")),
    (
        b'{"error":"boom","invocationId":"3","type":3}\x1e',
        CompletionMessage.with_error("3", "boom"),
    ),
    (
        b'{"invocationId":"s1","result":42,"type":3}\x1e',
        CompletionMessage.with_result("s1", 42),
    ),
    (
        b'{"error":"Client didn\'t provide a result.","invocationId":"s1","type":3}\x1e',
        CompletionMessage.with_error("s1", "Client didn't provide a result."),
    ),
    (b'{"type":6}\x1e', PING),
    (b'{"type":7}\x1e', CloseMessage()),
]

JS_HANDSHAKE_LINE = b'{"protocol":"json","version":1}\x1e'


@pytest.mark.parametrize(("raw", "message"), SERVER_LINES)
def test_section_5_3_server_lines_written_byte_exact(raw: bytes, message: HubMessage) -> None:
    """Checklist 34/38: .NET's exact output (type first, no null invocationId, arguments always)."""
    assert protocol.write(message) == raw


@pytest.mark.parametrize(("raw", "message"), SERVER_LINES)
def test_section_5_3_server_lines_parse(raw: bytes, message: HubMessage) -> None:
    assert parse_one(raw) == message


@pytest.mark.parametrize(("raw", "message"), JS_CLIENT_LINES)
def test_checklist_32_section_5_3_js_client_lines_parse(raw: bytes, message: HubMessage) -> None:
    """Checklist 32: the JS client writes `type` last; property order must not matter."""
    assert parse_one(raw) == message


def test_checklist_17_js_client_lines_batched_and_split() -> None:
    """Checklist 17: the JS client concatenates queued messages; transports may split them."""
    stream = b"".join(raw for raw, _ in JS_CLIENT_LINES)
    expected = [message for _, message in JS_CLIENT_LINES]
    for size in (1, 2, 3, 7, 64, len(stream)):
        framer = protocol.new_framer(32_768)
        got: list[HubMessage] = []
        for i in range(0, len(stream), size):
            got.extend(protocol.parse_all(framer, stream[i : i + size]))
        assert got == expected


def test_checklist_27_js_handshake_line() -> None:
    assert parse_handshake(JS_HANDSHAKE_LINE, 32_768) == (HandshakeRequest("json", 1), b"")


def test_checklist_34_void_completion_writes_result_null() -> None:
    """Checklist 34/section 5.2: .NET sends `"result":null` for void methods."""
    assert protocol.write(CompletionMessage.with_result("7", None)) == (
        b'{"type":3,"invocationId":"7","result":null}\x1e'
    )


def test_checklist_48_stream_completion_has_no_result() -> None:
    """Checklist 48: the end of a server stream is a Completion without `result`."""
    raw = protocol.write(CompletionMessage.empty("9"))
    assert raw == b'{"type":3,"invocationId":"9"}\x1e'
    assert "result" not in json.loads(raw[:-1])


def test_checklist_38_invocation_without_id_omits_the_key() -> None:
    """Checklist 38: omit `invocationId` rather than writing null; `arguments` always present."""
    raw = protocol.write(InvocationMessage(target="Go"))
    assert raw == b'{"type":1,"target":"Go","arguments":[]}\x1e'


def test_stream_invocation_write() -> None:
    raw = protocol.write(
        StreamInvocationMessage(invocation_id="4", target="Counter", arguments=(5, "x"))
    )
    assert raw == b'{"type":4,"invocationId":"4","target":"Counter","arguments":[5,"x"]}\x1e'


def test_stream_ids_and_headers_are_written_when_present() -> None:
    raw = protocol.write(
        InvocationMessage(
            target="Up", arguments=(), invocation_id="2", stream_ids=("3", "4"), headers={"a": "b"}
        )
    )
    assert json.loads(raw[:-1]) == {
        "type": 1,
        "headers": {"a": "b"},
        "invocationId": "2",
        "target": "Up",
        "arguments": [],
        "streamIds": ["3", "4"],
    }


def test_cancel_invocation_write() -> None:
    assert protocol.write(CancelInvocationMessage("1")) == b'{"type":5,"invocationId":"1"}\x1e'


def test_close_with_allow_reconnect_only() -> None:
    """Section 7.4: authentication expiry sends `{"type":7,"allowReconnect":true}`."""
    assert protocol.write(CloseMessage(allow_reconnect=True)) == (
        b'{"type":7,"allowReconnect":true}\x1e'
    )
    assert protocol.write(CloseMessage(error="x")) == b'{"type":7,"error":"x"}\x1e'


def test_ping_is_exact_and_shared() -> None:
    assert protocol.write(PING) == b'{"type":6}\x1e'
    assert protocol.write(PingMessage()) == b'{"type":6}\x1e'
    assert protocol.parse(b'{"type":6}') == PING


def test_protocol_identity() -> None:
    assert protocol.name == "json"
    assert protocol.version == 2
    assert protocol.transfer_format is TransferFormat.TEXT
    assert isinstance(protocol.new_framer(None), TextFramer)


def test_write_many_concatenates() -> None:
    messages: list[HubMessage] = [PING, CloseMessage()]
    assert protocol.write_many(messages) == b'{"type":6}\x1e{"type":7}\x1e'


def test_non_ascii_is_written_as_utf8_and_round_trips() -> None:
    message = InvocationMessage(target="Send", arguments=("héllo ✓ 日本 🎉",))
    raw = protocol.write(message)
    assert "héllo ✓ 日本 🎉".encode() in raw
    assert parse_one(raw) == message


# ---------------------------------------------------------------------------------------------
# Parsing details (sections 5.1, 5.2, 5.4)
# ---------------------------------------------------------------------------------------------


def test_checklist_32_headers_are_accepted() -> None:
    """Checklist 32: pysignalr sends `headers` on invocations; accept them."""
    raw = b'{"type":1,"target":"Send","arguments":[1],"headers":{"Authorization":"x"}}'
    assert protocol.parse(raw) == InvocationMessage(
        target="Send", arguments=(1,), headers={"Authorization": "x"}
    )


def test_headers_on_other_message_types() -> None:
    headers = b'"headers":{"k":"v"}'
    assert protocol.parse(b'{"type":2,"invocationId":"1","item":1,' + headers + b"}") == (
        StreamItemMessage("1", 1, headers={"k": "v"})
    )
    assert protocol.parse(b'{"type":3,"invocationId":"1",' + headers + b"}") == (
        CompletionMessage("1", headers={"k": "v"})
    )
    assert protocol.parse(b'{"type":5,"invocationId":"1",' + headers + b"}") == (
        CancelInvocationMessage("1", headers={"k": "v"})
    )


def test_null_headers_mean_none() -> None:
    raw = b'{"type":1,"target":"a","arguments":[],"headers":null}'
    assert protocol.parse(raw) == InvocationMessage(target="a")


def test_unknown_properties_are_ignored() -> None:
    raw = b'{"type":1,"target":"a","arguments":[],"foo":{"bar":[1]},"Target":"b"}'
    assert protocol.parse(raw) == InvocationMessage(target="a")


@pytest.mark.parametrize("raw_id", [b'"invocationId":null,', b'"invocationId":"",', b""])
def test_invocation_id_absent_null_or_empty_is_non_blocking(raw_id: bytes) -> None:
    """Section 5.2: no `invocationId` (or empty) ⇒ non-blocking (checklist 33)."""
    raw = b'{"type":1,' + raw_id + b'"target":"a","arguments":[]}'
    message = protocol.parse(raw)
    assert isinstance(message, InvocationMessage)
    assert message.invocation_id is None


def test_stream_item_null_item_is_kept() -> None:
    assert protocol.parse(b'{"type":2,"invocationId":"1","item":null}') == StreamItemMessage(
        "1", None
    )


def test_completion_with_null_error_is_not_an_error() -> None:
    assert protocol.parse(b'{"type":3,"invocationId":"1","error":null}') == (
        CompletionMessage.empty("1")
    )


def test_completion_null_result_has_result() -> None:
    message = protocol.parse(b'{"type":3,"invocationId":"1","result":null}')
    assert isinstance(message, CompletionMessage)
    assert message.has_result
    assert message.result is None
    assert message.error is None


def test_close_parsing() -> None:
    assert protocol.parse(b'{"type":7,"error":null}') == CloseMessage()
    assert protocol.parse(b'{"type":7,"allowReconnect":false}') == CloseMessage()
    assert protocol.parse(b'{"allowReconnect":true,"type":7}') == CloseMessage(allow_reconnect=True)


def test_sequence_id_64_bit() -> None:
    big = 2**63 - 1
    assert protocol.parse(b'{"type":8,"sequenceId":%d}' % big) == AckMessage(big)
    assert protocol.write(SequenceMessage(big)) == b'{"type":9,"sequenceId":%d}\x1e' % big


def test_whitespace_between_tokens_is_accepted() -> None:
    raw = b' {\n "type" : 1 ,\t"target":"a", "arguments" : [ 1 , 2 ] } '
    assert protocol.parse(raw) == InvocationMessage(target="a", arguments=(1, 2))


@pytest.mark.parametrize("kind", [0, 10, 11, 99, -1, 1000, 2**40])
def test_checklist_39_unknown_types_are_ignored(kind: int) -> None:
    """Checklist 39: unknown `type` → None (ignored), even with extra properties."""
    assert protocol.parse(b'{"type":%d}' % kind) is None
    assert protocol.parse(b'{"type":%d,"target":1,"x":[{}]}' % kind) is None


def test_checklist_39_parse_all_drops_unknown_types() -> None:
    framer = protocol.new_framer(None)
    data = b'{"type":99}\x1e{"type":6}\x1e{"type":42,"foo":1}\x1e{"type":7}\x1e'
    assert protocol.parse_all(framer, data) == [PING, CloseMessage()]


# ---------------------------------------------------------------------------------------------
# Malformed input → ProtocolError (section 5.5)
# ---------------------------------------------------------------------------------------------

MALFORMED: list[tuple[str, bytes]] = [
    # not JSON / not an object
    ("empty record", b""),
    ("whitespace", b"  "),
    ("garbage", b"hello"),
    ("truncated", b'{"type":6'),
    ("trailing garbage", b'{"type":6}x'),
    ("two objects", b'{"type":6}{"type":6}'),
    ("array", b"[1]"),
    ("array of object", b'[{"type":6}]'),
    ("string", b'"type"'),
    ("number", b"6"),
    ("null", b"null"),
    ("true", b"true"),
    # type
    ("missing type", b"{}"),
    ("missing type with fields", b'{"target":"a","arguments":[]}'),
    ("type null", b'{"type":null}'),
    ("type string", b'{"type":"1"}'),
    ("type float", b'{"type":6.5}'),
    ("type bool", b'{"type":true}'),
    ("type object", b'{"type":{}}'),
    # invocation
    ("invocation missing target", b'{"type":1,"arguments":[]}'),
    ("invocation null target", b'{"type":1,"target":null,"arguments":[]}'),
    ("invocation empty target", b'{"type":1,"target":"","arguments":[]}'),
    ("invocation numeric target", b'{"type":1,"target":1,"arguments":[]}'),
    ("invocation missing arguments", b'{"type":1,"target":"a"}'),
    ("invocation null arguments", b'{"type":1,"target":"a","arguments":null}'),
    ("invocation object arguments", b'{"type":1,"target":"a","arguments":{}}'),
    ("invocation string arguments", b'{"type":1,"target":"a","arguments":"x"}'),
    ("invocation numeric id", b'{"type":1,"target":"a","arguments":[],"invocationId":1}'),
    ("invocation streamIds not array", b'{"type":1,"target":"a","arguments":[],"streamIds":"3"}'),
    ("invocation streamIds ints", b'{"type":1,"target":"a","arguments":[],"streamIds":[3]}'),
    ("invocation headers array", b'{"type":1,"target":"a","arguments":[],"headers":[]}'),
    ("invocation headers string", b'{"type":1,"target":"a","arguments":[],"headers":"h"}'),
    # stream invocation
    ("stream invocation missing id", b'{"type":4,"target":"a","arguments":[]}'),
    ("stream invocation empty id", b'{"type":4,"invocationId":"","target":"a","arguments":[]}'),
    ("stream invocation missing target", b'{"type":4,"invocationId":"1","arguments":[]}'),
    ("stream invocation missing arguments", b'{"type":4,"invocationId":"1","target":"a"}'),
    # stream item
    ("stream item missing item", b'{"type":2,"invocationId":"1"}'),
    ("stream item missing id", b'{"type":2,"item":1}'),
    ("stream item numeric id", b'{"type":2,"invocationId":1,"item":1}'),
    # completion
    ("completion error and result", b'{"type":3,"invocationId":"1","error":"x","result":1}'),
    (
        "completion error and null result",
        b'{"type":3,"invocationId":"1","error":"x","result":null}',
    ),
    ("completion missing id", b'{"type":3,"result":1}'),
    ("completion empty id", b'{"type":3,"invocationId":"","result":1}'),
    ("completion numeric error", b'{"type":3,"invocationId":"1","error":1}'),
    ("completion object error", b'{"type":3,"invocationId":"1","error":{}}'),
    # cancel
    ("cancel missing id", b'{"type":5}'),
    ("cancel numeric id", b'{"type":5,"invocationId":5}'),
    # close
    ("close numeric error", b'{"type":7,"error":5}'),
    # ack / sequence
    ("ack missing sequenceId", b'{"type":8}'),
    ("ack string sequenceId", b'{"type":8,"sequenceId":"1"}'),
    ("ack float sequenceId", b'{"type":8,"sequenceId":1.5}'),
    ("ack bool sequenceId", b'{"type":8,"sequenceId":true}'),
    ("sequence missing sequenceId", b'{"type":9}'),
    ("sequence null sequenceId", b'{"type":9,"sequenceId":null}'),
]


@pytest.mark.parametrize("raw", [raw for _, raw in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_malformed_input_is_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.parse(raw)


def test_malformed_message_in_a_batch_raises_from_parse_all() -> None:
    framer = protocol.new_framer(None)
    with pytest.raises(ProtocolError):
        protocol.parse_all(framer, b'{"type":6}\x1e{"type":1}\x1e')


def test_empty_record_in_a_stream_is_protocol_error() -> None:
    """Section 3.2: an empty record (`\\x1e\\x1e`) cannot be parsed."""
    framer = protocol.new_framer(None)
    with pytest.raises(ProtocolError):
        protocol.parse_all(framer, b'{"type":6}\x1e\x1e')


def test_invalid_utf8_in_string_is_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        protocol.parse(b'{"type":1,"target":"A\xff","arguments":[]}')


def test_deeply_nested_arguments_are_protocol_error() -> None:
    raw = b'{"type":1,"target":"a","arguments":' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert len(raw) < 32_768
    with pytest.raises(ProtocolError):
        protocol.parse(raw)


# ---------------------------------------------------------------------------------------------
# Application values
# ---------------------------------------------------------------------------------------------


class Dto(BaseModel):
    user_name: str = Field(alias="userName")
    count: int


class Wire:
    def to_wire(self) -> dict[str, Any]:
        return {"kind": "wire", "n": 1}


def test_pydantic_models_are_written_by_alias() -> None:
    raw = protocol.write(InvocationMessage(target="R", arguments=(Dto(userName="al", count=2),)))
    assert raw == b'{"type":1,"target":"R","arguments":[{"userName":"al","count":2}]}\x1e'


def test_to_wire_objects_are_written() -> None:
    raw = protocol.write(CompletionMessage.with_result("1", Wire()))
    assert raw == b'{"type":3,"invocationId":"1","result":{"kind":"wire","n":1}}\x1e'


def test_unknown_objects_cannot_be_written() -> None:
    with pytest.raises(TypeError):
        protocol.write(CompletionMessage.with_result("1", object()))


# ---------------------------------------------------------------------------------------------
# Hypothesis: write → parse round trips, and writer invariants
# ---------------------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ids = st.text(min_size=1, max_size=12)
headers = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
arguments = st.lists(json_values, max_size=5).map(tuple)
stream_ids = st.lists(ids, max_size=3).map(tuple)
sequence_ids = st.integers(min_value=0, max_value=2**63 - 1)

invocations = st.builds(
    InvocationMessage,
    target=ids,
    arguments=arguments,
    invocation_id=st.none() | ids,
    stream_ids=stream_ids,
    headers=headers,
)
stream_invocations = st.builds(
    StreamInvocationMessage,
    invocation_id=ids,
    target=ids,
    arguments=arguments,
    stream_ids=stream_ids,
    headers=headers,
)
stream_items = st.builds(StreamItemMessage, invocation_id=ids, item=json_values, headers=headers)
completions = st.one_of(
    st.builds(
        CompletionMessage,
        invocation_id=ids,
        result=json_values,
        has_result=st.just(True),
        headers=headers,
    ),
    st.builds(CompletionMessage, invocation_id=ids, error=st.text(max_size=20), headers=headers),
    st.builds(CompletionMessage, invocation_id=ids, headers=headers),
)
cancels = st.builds(CancelInvocationMessage, invocation_id=ids, headers=headers)
closes = st.builds(
    CloseMessage, error=st.none() | st.text(max_size=20), allow_reconnect=st.booleans()
)
acks = st.builds(AckMessage, sequence_id=sequence_ids)
sequences = st.builds(SequenceMessage, sequence_id=sequence_ids)
pings = st.just(PING)

STRATEGIES = {
    "invocation": invocations,
    "stream_invocation": stream_invocations,
    "stream_item": stream_items,
    "completion": completions,
    "cancel_invocation": cancels,
    "ping": pings,
    "close": closes,
    "ack": acks,
    "sequence": sequences,
}
any_message = st.one_of(*STRATEGIES.values())

SPEC_KEYS: dict[int, set[str]] = {
    MessageType.INVOCATION: {"type", "headers", "invocationId", "target", "arguments", "streamIds"},
    MessageType.STREAM_ITEM: {"type", "headers", "invocationId", "item"},
    MessageType.COMPLETION: {"type", "headers", "invocationId", "result", "error"},
    MessageType.STREAM_INVOCATION: {
        "type",
        "headers",
        "invocationId",
        "target",
        "arguments",
        "streamIds",
    },
    MessageType.CANCEL_INVOCATION: {"type", "headers", "invocationId"},
    MessageType.PING: {"type"},
    MessageType.CLOSE: {"type", "error", "allowReconnect"},
    MessageType.ACK: {"type", "sequenceId"},
    MessageType.SEQUENCE: {"type", "sequenceId"},
}


@pytest.mark.parametrize("kind", list(STRATEGIES))
@given(data=st.data())
@SETTINGS
def test_round_trip_each_message_type(kind: str, data: st.DataObject) -> None:
    """For each message type: write then parse returns an equal message."""
    message = data.draw(STRATEGIES[kind])
    assert parse_one(protocol.write(message)) == message


@given(message=any_message)
@SETTINGS
def test_checklist_16_writer_emits_exactly_one_record(message: HubMessage) -> None:
    """Checklist 16 / section 5.1: one compact JSON object per message, ending in the only 0x1E
    (a raw 0x1E in a string is escaped as \\u001e), no newlines."""
    raw = protocol.write(message)
    assert raw.endswith(b"\x1e")
    assert raw.count(b"\x1e") == 1
    assert b"\n" not in raw
    assert len(raw) > 1
    assert isinstance(json.loads(raw[:-1]), dict)


@given(message=any_message)
@SETTINGS
def test_checklist_38_writer_uses_only_spec_property_names(message: HubMessage) -> None:
    """Checklist 38 / section 5.4: only spec names (pysignalr builds dataclasses from keys);
    `type` is written first; no null invocationId; `arguments` always present on invocations."""
    obj = json.loads(protocol.write(message)[:-1])
    kind = obj["type"]
    assert set(obj) <= SPEC_KEYS[kind]
    assert next(iter(obj)) == "type"
    if "invocationId" in obj:
        assert isinstance(obj["invocationId"], str)
        assert obj["invocationId"]
    if kind in (MessageType.INVOCATION, MessageType.STREAM_INVOCATION):
        assert isinstance(obj["arguments"], list)
    if kind == MessageType.COMPLETION:
        assert not ("result" in obj and "error" in obj)
    if "headers" in obj:
        assert obj["headers"]


@given(messages=st.lists(any_message, max_size=10), data=st.data())
@SETTINGS
def test_checklist_17_batched_stream_split_anywhere_round_trips(
    messages: list[HubMessage], data: st.DataObject
) -> None:
    """Checklist 17: many framed messages, concatenated and split at arbitrary points."""
    stream = protocol.write_many(messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=15)))
    points = [0, *cuts, len(stream)]
    framer = protocol.new_framer(None)
    got: list[HubMessage] = []
    for a, b in itertools.pairwise(points):
        got.extend(protocol.parse_all(framer, stream[a:b]))
    assert got == messages


@given(st.text(max_size=300))
@settings(deadline=None)
def test_parse_never_raises_anything_but_protocol_error(text: str) -> None:
    """Fuzz (valid UTF-8 text): parse returns a message, None, or raises ProtocolError."""
    with contextlib.suppress(ProtocolError):
        protocol.parse(text.encode())


@given(
    obj=st.dictionaries(
        st.sampled_from(
            [
                "type",
                "target",
                "arguments",
                "invocationId",
                "item",
                "result",
                "error",
                "streamIds",
                "headers",
                "sequenceId",
                "allowReconnect",
            ]
        ),
        json_values | st.integers(0, 10),
        max_size=6,
    )
)
@SETTINGS
def test_parse_of_arbitrary_objects_never_raises_anything_but_protocol_error(
    obj: dict[str, Any],
) -> None:
    with contextlib.suppress(ProtocolError):
        protocol.parse(json.dumps(obj).encode())


# ---------------------------------------------------------------------------------------------
# SerializedMessage: encoded once per protocol
# ---------------------------------------------------------------------------------------------


class CountingJson(JsonHubProtocol):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, message: HubMessage) -> bytes:
        self.writes += 1
        return super().write(message)


class CountingMessagePack(MessagePackHubProtocol):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, message: HubMessage) -> bytes:
        self.writes += 1
        return super().write(message)


def test_serialized_message_encodes_once_per_protocol() -> None:
    """A broadcast to many recipients runs the encoder once per protocol, not per recipient."""
    message = InvocationMessage(target="ReceiveMessage", arguments=("alice", "hi"))
    serialized = SerializedMessage(message)
    js, mp = CountingJson(), CountingMessagePack()
    for _ in range(100):
        assert serialized.get(js) == (
            b'{"type":1,"target":"ReceiveMessage","arguments":["alice","hi"]}\x1e'
        )
        assert serialized.get(mp) == MessagePackHubProtocol().write(message)
    assert js.writes == 1
    assert mp.writes == 1
    assert set(serialized.encoded()) == {"json", "messagepack"}


def test_serialized_message_cache_is_by_protocol_name() -> None:
    """Two instances of the same protocol share the cached bytes."""
    serialized = SerializedMessage(PING)
    first, second = CountingJson(), CountingJson()
    serialized.get(first)
    serialized.get(second)
    assert first.writes + second.writes == 1


def test_serialized_message_prefilled_bytes_are_used_without_encoding() -> None:
    """A backplane can pre-fill the bytes received from another instance."""
    js = CountingJson()
    serialized = SerializedMessage(PING, {"json": b"prefilled\x1e"})
    assert serialized.get(js) == b"prefilled\x1e"
    assert js.writes == 0


def test_serialized_message_without_message_needs_prefilled_bytes() -> None:
    serialized = SerializedMessage(None, {"json": b'{"type":6}\x1e'})
    assert serialized.get(CountingJson()) == b'{"type":6}\x1e'
    with pytest.raises(LookupError):
        serialized.get(CountingMessagePack())


def test_serialized_message_encoded_returns_a_copy() -> None:
    source = {"json": b"a"}
    serialized = SerializedMessage(PING, source)
    source["json"] = b"changed"
    snapshot = serialized.encoded()
    snapshot["json"] = b"mutated"
    assert serialized.encoded() == {"json": b"a"}
    assert serialized.message is PING


def test_serialized_message_starts_empty() -> None:
    serialized = SerializedMessage(PING)
    assert serialized.encoded() == {}
