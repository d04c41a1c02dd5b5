"""Fuzz the hub protocols, the framers and the handshake with raw bytes and mutated messages.

The existing property tests feed well-formed input (valid UTF-8 text, well-formed
MessagePack). These feed arbitrary bytes and byte-level mutations of valid frames, which
reach the decoders' error paths and the field checks after decoding. The property: a parsed
value or a ProtocolError (MessageTooLargeError included), nothing else. The long run of the
same targets is `bench/fuzz.py` (docs/reliability.md).
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hero.realtime.protocol import (
    CompletionMessage,
    HubProtocol,
    InvocationMessage,
    JsonHubProtocol,
    MessagePackHubProtocol,
    ProtocolError,
    StreamItemMessage,
)
from hero.realtime.protocol.framing import decode_varint
from hero.realtime.protocol.handshake import (
    HandshakeRequest,
    parse_handshake,
    parse_handshake_response,
)
from hero.realtime.protocol.negotiate import NegotiateVersionError, select_version

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PROTOCOLS: dict[str, HubProtocol] = {
    "json": JsonHubProtocol(),
    "messagepack": MessagePackHubProtocol(),
}

SEEDS = [
    InvocationMessage("Send", ("a", 1, [True, None], {"k": 2.5}), "1", ("s",), {"h": "v"}),
    StreamItemMessage("2", {"x": [1, 2]}),
    CompletionMessage.with_result("3", [1, "two"]),
    CompletionMessage.with_error("4", "boom"),
]


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """`seed` with a few bytes replaced, inserted or deleted."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["set", "insert", "delete"]))
        if action != "insert" and not data:
            continue
        index = draw(st.integers(0, len(data) - (0 if action == "insert" else 1)))
        if action == "set":
            data[index] = draw(st.integers(0, 255))
        elif action == "insert":
            data[index:index] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[index]
    return bytes(data)


def _check_parse(protocol: HubProtocol, payload: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        protocol.parse(payload)


@pytest.mark.parametrize("name", list(PROTOCOLS))
@given(payload=st.binary(max_size=200))
@FUZZ
def test_parse_of_raw_bytes_is_a_message_or_a_protocol_error(name: str, payload: bytes) -> None:
    _check_parse(PROTOCOLS[name], payload)


@pytest.mark.parametrize("name", list(PROTOCOLS))
@given(data=st.data())
@FUZZ
def test_parse_of_a_mutated_message_is_a_message_or_a_protocol_error(
    name: str, data: st.DataObject
) -> None:
    protocol = PROTOCOLS[name]
    framed = protocol.write(data.draw(st.sampled_from(SEEDS)))
    if name == "json":
        payload = framed[:-1]
    else:
        header = decode_varint(framed)
        assert header is not None
        payload = framed[header[1] :]
    _check_parse(protocol, data.draw(mutated(payload)))


@pytest.mark.parametrize("name", list(PROTOCOLS))
@given(
    chunks=st.lists(st.binary(max_size=80), max_size=8),
    limit=st.none() | st.integers(1, 200),
)
@FUZZ
def test_framer_and_parser_on_raw_chunks_give_messages_or_a_protocol_error(
    name: str, chunks: list[bytes], limit: int | None
) -> None:
    """A connection's read path: any chunks, any size limit. After the first error the
    connection is closed, so nothing is fed after it."""
    protocol = PROTOCOLS[name]
    framer = protocol.new_framer(limit)
    with contextlib.suppress(ProtocolError):
        for chunk in chunks:
            protocol.parse_all(framer, chunk)
            if limit is not None:  # an unfinished length prefix (<= 4 bytes) may exceed it
                assert framer.buffered <= max(limit, 4)


@given(buffer=st.binary(max_size=120), limit=st.none() | st.integers(1, 150))
@FUZZ
def test_handshake_of_raw_bytes_is_a_request_or_a_protocol_error(
    buffer: bytes, limit: int | None
) -> None:
    try:
        parsed = parse_handshake(buffer, limit)
    except ProtocolError:
        return
    if parsed is None:
        assert b"\x1e" not in buffer
        return
    request, rest = parsed
    assert isinstance(request, HandshakeRequest)
    assert buffer.endswith(rest)


@given(buffer=st.binary(max_size=120))
@FUZZ
def test_handshake_response_of_raw_bytes_is_parsed_or_a_protocol_error(buffer: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse_handshake_response(buffer)


@given(
    query=st.dictionaries(
        st.sampled_from(["negotiateVersion", "NEGOTIATEVERSION", "id", ""]) | st.text(max_size=5),
        st.text(max_size=12) | st.integers().map(str),
        max_size=4,
    ),
    minimum=st.integers(0, 2),
)
@FUZZ
def test_select_version_is_a_supported_version_or_a_version_error(
    query: dict[str, str], minimum: int
) -> None:
    try:
        version = select_version(query, minimum)
    except NegotiateVersionError:
        return
    assert minimum <= version <= 1 or (minimum > 1 and version == 1)


# Regression, found while writing these targets: a header value nested about as deep as the
# recursion limit allows was decoded, then str() of it raised RecursionError past the decoder.
# Header values must now be strings, as .NET reads them.


def _nested_header_json(depth: int) -> bytes:
    nested = b"[" * depth + b"]" * depth
    return b'{"type":1,"target":"a","arguments":[],"headers":{"h":' + nested + b"}}"


def _nested_header_msgpack(depth: int) -> bytes:
    return b"\x95\x01\x81\xa1h" + b"\x91" * depth + b"\x90" + b"\xc0\xa1a\x90"


@pytest.mark.parametrize(
    ("name", "build"),
    [("json", _nested_header_json), ("messagepack", _nested_header_msgpack)],
)
def test_deeply_nested_header_values_are_a_protocol_error(name: str, build: object) -> None:
    protocol = PROTOCOLS[name]
    assert callable(build)
    for depth in range(1, 1200, 7):
        with pytest.raises(ProtocolError):
            protocol.parse(build(depth))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":1,"target":"a","arguments":[],"headers":{"h":1}}',
        b'{"type":1,"target":"a","arguments":[],"headers":{"h":null}}',
        b'{"type":2,"invocationId":"1","item":1,"headers":{"h":{"x":"y"}}}',
    ],
)
def test_json_header_values_must_be_strings(raw: bytes) -> None:
    with pytest.raises(ProtocolError, match="of type String"):
        PROTOCOLS["json"].parse(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x95\x01\x81\xa1h\x01\xc0\xa1a\x90",  # value 1
        b"\x95\x01\x81\x01\xa1v\xc0\xa1a\x90",  # key 1
    ],
)
def test_messagepack_header_keys_and_values_must_be_strings(raw: bytes) -> None:
    with pytest.raises(ProtocolError, match="header"):
        PROTOCOLS["messagepack"].parse(raw)


def test_handshake_response_nested_too_deeply_is_a_protocol_error() -> None:
    """Regression: RecursionError escaped parse_handshake_response (client side)."""
    with pytest.raises(ProtocolError):
        parse_handshake_response(b"[" * 100_000 + b"\x1e")
