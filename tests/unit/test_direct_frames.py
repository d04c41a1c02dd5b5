"""The frames `GuardedWebSocketProtocol.write_frame` puts on the wire parse, with the
`websockets` library's own reader, as one unmasked final frame of the right kind and
length, across the three length encodings (RFC 6455 §5.2)."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from hero.platform.http_server import _frame_header


def parse(wire: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("the frame is incomplete")


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65_535, 65_536, 200_000])
@pytest.mark.parametrize("binary", [False, True])
def test_a_direct_frame_parses_as_one_final_data_frame(length: int, binary: bool) -> None:
    payload = (
        (b"a" * length)
        if not binary
        else bytes(range(256)) * (length // 256) + b"x" * (length % 256)
    )
    frame = parse(_frame_header(len(payload), binary) + payload)
    assert frame.opcode is (Opcode.BINARY if binary else Opcode.TEXT)
    assert frame.fin
    assert not (frame.rsv1 or frame.rsv2 or frame.rsv3)
    assert frame.data == payload
