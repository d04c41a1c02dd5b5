"""The handshake (docs/protocol.md §4): always JSON, always the first bytes each way."""

from __future__ import annotations

import contextlib
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hero.realtime.protocol import JsonHubProtocol, MessagePackHubProtocol
from hero.realtime.protocol.errors import HandshakeError, MessageTooLargeError, ProtocolError
from hero.realtime.protocol.handshake import (
    HANDSHAKE_CANCELED,
    HANDSHAKE_OK,
    HANDSHAKE_UNEXPECTED,
    HandshakeRequest,
    encode_handshake_error,
    encode_handshake_request,
    parse_handshake,
    parse_handshake_response,
)

LIMIT = 32_768

# docs/protocol.md §4.1 / 5.3, literally.
JSON_REQUEST = b'{"protocol":"json","version":1}\x1e'
MSGPACK_REQUEST = b'{"protocol":"messagepack","version":1}\x1e'


# ---------------------------------------------------------------------------------------------
# Request parsing (server side)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "protocol", "version"),
    [
        (JSON_REQUEST, "json", 1),
        (MSGPACK_REQUEST, "messagepack", 1),
    ],
)
def test_section_4_1_requests(raw: bytes, protocol: str, version: int) -> None:
    assert parse_handshake(raw, LIMIT) == (HandshakeRequest(protocol, version), b"")


@pytest.mark.parametrize("version", [0, 1, 2])
@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_checklist_28_versions_0_1_2_parse(protocol: str, version: int) -> None:
    """Checklist 28: handshake versions 0 (signalrcore), 1 (JS, pysignalr), 2 (stateful)."""
    raw = f'{{"protocol":"{protocol}","version":{version}}}\x1e'.encode()
    request, rest = parse_handshake(raw, LIMIT) or (None, None)
    assert request == HandshakeRequest(protocol=protocol, version=version)
    assert rest == b""


@pytest.mark.parametrize("version", [0, 1, 2])
def test_checklist_28_protocols_support_versions_0_1_2(version: int) -> None:
    """Checklist 28: both hub protocols accept any version <= 2 (IsVersionSupported)."""
    assert JsonHubProtocol().is_version_supported(version)
    assert MessagePackHubProtocol().is_version_supported(version)


def test_version_3_is_not_supported_by_the_protocols() -> None:
    assert not JsonHubProtocol().is_version_supported(3)
    assert not MessagePackHubProtocol().is_version_supported(3)


@pytest.mark.parametrize("name", ["JSON", "Json", "MessagePack", "MESSAGEPACK", "jSoN"])
def test_checklist_29_protocol_case_is_preserved(name: str) -> None:
    """Checklist 29: the server matches case-insensitively, so the parser must not alter the name
    (the error text quotes it verbatim: `The protocol '<name>' is not supported.`)."""
    raw = f'{{"protocol":"{name}","version":1}}\x1e'.encode()
    parsed = parse_handshake(raw, LIMIT)
    assert parsed is not None
    assert parsed[0].protocol == name


def test_unknown_protocol_name_parses() -> None:
    """Whether a protocol exists is the server's decision; the parser just reports the name."""
    parsed = parse_handshake(b'{"protocol":"xml","version":1}\x1e', LIMIT)
    assert parsed == (HandshakeRequest("xml", 1), b"")


def test_property_order_and_unknown_properties_are_ignored() -> None:
    raw = b'{"extra":{"a":[1,2]},"version":2,"protocol":"json","other":null}\x1e'
    assert parse_handshake(raw, LIMIT) == (HandshakeRequest("json", 2), b"")


def test_whitespace_is_tolerated() -> None:
    raw = b' { "protocol" : "json" ,\n "version" : 1 } \x1e'
    assert parse_handshake(raw, LIMIT) == (HandshakeRequest("json", 1), b"")


@pytest.mark.parametrize(
    "partial",
    [
        b"",
        b"{",
        b'{"protocol":"json"',
        b'{"protocol":"json","version":1}',
        JSON_REQUEST[:-1],
    ],
)
def test_partial_input_returns_none(partial: bytes) -> None:
    assert parse_handshake(partial, LIMIT) is None
    assert parse_handshake(partial, None) is None


def test_every_prefix_of_the_request_is_incomplete() -> None:
    for end in range(len(JSON_REQUEST)):
        assert parse_handshake(JSON_REQUEST[:end], LIMIT) is None


class TestTrailingBytes:
    """Checklist 31: hub messages after the 0x1E in the same unit are handed back as `rest`."""

    def test_checklist_31_json_message_after_handshake(self) -> None:
        raw = JSON_REQUEST + b'{"type":6}\x1e'
        assert parse_handshake(raw, LIMIT) == (HandshakeRequest("json", 1), b'{"type":6}\x1e')

    def test_checklist_31_binary_message_after_handshake(self) -> None:
        raw = MSGPACK_REQUEST + b"\x02\x91\x06\x03\x92\x07\xc0"
        parsed = parse_handshake(raw, LIMIT)
        assert parsed == (HandshakeRequest("messagepack", 1), b"\x02\x91\x06\x03\x92\x07\xc0")

    def test_checklist_31_rest_parses_as_hub_messages(self) -> None:
        protocol = JsonHubProtocol()
        raw = JSON_REQUEST + b'{"type":6}\x1e{"target":"A","arguments":[],"type":1}\x1e{"ty'
        parsed = parse_handshake(raw, LIMIT)
        assert parsed is not None
        framer = protocol.new_framer(LIMIT)
        messages = protocol.parse_all(framer, parsed[1])
        assert len(messages) == 2
        assert framer.buffered == 4

    def test_rest_may_contain_further_separators(self) -> None:
        raw = JSON_REQUEST + b"\x1e\x1e"
        assert parse_handshake(raw, LIMIT) == (HandshakeRequest("json", 1), b"\x1e\x1e")

    def test_rest_is_not_counted_against_the_limit(self) -> None:
        raw = JSON_REQUEST + b"x" * 100
        parsed = parse_handshake(raw, len(JSON_REQUEST))
        assert parsed == (HandshakeRequest("json", 1), b"x" * 100)


class TestSizeLimit:
    """Section 4.3 / checklist 30: the handshake is subject to MaximumReceiveMessageSize."""

    def test_checklist_30_oversize_without_separator_raises(self) -> None:
        with pytest.raises(MessageTooLargeError):
            parse_handshake(b'{"protocol":"json","version":1,"pad":"' + b"x" * LIMIT, LIMIT)

    def test_exactly_limit_bytes_without_separator_waits(self) -> None:
        assert parse_handshake(b"{" + b" " * (LIMIT - 1), LIMIT) is None

    def test_one_over_limit_without_separator_raises(self) -> None:
        with pytest.raises(MessageTooLargeError):
            parse_handshake(b"{" + b" " * LIMIT, LIMIT)

    def test_limit_counts_the_separator(self) -> None:
        body = b'{"protocol":"json","version":1}'
        assert parse_handshake(body + b"\x1e", len(body) + 1) == (HandshakeRequest("json", 1), b"")
        with pytest.raises(MessageTooLargeError):
            parse_handshake(body + b"\x1e", len(body))

    def test_none_disables_the_limit(self) -> None:
        raw = b'{"protocol":"json","version":1,"pad":"' + b"x" * 100_000 + b'"}\x1e'
        assert parse_handshake(raw, None) == (HandshakeRequest("json", 1), b"")
        assert parse_handshake(raw[:50_000], None) is None

    def test_too_large_is_a_protocol_error_but_not_a_handshake_error(self) -> None:
        """The server maps it to `Handshake was canceled.`, not the generic handshake error."""
        with pytest.raises(MessageTooLargeError) as info:
            parse_handshake(b"x" * 20, 10)
        assert isinstance(info.value, ProtocolError)
        assert not isinstance(info.value, HandshakeError)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x1e",
        b"not json\x1e",
        b"{\x1e",
        b'{"protocol":"json","version":1}}\x1e',
        b"[]\x1e",
        b'["json",1]\x1e',
        b'"json"\x1e',
        b"1\x1e",
        b"null\x1e",
        b"{}\x1e",
        b'{"version":1}\x1e',
        b'{"protocol":"json"}\x1e',
        b'{"protocol":null,"version":1}\x1e',
        b'{"protocol":1,"version":1}\x1e',
        b'{"protocol":["json"],"version":1}\x1e',
        b'{"protocol":"json","version":null}\x1e',
        b'{"protocol":"json","version":"1"}\x1e',
        b'{"protocol":"json","version":1.5}\x1e',
        b'{"protocol":"json","version":true}\x1e',
        b'{"protocol":"json","version":[1]}\x1e',
    ],
)
def test_malformed_request_raises_handshake_error(raw: bytes) -> None:
    """Section 4.1: a missing property or a non-object is a handshake failure."""
    with pytest.raises(HandshakeError) as info:
        parse_handshake(raw, LIMIT)
    assert str(info.value).startswith(HANDSHAKE_UNEXPECTED)


def test_handshake_error_is_a_protocol_error() -> None:
    assert issubclass(HandshakeError, ProtocolError)


def test_invalid_utf8_in_request_is_handshake_error() -> None:
    with pytest.raises(HandshakeError):
        parse_handshake(b'{"protocol":"js\xffon","version":1}\x1e', LIMIT)


def test_deeply_nested_request_is_handshake_error() -> None:
    raw = b'{"protocol":"json","version":1,"x":' + b"[" * 5000 + b"]" * 5000 + b"}\x1e"
    assert len(raw) < LIMIT
    with pytest.raises(HandshakeError):
        parse_handshake(raw, LIMIT)


@given(
    protocol=st.text(max_size=30),
    version=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    rest=st.binary(max_size=40),
)
@settings(deadline=None)
def test_encode_then_parse_request_round_trip(protocol: str, version: int, rest: bytes) -> None:
    raw = encode_handshake_request(protocol, version)
    assert raw.count(b"\x1e") == 1
    assert raw.endswith(b"\x1e")
    assert parse_handshake(raw + rest, None) == (HandshakeRequest(protocol, version), rest)


@given(st.text(max_size=200))
@settings(deadline=None)
def test_parse_handshake_never_raises_anything_but_protocol_errors(text: str) -> None:
    """Fuzz (valid UTF-8): arbitrary text gives a request or a ProtocolError subclass."""
    with contextlib.suppress(ProtocolError):
        parse_handshake(text.encode() + b"\x1e", 100)


# ---------------------------------------------------------------------------------------------
# Responses (server → client) and their client-side parsing
# ---------------------------------------------------------------------------------------------


def test_checklist_27_handshake_ok_bytes() -> None:
    """Checklist 27 / section 4.2: success is exactly `{}` + 0x1E (7B 7D 1E)."""
    assert HANDSHAKE_OK == b"{}\x1e"
    assert bytes([0x7B, 0x7D, 0x1E]) == HANDSHAKE_OK


def test_error_texts() -> None:
    """Section 4.3 / 4.4 exact texts."""
    assert HANDSHAKE_CANCELED == "Handshake was canceled."
    assert HANDSHAKE_UNEXPECTED == "An unexpected error occurred during connection handshake."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "The protocol 'xml' is not supported.",
            b'{"error":"The protocol \'xml\' is not supported."}\x1e',
        ),
        ("Handshake was canceled.", b'{"error":"Handshake was canceled."}\x1e'),
        (
            "The server does not support version 3 of the 'json' protocol.",
            b'{"error":"The server does not support version 3 of the \'json\' protocol."}\x1e',
        ),
        (
            "Cannot use the 'messagepack' protocol on the current transport. The transport does "
            "not support 'Binary' transfer format.",
            b'{"error":"Cannot use the \'messagepack\' protocol on the current transport. The '
            b"transport does not support 'Binary' transfer format.\"}\x1e",
        ),
    ],
)
def test_checklist_29_encode_handshake_error(text: str, expected: bytes) -> None:
    """Checklist 29/30, section 4.2: failure is `{"error":"<text>"}` + 0x1E."""
    assert encode_handshake_error(text) == expected


def test_encode_handshake_error_escapes_separator_and_quotes() -> None:
    raw = encode_handshake_error('a"b\x1ec\n')
    assert raw.count(b"\x1e") == 1
    assert raw.endswith(b"\x1e")
    assert b"\n" not in raw
    assert json.loads(raw[:-1]) == {"error": 'a"b\x1ec\n'}


def test_encode_handshake_request_matches_js_client_bytes() -> None:
    """Section 5.3: the JS client's handshake line."""
    assert encode_handshake_request("json", 1) == JSON_REQUEST
    assert encode_handshake_request("messagepack", 1) == MSGPACK_REQUEST


def test_client_parses_handshake_ok() -> None:
    assert parse_handshake_response(HANDSHAKE_OK) == (None, b"")


def test_client_parses_handshake_ok_with_trailing_messages() -> None:
    """Section 4.2: bytes after the 0x1E in the same unit are hub messages."""
    assert parse_handshake_response(HANDSHAKE_OK + b'{"type":6}\x1e') == (None, b'{"type":6}\x1e')


def test_client_parses_handshake_error() -> None:
    raw = encode_handshake_error("Handshake was canceled.") + b"tail"
    assert parse_handshake_response(raw) == ("Handshake was canceled.", b"tail")


def test_client_handshake_response_partial_returns_none() -> None:
    assert parse_handshake_response(b"") is None
    assert parse_handshake_response(b"{}") is None


@pytest.mark.parametrize("raw", [b'{"type":6}\x1e', b'{"type":7,"error":"x"}\x1e'])
def test_client_rejects_hub_message_as_handshake_response(raw: bytes) -> None:
    """Section 4.2: the JS client fails on a first message with a `type` property."""
    expected = re.escape("Expected a handshake response from the server.")
    with pytest.raises(ProtocolError, match=expected):
        parse_handshake_response(raw)


@pytest.mark.parametrize("raw", [b"nope\x1e", b"[]\x1e", b"\x1e"])
def test_client_rejects_malformed_handshake_response(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_handshake_response(raw)
