"""Bad and unusual handshakes against the REAL server, and WebSocket frame types.

Handshake requests that are malformed, refused, in any protocol-name case, of versions
0-2, over 32 KB without a separator, messagepack over Server-Sent Events, invocations in
the handshake frame (checklist 19, 27-31); Text/Binary frames per protocol (14, 15, 27).

Raw clients only (helpers in tests/integration/raw_peer.py). Every test that feeds bad
input checks the documented reaction (docs/protocol.md §§2-9, checklist of section 13)
and then that a second connection, opened before the bad input, still works
(`assert_healthy`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tests.integration.raw_peer import (
    HUB_PATH,
    MAX_MESSAGE_SIZE,
    SSE_BINARY_REFUSED,
    RawPeer,
    assert_healthy,
    framed,
    handshake_request,
    negotiate,
    record,
    token_of,
)
from tests.support.servers import RunningServer

# --------------------------------------------------------------------------------------
# Handshake (docs/protocol.md §4; checklist 27-31)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_data",
    [
        pytest.param('{"protocol":"json","version":1\x1e', id="malformed-json"),
        pytest.param('{"protocol":json,"version":1}\x1e', id="unquoted-value"),
        pytest.param("[1,2]\x1e", id="array"),
        pytest.param('"json"\x1e', id="string"),
        pytest.param("null\x1e", id="null"),
        pytest.param("\x1e", id="empty"),
        pytest.param('{"version":1}\x1e', id="missing-protocol"),
        pytest.param('{"protocol":"json"}\x1e', id="missing-version"),
        pytest.param('{"protocol":1,"version":1}\x1e', id="numeric-protocol"),
        pytest.param('{"protocol":"json","version":"1"}\x1e', id="string-version"),
        pytest.param(b'{"protocol":"js\xffon","version":1}\x1e', id="invalid-utf8"),
    ],
)
async def test_checklist_29_bad_handshake_gets_unexpected_error_then_close(
    conformance_server: RunningServer, healthy: RawPeer, unit: float, request_data: str | bytes
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.send(request_data)
    reply = await peer.raw_frame()
    assert reply == '{"error":"An unexpected error occurred during connection handshake."}\x1e'
    assert await peer.expect_closed() == 1000
    await assert_healthy(healthy)


@pytest.mark.parametrize(
    ("request_text", "error"),
    [
        pytest.param(
            '{"protocol":"nope","version":1}\x1e',
            "The protocol 'nope' is not supported.",
            id="unknown-protocol",
        ),
        pytest.param(
            '{"protocol":"json","version":3}\x1e',
            "The server does not support version 3 of the 'json' protocol.",
            id="json-version-3",
        ),
        pytest.param(
            '{"protocol":"messagepack","version":3}\x1e',
            "The server does not support version 3 of the 'messagepack' protocol.",
            id="messagepack-version-3",
        ),
    ],
)
async def test_checklist_29_refused_handshake_gets_exact_error_then_close(
    conformance_server: RunningServer,
    healthy: RawPeer,
    unit: float,
    request_text: str,
    error: str,
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.send(request_text)
    reply = await peer.raw_frame()
    raw = reply.encode() if isinstance(reply, str) else reply
    assert raw == json.dumps({"error": error}, separators=(",", ":")).encode() + b"\x1e"
    assert await peer.expect_closed() == 1000
    await assert_healthy(healthy)


@pytest.mark.parametrize("name", ["JSON", "Json", "MessagePack", "MESSAGEPACK"])
async def test_checklist_29_protocol_name_is_case_insensitive(
    conformance_server: RunningServer, healthy: RawPeer, unit: float, name: str
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake(name)
    completion = await peer.invoke("Echo", "case", invocation_id="c")
    if peer.protocol == "json":
        assert completion == {"type": 3, "invocationId": "c", "result": "case"}
    else:
        assert completion == [3, {}, "c", 3, "case"]
    await peer.close()
    await assert_healthy(healthy)


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
@pytest.mark.parametrize("version", [0, 1, 2])
async def test_checklist_28_handshake_versions_0_1_2_accepted(
    conformance_server: RunningServer,
    healthy: RawPeer,
    unit: float,
    protocol: str,
    version: int,
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake(protocol, version)
    completion = await peer.invoke("Add", 1, 2, invocation_id="v")
    expected: Any = (
        {"type": 3, "invocationId": "v", "result": 3} if protocol == "json" else [3, {}, "v", 3, 3]
    )
    assert completion == expected
    await peer.close()
    await assert_healthy(healthy)


@pytest.mark.parametrize("chunks", [1, 2], ids=["one-frame", "two-frames"])
async def test_checklist_30_handshake_over_32kb_without_separator_is_canceled(
    conformance_server: RunningServer, healthy: RawPeer, unit: float, chunks: int
) -> None:
    oversized = '{"protocol":"json","version":1,"padding":"' + "a" * (MAX_MESSAGE_SIZE + 100)
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    step = len(oversized) // chunks + 1
    for start in range(0, len(oversized), step):
        await peer.send(oversized[start : start + step])
    reply = await peer.raw_frame()
    assert reply == '{"error":"Handshake was canceled."}\x1e'
    assert await peer.expect_closed() == 1000
    await assert_healthy(healthy)


async def test_checklist_19_messagepack_over_sse_is_refused(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    token = token_of(await negotiate(http))
    body = b""
    async with asyncio.timeout(10 * unit):
        async with http.stream(
            "GET", HUB_PATH, params={"id": token}, headers={"Accept": "text/event-stream"}
        ) as events:
            assert events.status_code == 200
            assert events.headers["content-type"].startswith("text/event-stream")
            chunks = events.aiter_bytes()
            body += await anext(chunks)
            assert body.startswith(b":\r\n")
            sent = await http.post(
                HUB_PATH,
                params={"id": token},
                content=handshake_request("messagepack"),
                headers={"Content-Type": "text/plain;charset=UTF-8"},
            )
            assert sent.status_code == 200
            assert sent.content == b""
            async for chunk in chunks:  # until the server ends the stream
                body += chunk
    payload = json.dumps({"error": SSE_BINARY_REFUSED}, separators=(",", ":"))
    assert body == b":\r\ndata: " + payload.encode() + b"\x1e\r\n\r\n"
    # The refused connection is gone.
    after = await http.post(HUB_PATH, params={"id": token}, content=b'{"type":6}\x1e')
    assert after.status_code == 404
    await assert_healthy(healthy)


async def test_checklist_31_invocation_in_the_handshake_frame_is_processed(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.send(
        handshake_request("json")
        + record({"target": "Echo", "arguments": ["same frame"], "invocationId": "1", "type": 1})
    )
    assert await peer.handshake_reply() == {}
    assert await peer.completion("1") == {"type": 3, "invocationId": "1", "result": "same frame"}
    await peer.close()
    await assert_healthy(healthy)


async def test_checklist_31_messagepack_invocation_in_the_binary_handshake_frame(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    """pysignalr style: JSON handshake and MessagePack messages in one Binary frame."""
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    peer.protocol = "messagepack"
    await peer.send(
        handshake_request("messagepack").encode()
        + framed([1, {}, "1", "Echo", [b"\x00\x01bytes"]])
        + framed([1, {}, "2", "Add", [2, 3], []])
    )
    assert await peer.handshake_reply() == {}
    assert await peer.completion("1") == [3, {}, "1", 3, b"\x00\x01bytes"]
    assert await peer.completion("2") == [3, {}, "2", 3, 5]
    assert set(peer.frame_types) == {bytes}
    await peer.close()
    await assert_healthy(healthy)


# --------------------------------------------------------------------------------------
# Frame types (checklist 14, 15, 27)
# --------------------------------------------------------------------------------------


async def test_checklist_14_27_json_connection_gets_text_frames(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.send(handshake_request("json"))
    assert await peer.raw_frame() == "{}\x1e"  # exactly, and a Text frame
    await peer.send_json({"type": 1, "target": "Echo", "arguments": ["t"], "invocationId": "1"})
    assert await peer.raw_frame() == '{"type":3,"invocationId":"1","result":"t"}\x1e'
    await peer.close()
    await assert_healthy(healthy)


@pytest.mark.parametrize("binary_handshake", [False, True], ids=["text-handshake", "binary"])
async def test_checklist_14_15_messagepack_connection_gets_binary_frames(
    conformance_server: RunningServer, healthy: RawPeer, unit: float, binary_handshake: bool
) -> None:
    """JS sends the messagepack handshake in a Text frame, pysignalr in a Binary one."""
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    request = handshake_request("messagepack")
    await peer.send(request.encode() if binary_handshake else request)
    assert await peer.raw_frame() == b"{}\x1e"  # a Binary frame
    await peer.send(framed([1, {}, "0", "Add", [1, 2]]))  # JS 5-element Invocation
    assert await peer.raw_frame() == bytes.fromhex("07 95 03 80 A1 30 03 03")
    await peer.close()
    await assert_healthy(healthy)


async def test_checklist_15_json_accepted_in_binary_frames(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake("json", binary=True)
    message = record({"type": 1, "target": "Echo", "arguments": ["é✓"], "invocationId": "b"})
    data = message.encode()
    cut = data.index("é".encode()) + 1  # split inside a multi-byte UTF-8 character
    await peer.send(data[:cut])
    await peer.send(data[cut:])
    assert await peer.completion("b") == {"type": 3, "invocationId": "b", "result": "é✓"}
    assert set(peer.frame_types) == {str}  # answers are still Text frames
    await peer.close()
    await assert_healthy(healthy)
