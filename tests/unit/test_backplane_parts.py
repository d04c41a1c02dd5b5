"""The Valkey backplane's channel names and envelopes (src/hero/realtime/lifetime/)."""

from __future__ import annotations

import msgspec
import pytest

from hero.realtime.lifetime import envelope as wire
from hero.realtime.lifetime.channels import ChannelKind, ChannelNames


def test_channel_names_round_trip() -> None:
    names = ChannelNames("hero:", "Chat")
    assert names.all() == "hero:signalr:Chat:all"
    cases = [
        (names.group("a:b"), ChannelKind.GROUP, "a:b"),
        (names.user("u1"), ChannelKind.USER, "u1"),
        (names.connection("c1"), ChannelKind.CONNECTION, "c1"),
        (names.server("s1"), ChannelKind.SERVER, "s1"),
        (names.all(), ChannelKind.ALL, ""),
    ]
    for channel, kind, name in cases:
        assert names.parse(channel) == (kind, name)
    assert names.parse("hero:signalr:Other:all") is None
    assert names.has_owners(names.user("u")) and names.has_owners(names.connection("c"))
    assert not names.has_owners(names.group("g")) and not names.has_owners(names.all())


@pytest.mark.parametrize(
    ("envelope", "array"),
    [
        (wire.Invoke("s", ["x"], {"json": b"{}"}), [1, "s", ["x"], {"json": b"{}"}]),
        (wire.GroupMove("s", 7, wire.ADD, "g", "c", None), [2, "s", 7, 1, "g", "c", None]),
        (wire.Ack("s", 7), [3, "s", 7]),
        (wire.ClientInvoke("s", "i", "c", {}), [4, "s", "i", "c", {}]),
        (wire.Result("s", "i", None, True, [1]), [5, "s", "i", None, True, [1]]),
    ],
)
def test_envelopes_are_tagged_arrays(envelope: wire.Envelope, array: list[object]) -> None:
    """The wire form is `[kind, origin, ...fields]`, as instances before the typed envelopes
    sent it, so both can share a backplane during a rolling upgrade."""
    data = wire.encode(envelope)
    assert msgspec.msgpack.decode(data) == array
    assert wire.decode(msgspec.msgpack.encode(array)) == envelope


def test_garbage_is_rejected() -> None:
    with pytest.raises(msgspec.ValidationError):
        wire.decode(msgspec.msgpack.encode([9, "s"]))
