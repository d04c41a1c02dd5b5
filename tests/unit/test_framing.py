"""Framing (docs/protocol.md §3.2, 5.1, 6.2, 9.8): record separators, VarInt prefixes, size limits.

Pure, sans-I/O tests of `hero.realtime.protocol.framing`.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hero.realtime.protocol.errors import MessageTooLargeError, ProtocolError
from hero.realtime.protocol.framing import (
    RECORD_SEPARATOR,
    RECORD_SEPARATOR_BYTES,
    BinaryFramer,
    TextFramer,
    decode_varint,
    encode_varint,
    frame_binary,
    frame_text,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# docs/protocol.md §6.2, VarInt table, taken literally: (length, prefix bytes).
VARINT_TABLE = [
    (0, "00"),
    (127, "7F"),
    (128, "80 01"),
    (300, "AC 02"),
    (16384, "80 80 01"),
    (2147483647, "FF FF FF FF 07"),
]


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    """Split `data` at the given offsets (any order, duplicates allowed => empty chunks)."""
    points = [0, *sorted(min(max(c, 0), len(data)) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _feed_all(framer: TextFramer | BinaryFramer, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out


# ---------------------------------------------------------------------------------------------
# VarInt (section 6.2)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("length", "prefix"), VARINT_TABLE)
def test_checklist_43_varint_table_encode(length: int, prefix: str) -> None:
    """Checklist 43: VarInt prefixes of 1-5 bytes are written correctly (section 6.2 table)."""
    assert encode_varint(length) == _hex(prefix)


@pytest.mark.parametrize(("length", "prefix"), VARINT_TABLE)
def test_checklist_43_varint_table_decode(length: int, prefix: str) -> None:
    """Checklist 43: VarInt prefixes of 1-5 bytes are read correctly (section 6.2 table)."""
    raw = _hex(prefix)
    assert decode_varint(raw) == (length, len(raw))


@pytest.mark.parametrize(("length", "prefix"), VARINT_TABLE)
def test_varint_table_decode_at_offset_and_with_trailing_bytes(length: int, prefix: str) -> None:
    raw = b"\xaa\xbb" + _hex(prefix) + b"\x01\x02\x03"
    assert decode_varint(raw, 2) == (length, len(_hex(prefix)))


@pytest.mark.parametrize(("length", "prefix"), VARINT_TABLE)
def test_varint_table_every_proper_prefix_is_incomplete(length: int, prefix: str) -> None:
    raw = _hex(prefix)
    for end in range(len(raw)):
        assert decode_varint(raw[:end]) is None


def test_checklist_43_varint_300_is_ac_02() -> None:
    """Checklist 43 names this pair explicitly: 300 <-> AC 02."""
    assert encode_varint(300) == b"\xac\x02"
    assert decode_varint(b"\xac\x02") == (300, 2)


@pytest.mark.parametrize(
    ("length", "size"),
    [
        (1, 1),
        (127, 1),
        (128, 2),
        (2**14 - 1, 2),
        (2**14, 3),
        (2**21 - 1, 3),
        (2**21, 4),
        (2**28 - 1, 4),
        (2**28, 5),
        (2**31 - 1, 5),
    ],
)
def test_varint_width_boundaries(length: int, size: int) -> None:
    encoded = encode_varint(length)
    assert len(encoded) == size
    assert decode_varint(encoded) == (length, size)


@given(st.integers(min_value=0, max_value=2**31 - 1))
@SETTINGS
def test_varint_round_trip(length: int) -> None:
    encoded = encode_varint(length)
    assert 1 <= len(encoded) <= 5
    assert all(b & 0x80 for b in encoded[:-1])
    assert not encoded[-1] & 0x80
    assert decode_varint(encoded) == (length, len(encoded))


@pytest.mark.parametrize("length", [-1, 2**31, 2**32, 2**40])
def test_varint_encode_rejects_out_of_range(length: int) -> None:
    with pytest.raises(ValueError):
        encode_varint(length)


@pytest.mark.parametrize(
    "raw",
    [
        "FF FF FF FF 08",  # 5th byte > 0x07: value above 2**31-1
        "FF FF FF FF 0F",
        "80 80 80 80 10",
        "FF FF FF FF 7F",
        "FF FF FF FF 80",  # 5th byte has the continuation bit: a 6th byte would follow
        "FF FF FF FF FF 01",  # 6-byte prefix
        "80 80 80 80 80 80 00",
    ],
)
def test_varint_longer_than_5_bytes_or_5th_byte_over_0x07_is_protocol_error(raw: str) -> None:
    with pytest.raises(ProtocolError):
        decode_varint(_hex(raw))


def test_varint_5th_byte_0x07_is_the_maximum() -> None:
    assert decode_varint(_hex("FF FF FF FF 07")) == (2**31 - 1, 5)
    assert decode_varint(_hex("80 80 80 80 07")) == (7 << 28, 5)


def test_varint_non_minimal_encodings_are_read() -> None:
    assert decode_varint(_hex("80 00")) == (0, 2)
    assert decode_varint(_hex("81 80 80 80 00")) == (1, 5)


def test_varint_errors_are_not_message_too_large() -> None:
    """A bad prefix is a plain ProtocolError, independent of any size limit."""
    with pytest.raises(ProtocolError) as info:
        decode_varint(_hex("FF FF FF FF 08"))
    assert not isinstance(info.value, MessageTooLargeError)


# ---------------------------------------------------------------------------------------------
# frame_text / frame_binary
# ---------------------------------------------------------------------------------------------


def test_record_separator_is_0x1e() -> None:
    assert RECORD_SEPARATOR == 0x1E
    assert RECORD_SEPARATOR_BYTES == b"\x1e"


def test_frame_text_appends_separator() -> None:
    assert frame_text(b'{"type":6}') == b'{"type":6}\x1e'
    assert frame_text(b"") == b"\x1e"


@pytest.mark.parametrize(("length", "prefix"), VARINT_TABLE[:5])
def test_frame_binary_prefixes_length(length: int, prefix: str) -> None:
    payload = bytes(i % 251 for i in range(length))
    assert frame_binary(payload) == _hex(prefix) + payload


# ---------------------------------------------------------------------------------------------
# TextFramer
# ---------------------------------------------------------------------------------------------


def test_text_framer_single_message() -> None:
    framer = TextFramer(None)
    assert framer.feed(b'{"type":6}\x1e') == [b'{"type":6}']
    assert framer.buffered == 0


def test_checklist_17_text_framer_several_messages_in_one_frame() -> None:
    """Checklist 17: several messages in one client frame/POST are all returned, in order."""
    framer = TextFramer(None)
    data = b'{"type":6}\x1e{"type":1,"target":"A","arguments":[]}\x1e{"type":7}\x1e'
    assert framer.feed(data) == [
        b'{"type":6}',
        b'{"type":1,"target":"A","arguments":[]}',
        b'{"type":7}',
    ]
    assert framer.buffered == 0


def test_checklist_17_text_framer_message_split_across_frames() -> None:
    """Checklist 17: one message split across frames/POSTs is reassembled."""
    framer = TextFramer(None)
    assert framer.feed(b'{"ty') == []
    assert framer.buffered == 4
    assert framer.feed(b'pe":') == []
    assert framer.buffered == 8
    assert framer.feed(b"6}") == []
    assert framer.feed(b"\x1e{") == [b'{"type":6}']
    assert framer.buffered == 1
    assert framer.feed(b'"type":7}\x1e') == [b'{"type":7}']
    assert framer.buffered == 0


def test_text_framer_byte_by_byte() -> None:
    data = b'{"type":6}\x1e{"type":7}\x1e'
    framer = TextFramer(None)
    out = _feed_all(framer, [data[i : i + 1] for i in range(len(data))])
    assert out == [b'{"type":6}', b'{"type":7}']


def test_text_framer_separator_alone_completes_buffered_record() -> None:
    framer = TextFramer(None)
    assert framer.feed(b"abc") == []
    assert framer.feed(b"\x1e") == [b"abc"]
    assert framer.buffered == 0


def test_text_framer_empty_feed_is_harmless() -> None:
    framer = TextFramer(10)
    assert framer.feed(b"") == []
    assert framer.feed(b"ab") == []
    assert framer.feed(b"") == []
    assert framer.buffered == 2
    assert framer.feed(b"\x1e") == [b"ab"]


def test_text_framer_returns_empty_records_for_the_parser_to_reject() -> None:
    """An empty record (`\\x1e\\x1e`) is surfaced as b'' so the protocol parser can refuse it."""
    framer = TextFramer(None)
    assert framer.feed(b"\x1e\x1e") == [b"", b""]
    assert framer.feed(b"a") == []
    assert framer.feed(b"\x1e\x1e") == [b"a", b""]


def test_text_framer_returns_bytes() -> None:
    framer = TextFramer(None)
    assert framer.feed(b"ab") == []
    (record,) = framer.feed(b"c\x1e")
    assert type(record) is bytes


class TestTextFramerSizeLimit:
    """Checklist 54 / section 9.8: the limit counts the JSON text plus its 0x1E."""

    def test_checklist_54_exactly_at_limit_is_accepted(self) -> None:
        framer = TextFramer(10)
        assert framer.feed(b"123456789\x1e") == [b"123456789"]

    def test_checklist_54_one_over_limit_in_one_chunk(self) -> None:
        framer = TextFramer(10)
        with pytest.raises(MessageTooLargeError) as info:
            framer.feed(b"1234567890\x1e")
        assert info.value.limit == 10

    def test_checklist_54_one_over_limit_split(self) -> None:
        framer = TextFramer(10)
        assert framer.feed(b"12345") == []
        with pytest.raises(MessageTooLargeError):
            framer.feed(b"67890\x1e")

    def test_limit_counts_separator_when_payload_fills_limit_exactly(self) -> None:
        """`limit` payload bytes are buffered without error; the separator then makes it too big."""
        framer = TextFramer(10)
        assert framer.feed(b"1234567890") == []
        assert framer.buffered == 10
        with pytest.raises(MessageTooLargeError):
            framer.feed(b"\x1e")

    def test_detected_once_more_than_limit_buffered_without_separator(self) -> None:
        """Over-limit is detected before the whole message is buffered (no separator needed)."""
        framer = TextFramer(10)
        for byte in b"1234567890":
            assert framer.feed(bytes([byte])) == []
        with pytest.raises(MessageTooLargeError):
            framer.feed(b"x")

    def test_detected_in_first_chunk_without_separator(self) -> None:
        framer = TextFramer(10)
        with pytest.raises(MessageTooLargeError):
            framer.feed(b"x" * 11)

    def test_detected_in_trailing_partial_after_complete_records(self) -> None:
        framer = TextFramer(10)
        with pytest.raises(MessageTooLargeError):
            framer.feed(b"ok\x1e" + b"x" * 11)

    def test_partial_at_limit_after_complete_records_is_buffered(self) -> None:
        framer = TextFramer(10)
        assert framer.feed(b"ok\x1e" + b"x" * 9) == [b"ok"]
        assert framer.buffered == 9
        assert framer.feed(b"\x1e") == [b"x" * 9]

    def test_detected_for_later_record_in_same_chunk(self) -> None:
        framer = TextFramer(10)
        with pytest.raises(MessageTooLargeError):
            framer.feed(b"ok\x1e" + b"x" * 10 + b"\x1e")

    def test_detected_for_record_completed_after_buffering(self) -> None:
        framer = TextFramer(10)
        assert framer.feed(b"ok\x1e12345") == [b"ok"]
        with pytest.raises(MessageTooLargeError):
            framer.feed(b"67890\x1eok\x1e")

    def test_huge_message_fed_in_small_chunks_fails_early(self) -> None:
        """A 1 MB unterminated message is refused after limit+1 bytes, not after 1 MB."""
        framer = TextFramer(32_768)
        fed = 0
        with pytest.raises(MessageTooLargeError):
            for _ in range(1024):
                framer.feed(b"x" * 1024)
                fed += 1024
        assert fed <= 32_768

    def test_default_limit_32768(self) -> None:
        framer = TextFramer(32_768)
        payload = b"x" * 32_767
        assert framer.feed(payload + b"\x1e") == [payload]
        with pytest.raises(MessageTooLargeError):
            TextFramer(32_768).feed(b"x" * 32_768 + b"\x1e")

    def test_none_disables_the_limit(self) -> None:
        framer = TextFramer(None)
        payload = b"x" * 200_000
        assert framer.feed(payload[:100_000]) == []
        assert framer.feed(payload[100_000:] + b"\x1e") == [payload]

    def test_error_text_mentions_limit(self) -> None:
        with pytest.raises(MessageTooLargeError, match="32768B"):
            TextFramer(32_768).feed(b"x" * 40_000)

    def test_message_too_large_is_a_protocol_error(self) -> None:
        assert issubclass(MessageTooLargeError, ProtocolError)


# ---------------------------------------------------------------------------------------------
# BinaryFramer
# ---------------------------------------------------------------------------------------------


def test_binary_framer_single_message() -> None:
    framer = BinaryFramer(None)
    assert framer.feed(b"\x02\x91\x06") == [b"\x91\x06"]
    assert framer.buffered == 0


def test_checklist_43_binary_framer_several_messages_in_one_unit() -> None:
    """Checklist 43: several framed messages per unit are handled."""
    framer = BinaryFramer(None)
    data = b"\x02\x91\x06" + b"\x03\x92\x07\xc0" + b"\x00" + b"\x03\x92\x08\x05"
    assert framer.feed(data) == [b"\x91\x06", b"\x92\x07\xc0", b"", b"\x92\x08\x05"]
    assert framer.buffered == 0


def test_checklist_17_binary_framer_split_inside_prefix_and_payload() -> None:
    """Checklist 17: a message split inside its VarInt prefix and inside its body."""
    payload = bytes(range(200)) + bytes(100)
    framed = frame_binary(payload)
    assert framed[:2] == b"\xac\x02"
    framer = BinaryFramer(None)
    assert framer.feed(framed[:1]) == []
    assert framer.buffered == 1
    assert framer.feed(framed[1:2]) == []
    assert framer.feed(framed[2:150]) == []
    assert framer.buffered == 150
    assert framer.feed(framed[150:] + b"\x02\x91") == [payload]
    assert framer.buffered == 2
    assert framer.feed(b"\x06") == [b"\x91\x06"]
    assert framer.buffered == 0


def test_binary_framer_byte_by_byte() -> None:
    payloads = [b"\x91\x06", bytes(130), b""]
    data = b"".join(frame_binary(p) for p in payloads)
    framer = BinaryFramer(None)
    assert _feed_all(framer, [data[i : i + 1] for i in range(len(data))]) == payloads


def test_binary_framer_returns_bytes() -> None:
    (payload,) = BinaryFramer(None).feed(b"\x02\x91\x06")
    assert type(payload) is bytes


@pytest.mark.parametrize(
    "raw", ["FF FF FF FF 08", "FF FF FF FF 80", "FF FF FF FF FF 01", "80 80 80 80 80 80"]
)
def test_binary_framer_bad_varint_is_protocol_error(raw: str) -> None:
    with pytest.raises(ProtocolError):
        BinaryFramer(None).feed(_hex(raw))


def test_binary_framer_bad_varint_detected_after_valid_messages() -> None:
    with pytest.raises(ProtocolError):
        BinaryFramer(None).feed(b"\x02\x91\x06" + _hex("FF FF FF FF 08"))


def test_binary_framer_incomplete_four_byte_prefix_waits() -> None:
    framer = BinaryFramer(None)
    assert framer.feed(_hex("FF FF FF FF")) == []
    assert framer.buffered == 4


class TestBinaryFramerSizeLimit:
    """Checklist 54 / section 9.8: the limit counts the VarInt prefix plus the body."""

    def test_checklist_54_exactly_at_limit_is_accepted(self) -> None:
        framer = BinaryFramer(10)
        payload = bytes(9)
        assert framer.feed(frame_binary(payload)) == [payload]

    def test_checklist_54_one_over_limit(self) -> None:
        framer = BinaryFramer(10)
        with pytest.raises(MessageTooLargeError) as info:
            framer.feed(frame_binary(bytes(10)))
        assert info.value.limit == 10

    def test_two_byte_prefix_counts(self) -> None:
        ok = bytes(198)  # 2-byte prefix + 198 = 200
        assert BinaryFramer(200).feed(frame_binary(ok)) == [ok]
        with pytest.raises(MessageTooLargeError):
            BinaryFramer(200).feed(frame_binary(bytes(199)))  # 201

    def test_detected_as_soon_as_the_prefix_is_read(self) -> None:
        """Over-limit is detected from the prefix alone, before any of the body arrives."""
        framer = BinaryFramer(32_768)
        with pytest.raises(MessageTooLargeError):
            framer.feed(encode_varint(1_000_000))

    def test_detected_when_the_last_prefix_byte_arrives(self) -> None:
        prefix = encode_varint(1_000_000)
        assert len(prefix) == 3
        framer = BinaryFramer(32_768)
        assert framer.feed(prefix[:1]) == []
        assert framer.feed(prefix[1:2]) == []
        with pytest.raises(MessageTooLargeError):
            framer.feed(prefix[2:])

    def test_max_varint_with_limit_is_refused_without_buffering_2gb(self) -> None:
        with pytest.raises(MessageTooLargeError):
            BinaryFramer(32_768).feed(_hex("FF FF FF FF 07"))

    def test_detected_after_preceding_good_messages(self) -> None:
        framer = BinaryFramer(10)
        with pytest.raises(MessageTooLargeError):
            framer.feed(b"\x02\x91\x06" + encode_varint(100))

    def test_default_limit_32768(self) -> None:
        payload = bytes(32_768 - 3)
        assert len(encode_varint(len(payload))) == 3
        assert BinaryFramer(32_768).feed(frame_binary(payload)) == [payload]
        with pytest.raises(MessageTooLargeError):
            BinaryFramer(32_768).feed(encode_varint(32_768 - 2))

    def test_none_disables_the_limit(self) -> None:
        payload = bytes(100_000)
        assert BinaryFramer(None).feed(frame_binary(payload)) == [payload]


# ---------------------------------------------------------------------------------------------
# Hypothesis: arbitrary splits of concatenated framed messages
# ---------------------------------------------------------------------------------------------

text_payloads = st.lists(st.binary(max_size=60).map(lambda b: b.replace(b"\x1e", b"")), max_size=12)
binary_payloads = st.lists(st.binary(max_size=300), max_size=12)


@given(payloads=text_payloads, data=st.data())
@SETTINGS
def test_checklist_17_text_framer_arbitrary_splits_return_exact_payloads(
    payloads: list[bytes], data: st.DataObject
) -> None:
    """Checklist 17: any split of a batched stream yields exactly the payloads, in order."""
    stream = b"".join(frame_text(p) for p in payloads)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    framer = TextFramer(None)
    assert _feed_all(framer, _split(stream, cuts)) == payloads
    assert framer.buffered == 0


@given(payloads=binary_payloads, data=st.data())
@SETTINGS
def test_checklist_43_binary_framer_arbitrary_splits_return_exact_payloads(
    payloads: list[bytes], data: st.DataObject
) -> None:
    """Checklist 43/17: any split of a batched VarInt-framed stream yields exactly the payloads."""
    stream = b"".join(frame_binary(p) for p in payloads)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    framer = BinaryFramer(None)
    assert _feed_all(framer, _split(stream, cuts)) == payloads
    assert framer.buffered == 0


@given(payloads=text_payloads, limit=st.integers(1, 64), data=st.data())
@SETTINGS
def test_text_framer_limit_property(payloads: list[bytes], limit: int, data: st.DataObject) -> None:
    """The error is raised iff some framed message exceeds the limit, and in the very chunk that
    brings the buffered part of that message above the limit (never later, never earlier)."""
    stream = b"".join(frame_text(p) for p in payloads)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    first_bad: int | None = None
    trigger = -1
    start = 0
    for index, payload in enumerate(payloads):
        if len(payload) + 1 > limit:
            first_bad = index
            trigger = start + limit  # the (limit+1)-th byte of the message
            break
        start += len(payload) + 1

    framer = TextFramer(limit)
    got: list[bytes] = []
    fed = 0
    for chunk in _split(stream, cuts):
        chunk_start, fed = fed, fed + len(chunk)
        try:
            got.extend(framer.feed(chunk))
        except MessageTooLargeError:
            assert first_bad is not None
            assert chunk_start <= trigger < fed
            assert len(got) <= first_bad
            assert got == payloads[: len(got)]
            return
    assert first_bad is None
    assert got == payloads


@given(payloads=binary_payloads, limit=st.integers(1, 320), data=st.data())
@SETTINGS
def test_binary_framer_limit_property(
    payloads: list[bytes], limit: int, data: st.DataObject
) -> None:
    """The error is raised iff some framed message exceeds the limit, and in the chunk that
    completes that message's VarInt prefix (before any of its body is needed)."""
    stream = b"".join(frame_binary(p) for p in payloads)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    first_bad: int | None = None
    trigger = -1
    start = 0
    for index, payload in enumerate(payloads):
        framed = len(frame_binary(payload))
        if framed > limit:
            first_bad = index
            trigger = start + len(encode_varint(len(payload))) - 1  # last prefix byte
            break
        start += framed

    framer = BinaryFramer(limit)
    got: list[bytes] = []
    fed = 0
    for chunk in _split(stream, cuts):
        chunk_start, fed = fed, fed + len(chunk)
        try:
            got.extend(framer.feed(chunk))
        except MessageTooLargeError:
            assert first_bad is not None
            assert chunk_start <= trigger < fed
            assert len(got) <= first_bad
            assert got == payloads[: len(got)]
            return
    assert first_bad is None
    assert got == payloads
