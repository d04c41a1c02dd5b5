"""Bad and unusual hub messages on an open WebSocket against the REAL server.

Protocol errors after the handshake (checklist 47), the 32 KB message size limit (54),
bad arguments and unknown message types (37, 39), invocation ids (33, 49, 51), batched
and split messages (17, 43), property order and headers (32), client Close (46).

Raw clients only (helpers in tests/integration/raw_peer.py). Every test that feeds bad
input checks the documented reaction (docs/protocol.md §§2-9, checklist of section 13)
and then that a second connection, opened before the bad input, still works
(`assert_healthy`).
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from tests.integration.raw_peer import (
    BINDING_FAILED_ADD,
    CLOSE_WITH_ERROR_JSON,
    CLOSE_WITH_ERROR_MSGPACK,
    MAX_MESSAGE_SIZE,
    RawPeer,
    assert_healthy,
    framed,
    record,
)
from tests.support.servers import RunningServer

# --------------------------------------------------------------------------------------
# Protocol errors after the handshake (docs/protocol.md §5.5, 7.4; checklist 47)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param('{"type":1,"target":"Echo","arguments":[1]\x1e', id="malformed-json"),
        pytest.param('{"target":"Echo","arguments":[1],"invocationId":"1"}\x1e', id="no-type"),
        pytest.param('{"type":"1","target":"Echo","arguments":[1]}\x1e', id="string-type"),
        pytest.param("[1,2]\x1e", id="not-an-object"),
        pytest.param('{"type":1,"arguments":[1],"invocationId":"1"}\x1e', id="no-target"),
        pytest.param('{"type":1,"target":"Echo","invocationId":"1"}\x1e', id="no-arguments"),
        pytest.param(
            '{"type":1,"target":"Echo","arguments":[1],"invocationId":7}\x1e',
            id="numeric-invocation-id",
        ),
        pytest.param('{"type":4,"target":"Counter","arguments":[1,0]}\x1e', id="stream-no-id"),
        pytest.param('{"type":2,"item":1}\x1e', id="stream-item-no-id"),
        pytest.param(
            '{"type":3,"invocationId":"1","result":1,"error":"x"}\x1e',
            id="completion-result-and-error",
        ),
        pytest.param(b'{"type":1,"target":"Echo","arguments":["\xff"]}\x1e', id="invalid-utf8"),
    ],
)
async def test_checklist_47_json_protocol_error_closes_with_error_and_allow_reconnect(
    conformance_server: RunningServer, healthy: RawPeer, unit: float, data: str | bytes
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    await peer.send(data)
    assert await peer.next_message() == CLOSE_WITH_ERROR_JSON
    assert await peer.expect_closed() == 1000
    await assert_healthy(healthy)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x03\xc1\xc1\xc1", id="invalid-msgpack"),
        pytest.param(b"\x02\x92\x01", id="array-shorter-than-declared"),
        pytest.param(framed(5), id="not-an-array"),
        pytest.param(framed([]), id="empty-array"),
        pytest.param(framed(["1", {}, "1", "Echo", []]), id="string-type"),
        pytest.param(framed([1, {}, "1", "Echo"]), id="too-few-elements"),
        pytest.param(framed([1, {}, "1", 42, []]), id="numeric-target"),
        pytest.param(framed([3, {}, "1", 9]), id="unknown-result-kind"),
        pytest.param(b"\xff\xff\xff\xff\x0f", id="length-prefix-over-2gb"),
    ],
)
async def test_checklist_47_messagepack_protocol_error_closes_with_error(
    conformance_server: RunningServer, healthy: RawPeer, unit: float, data: bytes
) -> None:
    """A complete frame whose payload is not a valid hub message closes the connection."""
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake("messagepack")
    await peer.send(data)
    assert await peer.next_message() == CLOSE_WITH_ERROR_MSGPACK
    assert await peer.expect_closed() == 1000
    assert set(peer.frame_types) == {bytes}
    await assert_healthy(healthy)


# --------------------------------------------------------------------------------------
# Message size limit (docs/protocol.md §9.8; checklist 54)
# --------------------------------------------------------------------------------------


def _json_echo_of_size(total: int, invocation_id: str) -> str:
    """An Echo invocation whose record (separator included) is exactly `total` bytes."""
    empty = record({"type": 1, "invocationId": invocation_id, "target": "Echo", "arguments": [""]})
    text = record(
        {
            "type": 1,
            "invocationId": invocation_id,
            "target": "Echo",
            "arguments": ["a" * (total - len(empty))],
        }
    )
    assert len(text.encode()) == total
    return text


def _msgpack_echo_of_size(total: int, invocation_id: str) -> bytes:
    """An Echo invocation whose framed bytes (prefix included) are exactly `total` bytes."""
    for pad in range(total - 64, total):
        data = framed([1, {}, invocation_id, "Echo", ["a" * pad]])
        if len(data) == total:
            return data
    raise AssertionError(f"cannot build a {total}-byte message")


@pytest.mark.parametrize("frames", [1, 3], ids=["one-frame", "three-frames"])
async def test_checklist_54_oversize_json_message_closes_with_error(
    conformance_server: RunningServer, healthy: RawPeer, unit: float, frames: int
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    data = _json_echo_of_size(40_000, "huge")
    step = len(data) // frames + 1
    for start in range(0, len(data), step):
        await peer.send(data[start : start + step])
    # The Close comes first and nothing follows it: no Completion for "huge".
    assert await peer.next_message() == CLOSE_WITH_ERROR_JSON
    assert await peer.expect_closed() == 1000
    await assert_healthy(healthy)


async def test_checklist_54_json_message_of_exactly_32kb_is_accepted(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    await peer.send(_json_echo_of_size(MAX_MESSAGE_SIZE, "edge"))
    completion = await peer.completion("edge")
    assert completion["result"] == "a" * len(completion["result"])
    await peer.send(_json_echo_of_size(MAX_MESSAGE_SIZE + 1, "over"))
    assert await peer.next_message() == CLOSE_WITH_ERROR_JSON
    assert await peer.expect_closed() == 1000
    await assert_healthy(healthy)


async def test_checklist_54_messagepack_size_limit_counts_the_prefix(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake("messagepack")
    await peer.send(_msgpack_echo_of_size(MAX_MESSAGE_SIZE, "edge"))
    completion = await peer.completion("edge")
    assert completion[3] == 3
    await peer.send(_msgpack_echo_of_size(40_000, "huge"))
    assert await peer.next_message() == CLOSE_WITH_ERROR_MSGPACK
    assert await peer.expect_closed() == 1000
    await assert_healthy(healthy)


# --------------------------------------------------------------------------------------
# Invocation-level errors keep the connection open (docs/protocol.md §9.2; checklist 37, 39)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param(["x", {}], id="wrong-types"),
        pytest.param([None, 1], id="null-argument"),
        pytest.param([1], id="too-few"),
        pytest.param([1, 2, 3], id="too-many"),
        pytest.param([], id="none"),
    ],
)
@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_checklist_37_bad_arguments_fail_the_invocation_not_the_connection(
    conformance_server: RunningServer,
    healthy: RawPeer,
    unit: float,
    protocol: str,
    arguments: list[Any],
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake(protocol)
    completion = await peer.invoke("Add", *arguments, invocation_id="bad")
    if protocol == "json":
        assert completion == {"type": 3, "invocationId": "bad", "error": BINDING_FAILED_ADD}
    else:
        assert completion == [3, {}, "bad", 1, BINDING_FAILED_ADD]
    # The same connection goes on working.
    after = await peer.invoke("Add", 40, 2, invocation_id="good")
    assert after == (
        {"type": 3, "invocationId": "good", "result": 42}
        if protocol == "json"
        else [3, {}, "good", 3, 42]
    )
    await peer.close()
    await assert_healthy(healthy)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"type": 99}, id="type-99"),
        pytest.param({"type": 99, "invocationId": "x", "payload": [1, {"a": 2}]}, id="fields"),
        pytest.param({"type": 0}, id="type-0"),
        pytest.param({"type": 10, "sequenceId": 1}, id="type-10"),
    ],
)
async def test_checklist_39_unknown_json_message_types_are_ignored(
    conformance_server: RunningServer, healthy: RawPeer, unit: float, message: dict[str, Any]
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    await peer.send_json(message)
    # Nothing comes back for it; the next message is the probe's Completion.
    await assert_healthy(peer)
    await peer.close()
    await assert_healthy(healthy)


@pytest.mark.parametrize(
    "message",
    [pytest.param([99], id="type-99"), pytest.param([99, {}, "x", "y"], id="fields")],
)
async def test_checklist_39_unknown_messagepack_message_types_are_ignored(
    conformance_server: RunningServer, healthy: RawPeer, unit: float, message: list[Any]
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake("messagepack")
    await peer.send_msgpack(message)
    value = uuid.uuid4().hex
    assert await peer.invoke("Echo", value, invocation_id="probe") == [3, {}, "probe", 3, value]
    await peer.close()
    await assert_healthy(healthy)


# --------------------------------------------------------------------------------------
# Invocation ids (docs/protocol.md §5.2, 9.2, 9.3; checklist 33, 49, 51)
# --------------------------------------------------------------------------------------


async def test_stream_invocation_id_already_in_use_is_refused(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    stream = {"type": 4, "invocationId": "dup", "target": "Counter", "arguments": [10_000, 20]}
    await peer.send_json(stream)
    assert await peer.next_message() == {"type": 2, "invocationId": "dup", "item": 0}
    await peer.send_json(stream)  # the same id while the first stream is running
    items: list[int] = []
    while True:
        message = await peer.next_message()
        if message["type"] == 2:
            items.append(message["item"])
            continue
        assert message == {
            "type": 3,
            "invocationId": "dup",
            "error": "Invocation ID 'dup' is already in use.",
        }
        break
    # The first stream is unaffected: it keeps counting, in order, until cancelled (49).
    await peer.send_json({"type": 5, "invocationId": "dup"})
    while True:
        message = await peer.next_message()
        if message["type"] == 2:
            items.append(message["item"])
            continue
        assert message == {"type": 3, "invocationId": "dup"}
        break
    assert items == list(range(1, len(items) + 1))
    await assert_healthy(peer)
    await peer.close()
    await assert_healthy(healthy)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"type": 1, "target": "NoSuchMethod", "arguments": []}, id="unknown-method"),
        pytest.param(
            {"type": 1, "target": "NoSuchMethod", "arguments": [], "invocationId": ""},
            id="empty-id",
        ),
        pytest.param(
            {"type": 1, "target": "NoSuchMethod", "arguments": [], "invocationId": None},
            id="null-id",
        ),
        pytest.param({"type": 1, "target": "Crash", "arguments": []}, id="exception"),
        pytest.param({"type": 1, "target": "Fail", "arguments": ["boom"]}, id="hub-exception"),
        pytest.param({"type": 1, "target": "Add", "arguments": ["x", {}]}, id="binding-failure"),
        pytest.param({"type": 1, "target": "Echo", "arguments": [1, 2]}, id="argument-count"),
        pytest.param({"type": 1, "target": "Counter", "arguments": [2, 0]}, id="streaming-method"),
        pytest.param({"type": 1, "target": "Echo", "arguments": ["x"]}, id="success"),
    ],
)
async def test_checklist_33_non_blocking_invocation_never_gets_a_response(
    conformance_server: RunningServer, healthy: RawPeer, unit: float, message: dict[str, Any]
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    await peer.send_json(message)
    # The next message is the probe's Completion: nothing came back for the first one.
    await assert_healthy(peer)
    await peer.close()
    await assert_healthy(healthy)


async def test_checklist_33_non_blocking_messagepack_invocation_never_gets_a_response(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake("messagepack")
    await peer.send_msgpack(
        [1, {}, None, "NoSuchMethod", []],
        [1, {}, "", "Crash", []],
        [1, {}, None, "Add", ["x", {}], []],
    )
    assert await peer.invoke("Echo", 7, invocation_id="probe") == [3, {}, "probe", 3, 7]
    await peer.close()
    await assert_healthy(healthy)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"type": 3, "invocationId": "nobody", "result": 1}, id="completion-result"),
        pytest.param({"type": 3, "invocationId": "nobody", "error": "x"}, id="completion-error"),
        pytest.param({"type": 3, "invocationId": "nobody"}, id="completion-void"),
        pytest.param({"type": 5, "invocationId": "nobody"}, id="cancel-invocation"),
        pytest.param({"type": 2, "invocationId": "nobody", "item": 1}, id="stream-item"),
        pytest.param({"type": 8, "sequenceId": 5}, id="ack-not-negotiated"),
        pytest.param({"type": 9, "sequenceId": 1}, id="sequence-not-negotiated"),
    ],
)
async def test_checklist_49_51_messages_for_unknown_ids_are_ignored(
    conformance_server: RunningServer, healthy: RawPeer, unit: float, message: dict[str, Any]
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    await peer.send_json(message)
    await assert_healthy(peer)
    await peer.close()
    await assert_healthy(healthy)


# --------------------------------------------------------------------------------------
# Batching and fragmentation (checklist 17, 43), property order and headers (32)
# --------------------------------------------------------------------------------------


async def test_checklist_17_several_json_messages_in_one_frame(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    await peer.send_json(
        {"type": 6},
        {"type": 1, "target": "Echo", "arguments": ["a"], "invocationId": "1"},
        {"type": 1, "target": "Add", "arguments": [1, 2], "invocationId": "2"},
        {"type": 1, "target": "Echo", "arguments": ["b"], "invocationId": "3"},
    )
    assert await peer.completion("1") == {"type": 3, "invocationId": "1", "result": "a"}
    assert await peer.completion("2") == {"type": 3, "invocationId": "2", "result": 3}
    assert await peer.completion("3") == {"type": 3, "invocationId": "3", "result": "b"}
    await peer.close()
    await assert_healthy(healthy)


@pytest.mark.parametrize(
    "cuts",
    [
        pytest.param([10], id="mid-message"),
        pytest.param([-1], id="separator-alone"),
        pytest.param(list(range(1, 80)), id="one-byte-frames"),
    ],
)
async def test_checklist_17_one_json_message_split_over_frames(
    conformance_server: RunningServer, healthy: RawPeer, unit: float, cuts: list[int]
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    text = record({"type": 1, "target": "Echo", "arguments": ["split"], "invocationId": "s"})
    positions = sorted({c % len(text) for c in cuts} | {0, len(text)})
    for start, end in itertools.pairwise(positions):
        await peer.send(text[start:end])
    assert await peer.completion("s") == {"type": 3, "invocationId": "s", "result": "split"}
    await peer.close()
    await assert_healthy(healthy)


async def test_checklist_17_frames_cutting_across_two_json_messages(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    first = record({"type": 1, "target": "Echo", "arguments": ["one"], "invocationId": "1"})
    second = record({"type": 1, "target": "Echo", "arguments": ["two"], "invocationId": "2"})
    third = record({"type": 1, "target": "Echo", "arguments": ["three"], "invocationId": "3"})
    await peer.send(first + second[:7])
    await peer.send(second[7:] + third)
    for invocation_id, value in (("1", "one"), ("2", "two"), ("3", "three")):
        completion = await peer.completion(invocation_id)
        assert completion == {"type": 3, "invocationId": invocation_id, "result": value}
    await peer.close()
    await assert_healthy(healthy)


async def test_checklist_17_43_messagepack_split_and_batched(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    """A truncated message is only incomplete: it is processed once the rest arrives."""
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake("messagepack")
    long_value = "x" * 300  # 2-byte length prefix
    big = framed([1, {}, "big", "Echo", [long_value]])
    assert big[1] & 0x80 == 0 and big[0] & 0x80  # two-byte prefix
    small = framed([1, {}, "small", "Add", [2, 2]])
    await peer.send(big[:1])  # half of the length prefix
    await peer.send(big[1:40])  # the rest of the prefix and part of the body
    await peer.send(big[40:] + small[:3])  # end of the first, start of the second
    await peer.send(small[3:])
    assert await peer.completion("big") == [3, {}, "big", 3, long_value]
    assert await peer.completion("small") == [3, {}, "small", 3, 4]
    await peer.close()
    await assert_healthy(healthy)


async def test_checklist_32_property_order_extras_and_headers_are_accepted(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    await peer.send(
        '{"arguments":["ordered"],"headers":{"X-Test":"1","Authorization":"secret"},'
        '"extra":{"nested":[1,2]},"invocationId":"o","target":"Echo","type":1}\x1e'
    )
    assert await peer.completion("o") == {"type": 3, "invocationId": "o", "result": "ordered"}
    await peer.close()

    packed = await RawPeer.connect(conformance_server.base_url, unit)
    await packed.handshake("messagepack")
    await packed.send_msgpack([1, {"X-Test": "1"}, "h", "Echo", ["headers"], []])
    assert await packed.completion("h") == [3, {}, "h", 3, "headers"]
    await packed.close()
    await assert_healthy(healthy)


# --------------------------------------------------------------------------------------
# Client Close (checklist 46)
# --------------------------------------------------------------------------------------


async def test_checklist_46_client_close_gets_close_then_normal_closure(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    await peer.send_json({"type": 7})
    assert await peer.raw_frame() == '{"type":7}\x1e'
    assert await peer.expect_closed() == 1000
    await assert_healthy(healthy)


async def test_checklist_46_messagepack_client_close_as_js_sends_it(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake("messagepack")
    await peer.send(bytes.fromhex("03 92 07 C0"))  # [7, nil], as the JS client sends it
    assert await peer.raw_frame() == bytes.fromhex("04 93 07 C0 C2")  # [7, nil, false]
    assert await peer.expect_closed() == 1000
    await assert_healthy(healthy)
