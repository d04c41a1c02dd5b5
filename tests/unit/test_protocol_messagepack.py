"""The MessagePack hub protocol (docs/protocol.md §6).

Byte fixtures follow the layouts of docs/protocol.md §6.3 (VarInt prefix first): all are parsed,
and
those whose form the server writes are also written and compared byte for byte.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hero.realtime.protocol import (
    PING,
    AckMessage,
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    HubMessage,
    InvocationMessage,
    MessagePackHubProtocol,
    MessageTooLargeError,
    PingMessage,
    ProtocolError,
    SequenceMessage,
    SerializedMessage,
    StreamInvocationMessage,
    StreamItemMessage,
    TransferFormat,
)
from hero.realtime.protocol.framing import BinaryFramer, decode_varint, encode_varint

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

protocol = MessagePackHubProtocol()


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def unframe(raw: bytes) -> bytes:
    """Strip the VarInt prefix of exactly one framed message."""
    header = decode_varint(raw)
    assert header is not None
    length, size = header
    assert len(raw) == size + length
    return raw[size:]


def parse_framed(raw: bytes) -> HubMessage | None:
    return protocol.parse(unframe(raw))


def pack(value: Any) -> bytes:
    return msgspec.msgpack.encode(value)


# ---------------------------------------------------------------------------------------------
# Section 6.4 byte-exact examples, literally: (label, hex, message, server writes this form)
# ---------------------------------------------------------------------------------------------

EXAMPLES: list[tuple[str, str, HubMessage, bool]] = [
    ("Ping", "02 91 06", PING, True),
    ("Close, no error, allowReconnect=false", "04 93 07 C0 C2", CloseMessage(), True),
    ("Close as the JS client sends it", "03 92 07 C0", CloseMessage(), False),
    (
        'Close "bye", allowReconnect=true',
        "07 93 07 A3 62 79 65 C3",
        CloseMessage(error="bye", allow_reconnect=True),
        True,
    ),
    ('Completion void, id "0"', "06 94 03 80 A1 30 02", CompletionMessage.empty("0"), True),
    (
        'Completion result 42, id "0"',
        "07 95 03 80 A1 30 03 2A",
        CompletionMessage.with_result("0", 42),
        True,
    ),
    (
        'Completion result nil, id "0"',
        "07 95 03 80 A1 30 03 C0",
        CompletionMessage.with_result("0", None),
        True,
    ),
    (
        'Completion error "boom", id "0"',
        "0B 95 03 80 A1 30 01 A4 62 6F 6F 6D",
        CompletionMessage.with_error("0", "boom"),
        True,
    ),
    (
        'Server Invocation Recv("hi"), no id',
        "0E 96 01 80 C0 A4 52 65 63 76 91 A2 68 69 90",
        InvocationMessage(target="Recv", arguments=("hi",)),
        True,
    ),
    (
        'JS invoke Add(1,2), id "0", 5 elems',
        "0C 95 01 80 A1 30 A3 41 64 64 92 01 02",
        InvocationMessage(target="Add", arguments=(1, 2), invocation_id="0"),
        False,
    ),
    (
        'StreamItem id "1", item 5',
        "06 94 02 80 A1 31 05",
        StreamItemMessage(invocation_id="1", item=5),
        True,
    ),
    ('CancelInvocation id "1"', "05 93 05 80 A1 31", CancelInvocationMessage("1"), False),
    ("Ack 5", "03 92 08 05", AckMessage(5), True),
    ("Sequence 1", "03 92 09 01", SequenceMessage(1), True),
]
WRITTEN = [(label, raw, message) for label, raw, message, server in EXAMPLES if server]
LABELS = [label for label, *_ in EXAMPLES]


@pytest.mark.parametrize(("label", "raw", "message", "server"), EXAMPLES, ids=LABELS)
def test_checklist_41_section_6_4_examples_parse(
    label: str, raw: str, message: HubMessage, server: bool
) -> None:
    """Checklist 41: every example parses, including the 5-element JS Invocation, `[7, nil]`
    Close and the 4-element void Completion."""
    assert parse_framed(_hex(raw)) == message


@pytest.mark.parametrize(("label", "raw", "message"), WRITTEN, ids=[label for label, *_ in WRITTEN])
def test_checklist_42_section_6_4_server_forms_written_byte_exact(
    label: str, raw: str, message: HubMessage
) -> None:
    """Checklist 42: 6-element Invocations, `[7, err|nil, bool]` Close, Completion kinds 1/2/3
    with the right element counts, Ping `02 91 06`."""
    assert protocol.write(message) == _hex(raw)


def test_checklist_43_section_6_4_examples_batched_and_split() -> None:
    """Checklist 43: several framed messages per unit, split at every possible granularity."""
    stream = b"".join(_hex(raw) for _, raw, _, _ in EXAMPLES)
    expected = [message for _, _, message, _ in EXAMPLES]
    for size in (1, 2, 3, 5, 11, len(stream)):
        framer = protocol.new_framer(32_768)
        got: list[HubMessage] = []
        for i in range(0, len(stream), size):
            got.extend(protocol.parse_all(framer, stream[i : i + size]))
        assert got == expected


@pytest.mark.parametrize(("label", "raw", "message", "server"), EXAMPLES, ids=LABELS)
def test_truncated_examples_are_protocol_errors(
    label: str, raw: str, message: HubMessage, server: bool
) -> None:
    """Every proper prefix of every example payload is truncated MessagePack → ProtocolError."""
    payload = unframe(_hex(raw))
    for end in range(len(payload)):
        with pytest.raises(ProtocolError):
            protocol.parse(payload[:end])


def test_checklist_41_js_close_and_dotnet_close_are_equal() -> None:
    assert parse_framed(_hex("03 92 07 C0")) == parse_framed(_hex("04 93 07 C0 C2"))


def test_checklist_41_six_element_invocation_with_nil_or_empty_stream_ids() -> None:
    expected = InvocationMessage(target="Add", arguments=(1, 2), invocation_id="0")
    assert protocol.parse(pack([1, {}, "0", "Add", [1, 2], []])) == expected
    assert protocol.parse(pack([1, {}, "0", "Add", [1, 2], None])) == expected
    assert protocol.parse(pack([1, {}, "0", "Add", [1, 2], ["3"]])) == InvocationMessage(
        target="Add", arguments=(1, 2), invocation_id="0", stream_ids=("3",)
    )


def test_checklist_33_empty_string_invocation_id_is_non_blocking() -> None:
    """Section 6.3: InvocationId nil or empty string ⇒ non-blocking."""
    for invocation_id in (None, ""):
        message = protocol.parse(pack([1, {}, invocation_id, "Send", []]))
        assert isinstance(message, InvocationMessage)
        assert message.invocation_id is None


def test_stream_invocation_five_and_six_elements() -> None:
    expected = StreamInvocationMessage(invocation_id="1", target="Counter", arguments=(5,))
    assert protocol.parse(pack([4, {}, "1", "Counter", [5]])) == expected
    assert protocol.parse(pack([4, {}, "1", "Counter", [5], []])) == expected


def test_stream_invocation_write() -> None:
    raw = protocol.write(StreamInvocationMessage(invocation_id="1", target="C", arguments=(5,)))
    assert unframe(raw) == pack([4, {}, "1", "C", [5], []])


def test_cancel_and_completion_writes_for_client_side_use() -> None:
    assert protocol.write(CancelInvocationMessage("1")) == _hex("05 93 05 80 A1 31")


def test_headers_are_read_and_written() -> None:
    raw = pack([1, {"a": "b", "c": "d"}, "0", "Add", [1], []])
    message = protocol.parse(raw)
    assert message == InvocationMessage(
        target="Add", arguments=(1,), invocation_id="0", headers={"a": "b", "c": "d"}
    )
    assert message is not None
    assert unframe(protocol.write(message)) == raw


def test_nil_headers_mean_none() -> None:
    assert protocol.parse(pack([2, None, "1", 5])) == StreamItemMessage("1", 5)


def test_integers_of_any_width_are_accepted() -> None:
    """Section 6.3: integers may use any MessagePack width (type included)."""
    assert protocol.parse(_hex("91 CC 06")) == PING  # uint8 type
    assert protocol.parse(_hex("91 D0 06")) == PING  # int8 type
    assert protocol.parse(_hex("91 CD 00 06")) == PING  # uint16 type
    assert protocol.parse(_hex("92 08 CF 00 00 00 01 00 00 00 00")) == AckMessage(2**32)
    assert protocol.parse(_hex("92 09 CE 00 00 00 07")) == SequenceMessage(7)
    assert protocol.parse(_hex("94 03 80 A1 30 CC 02")) == CompletionMessage.empty("0")


def test_sequence_id_64_bit_round_trip() -> None:
    for value in (0, 2**31, 2**63 - 1):
        assert parse_framed(protocol.write(AckMessage(value))) == AckMessage(value)


def test_close_variants() -> None:
    assert protocol.parse(pack([7, None, False])) == CloseMessage()
    assert protocol.parse(pack([7, "x"])) == CloseMessage(error="x")
    assert protocol.parse(pack([7, None, True])) == CloseMessage(allow_reconnect=True)
    assert protocol.parse(pack([7, None, None])) == CloseMessage()


def test_completion_void_with_extra_value_is_still_void() -> None:
    assert protocol.parse(pack([3, {}, "0", 2, 99])) == CompletionMessage.empty("0")


def test_ping_with_extra_elements_is_a_ping() -> None:
    assert protocol.parse(pack([6, {}])) == PING


def test_binary_arguments_round_trip_as_bytes() -> None:
    """Section 6.5: bytes ↔ MessagePack bin."""
    message = InvocationMessage(target="Up", arguments=(b"\x00\x01\xff",))
    raw = protocol.write(message)
    assert b"\xc4\x03\x00\x01\xff" in raw
    assert parse_framed(raw) == message


def test_protocol_identity() -> None:
    assert protocol.name == "messagepack"
    assert protocol.version == 2
    assert protocol.transfer_format is TransferFormat.BINARY
    assert isinstance(protocol.new_framer(None), BinaryFramer)


def test_write_many_concatenates() -> None:
    assert protocol.write_many([PING, CloseMessage()]) == _hex("02 91 06 04 93 07 C0 C2")


def test_ping_instances_write_the_same_bytes() -> None:
    assert protocol.write(PingMessage()) == protocol.write(PING) == b"\x02\x91\x06"


@pytest.mark.parametrize("kind", [0, 10, 11, 99, 127, 255, 70000, -1])
def test_checklist_39_unknown_types_are_ignored(kind: int) -> None:
    """Checklist 39 / section 6.3: unknown message types (e.g. 99) parse to None."""
    assert protocol.parse(pack([kind])) is None
    assert protocol.parse(pack([kind, {}, "x", [1, 2]])) is None


def test_checklist_39_parse_all_drops_unknown_types() -> None:
    framer = protocol.new_framer(None)
    body = pack([99, "x"])
    data = encode_varint(len(body)) + body + _hex("02 91 06")
    assert protocol.parse_all(framer, data) == [PING]


def test_size_limit_through_the_protocol_framer() -> None:
    """Checklist 54: the framer from new_framer enforces the limit including the prefix."""
    message = InvocationMessage(target="A", arguments=("x" * 100,))
    raw = protocol.write(message)
    assert protocol.parse_all(protocol.new_framer(len(raw)), raw) == [message]
    with pytest.raises(MessageTooLargeError):
        protocol.parse_all(protocol.new_framer(len(raw) - 1), raw)


# ---------------------------------------------------------------------------------------------
# Checklist 42: writer structure
# ---------------------------------------------------------------------------------------------


def _written_array(message: HubMessage) -> list[Any]:
    raw = protocol.write(message)
    payload = unframe(raw)
    assert 0x01 <= payload[1] <= 0x09, "type is written as a positive fixint"
    decoded = msgspec.msgpack.decode(payload)
    assert isinstance(decoded, list)
    return decoded


def test_checklist_42_invocation_always_six_elements() -> None:
    assert _written_array(InvocationMessage(target="A")) == [1, {}, None, "A", [], []]
    assert _written_array(InvocationMessage("A", (1,), "5", ("s",), {"h": "v"})) == [
        1,
        {"h": "v"},
        "5",
        "A",
        [1],
        ["s"],
    ]


def test_checklist_42_close_always_three_elements_with_bool() -> None:
    assert _written_array(CloseMessage()) == [7, None, False]
    assert _written_array(CloseMessage("e", True)) == [7, "e", True]
    assert _written_array(CloseMessage(allow_reconnect=True)) == [7, None, True]


def test_checklist_42_completion_kinds_and_element_counts() -> None:
    assert _written_array(CompletionMessage.with_error("1", "x")) == [3, {}, "1", 1, "x"]
    assert _written_array(CompletionMessage.empty("1")) == [3, {}, "1", 2]
    assert _written_array(CompletionMessage.with_result("1", None)) == [3, {}, "1", 3, None]
    assert _written_array(CompletionMessage.with_result("1", [1])) == [3, {}, "1", 3, [1]]


def test_checklist_42_ack_sequence_have_no_headers() -> None:
    assert _written_array(AckMessage(3)) == [8, 3]
    assert _written_array(SequenceMessage(3)) == [9, 3]


# ---------------------------------------------------------------------------------------------
# Malformed input → ProtocolError
# ---------------------------------------------------------------------------------------------

MALFORMED: list[tuple[str, bytes]] = [
    # not MessagePack / truncated / trailing bytes
    ("empty payload", b""),
    ("reserved opcode c1", b"\xc1"),
    ("truncated array", _hex("92 06")),
    ("truncated string", _hex("95 01 80 A1")),
    ("truncated str8", _hex("91 D9 05 61")),
    ("trailing bytes", _hex("91 06 00")),
    ("two arrays", _hex("91 06 91 06")),
    # not an array
    ("int", _hex("06")),
    ("nil", _hex("C0")),
    ("string", pack("ping")),
    ("map", pack({"type": 6})),
    ("bin", pack(b"\x91\x06")),
    ("empty array", _hex("90")),
    # message type
    ("type string", pack(["1"])),
    ("type nil", pack([None])),
    ("type bool", pack([True])),
    ("type float", pack([6.0])),
    ("type array", pack([[6]])),
    # invocation
    ("invocation too short", pack([1, {}, "0", "A"])),
    ("invocation only type", pack([1])),
    ("invocation headers int", pack([1, 1, "0", "A", []])),
    ("invocation headers array", pack([1, [], "0", "A", []])),
    ("invocation id int", pack([1, {}, 0, "A", []])),
    ("invocation target nil", pack([1, {}, "0", None, []])),
    ("invocation target int", pack([1, {}, "0", 1, []])),
    ("invocation arguments map", pack([1, {}, "0", "A", {}])),
    ("invocation arguments nil", pack([1, {}, "0", "A", None])),
    ("invocation streamIds str", pack([1, {}, "0", "A", [], "s"])),
    ("invocation streamIds ints", pack([1, {}, "0", "A", [], [1]])),
    # stream invocation
    ("stream invocation nil id", pack([4, {}, None, "A", []])),
    ("stream invocation empty id", pack([4, {}, "", "A", []])),
    ("stream invocation too short", pack([4, {}, "1", "A"])),
    # stream item
    ("stream item too short", pack([2, {}, "1"])),
    ("stream item id int", pack([2, {}, 1, 5])),
    ("stream item id nil", pack([2, {}, None, 5])),
    # completion
    ("completion too short", pack([3, {}, "0"])),
    ("completion kind string", pack([3, {}, "0", "2"])),
    ("completion kind bool", pack([3, {}, "0", True])),
    ("completion kind 0", pack([3, {}, "0", 0])),
    ("completion kind 4", pack([3, {}, "0", 4, 1])),
    ("completion error without value", pack([3, {}, "0", 1])),
    ("completion error not string", pack([3, {}, "0", 1, 5])),
    ("completion error nil", pack([3, {}, "0", 1, None])),
    ("completion result without value", pack([3, {}, "0", 3])),
    ("completion id int", pack([3, {}, 0, 2])),
    # cancel
    ("cancel too short", pack([5, {}])),
    ("cancel id int", pack([5, {}, 1])),
    # close
    ("close too short", pack([7])),
    ("close error int", pack([7, 1, False])),
    # ack / sequence
    ("ack too short", pack([8])),
    ("ack string", pack([8, "1"])),
    ("ack float", pack([8, 1.0])),
    ("ack bool", pack([8, True])),
    ("sequence nil", pack([9, None])),
]


@pytest.mark.parametrize("raw", [raw for _, raw in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_malformed_input_is_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.parse(raw)


def test_prefix_shorter_than_the_payload_is_protocol_error() -> None:
    """The frame ends in the middle of the MessagePack value."""
    framer = protocol.new_framer(None)
    with pytest.raises(ProtocolError):
        protocol.parse_all(framer, _hex("02 93 07") + _hex("C0 C2"))


def test_empty_frame_is_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        protocol.parse_all(protocol.new_framer(None), b"\x00")


def test_invalid_utf8_string_is_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        protocol.parse(_hex("93 07 A2 61 FF C2"))


def test_deeply_nested_arguments_are_protocol_error() -> None:
    raw = _hex("95 01 80 C0 A1 61") + b"\x91" * 5000 + b"\x90"
    assert len(raw) < 32_768
    with pytest.raises(ProtocolError):
        protocol.parse(raw)


# ---------------------------------------------------------------------------------------------
# Hypothesis: write → parse round trips
# ---------------------------------------------------------------------------------------------

msgpack_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
msgpack_values = st.recursive(
    msgpack_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ids = st.text(min_size=1, max_size=12)
headers = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
arguments = st.lists(msgpack_values, max_size=5).map(tuple)
stream_ids = st.lists(ids, max_size=3).map(tuple)
sequence_ids = st.integers(min_value=0, max_value=2**63 - 1)

STRATEGIES = {
    "invocation": st.builds(
        InvocationMessage,
        target=st.text(min_size=1, max_size=12),
        arguments=arguments,
        invocation_id=st.none() | ids,
        stream_ids=stream_ids,
        headers=headers,
    ),
    "stream_invocation": st.builds(
        StreamInvocationMessage,
        invocation_id=ids,
        target=st.text(min_size=1, max_size=12),
        arguments=arguments,
        stream_ids=stream_ids,
        headers=headers,
    ),
    "stream_item": st.builds(
        StreamItemMessage, invocation_id=st.text(max_size=12), item=msgpack_values, headers=headers
    ),
    "completion": st.one_of(
        st.builds(
            CompletionMessage,
            invocation_id=st.text(max_size=12),
            result=msgpack_values,
            has_result=st.just(True),
            headers=headers,
        ),
        st.builds(
            CompletionMessage,
            invocation_id=st.text(max_size=12),
            error=st.text(max_size=20),
            headers=headers,
        ),
        st.builds(CompletionMessage, invocation_id=st.text(max_size=12), headers=headers),
    ),
    "cancel_invocation": st.builds(
        CancelInvocationMessage, invocation_id=st.text(max_size=12), headers=headers
    ),
    "ping": st.just(PING),
    "close": st.builds(
        CloseMessage, error=st.none() | st.text(max_size=20), allow_reconnect=st.booleans()
    ),
    "ack": st.builds(AckMessage, sequence_id=sequence_ids),
    "sequence": st.builds(SequenceMessage, sequence_id=sequence_ids),
}
any_message = st.one_of(*STRATEGIES.values())


@pytest.mark.parametrize("kind", list(STRATEGIES))
@given(data=st.data())
@SETTINGS
def test_round_trip_each_message_type(kind: str, data: st.DataObject) -> None:
    """For each message type: write then parse returns an equal message."""
    message = data.draw(STRATEGIES[kind])
    assert parse_framed(protocol.write(message)) == message


@given(messages=st.lists(any_message, max_size=10), data=st.data())
@SETTINGS
def test_checklist_43_batched_stream_split_anywhere_round_trips(
    messages: list[HubMessage], data: st.DataObject
) -> None:
    """Checklist 43/17: many framed messages, concatenated and split at arbitrary points."""
    stream = protocol.write_many(messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=15)))
    points = [0, *cuts, len(stream)]
    framer = protocol.new_framer(None)
    got: list[HubMessage] = []
    for a, b in itertools.pairwise(points):
        got.extend(protocol.parse_all(framer, stream[a:b]))
    assert got == messages


@given(message=any_message)
@SETTINGS
def test_written_frames_have_a_correct_prefix(message: HubMessage) -> None:
    raw = protocol.write(message)
    header = decode_varint(raw)
    assert header is not None
    assert header[0] + header[1] == len(raw)


@given(
    st.recursive(
        msgpack_scalars,
        lambda children: (
            st.lists(children, max_size=6)
            | st.dictionaries(st.text(max_size=4), children, max_size=3)
        ),
        max_leaves=20,
    )
)
@SETTINGS
def test_parse_of_arbitrary_values_never_raises_anything_but_protocol_error(value: Any) -> None:
    """Fuzz (well-formed MessagePack of any shape): a message, None, or ProtocolError."""
    with contextlib.suppress(ProtocolError):
        protocol.parse(pack(value))


@given(kind=st.integers(1, 9), rest=st.lists(msgpack_values, max_size=6))
@SETTINGS
def test_parse_of_typed_arrays_never_raises_anything_but_protocol_error(
    kind: int, rest: list[Any]
) -> None:
    with contextlib.suppress(ProtocolError):
        protocol.parse(pack([kind, *rest]))


# ---------------------------------------------------------------------------------------------
# SerializedMessage with MessagePack
# ---------------------------------------------------------------------------------------------


class CountingMessagePack(MessagePackHubProtocol):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, message: HubMessage) -> bytes:
        self.writes += 1
        return super().write(message)


def test_serialized_message_encodes_once_for_many_recipients() -> None:
    mp = CountingMessagePack()
    serialized = SerializedMessage(InvocationMessage(target="Recv", arguments=("hi",)))
    results = {serialized.get(mp) for _ in range(50)}
    assert results == {_hex("0E 96 01 80 C0 A4 52 65 63 76 91 A2 68 69 90")}
    assert mp.writes == 1
    assert serialized.encoded() == {
        "messagepack": _hex("0E 96 01 80 C0 A4 52 65 63 76 91 A2 68 69 90")
    }
