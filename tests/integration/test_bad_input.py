"""Bad and unusual input against the REAL server, at the protocol level.

Raw clients only: the `websockets` library for WebSocket frames, httpx for negotiate, long
polling, Server-Sent Events and POST sends. Every test that feeds bad input checks the
documented reaction (SIGNALR.md sections 2-9, checklist of section 13) and then that a
second connection, opened before the bad input, still works (`assert_healthy`).

Most tests use the session's `hero conformance-server` subprocess. Tests about keep-alive,
client timeout, handshake timeout, disconnect timeout and poll timeout use the in-process
`short_timeout_server` (tests/integration/conftest.py), whose intervals are a fraction of a
second instead of 15-90 s.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import msgpack
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.conftest import (
    SHORT_CLIENT_TIMEOUT,
    SHORT_DISCONNECT_TIMEOUT,
    SHORT_HANDSHAKE_TIMEOUT,
    SHORT_KEEP_ALIVE,
    SHORT_LONG_POLL_TIMEOUT,
    InProcessServer,
)
from tests.support.servers import RunningServer

RS = "\x1e"
HUB_PATH = "/conformance"
MAX_MESSAGE_SIZE = 32_768

HANDSHAKE_UNEXPECTED = "An unexpected error occurred during connection handshake."
HANDSHAKE_CANCELED = "Handshake was canceled."
CLOSED_WITH_ERROR = "Connection closed with an error."
CLOSE_WITH_ERROR_JSON = {"type": 7, "error": CLOSED_WITH_ERROR, "allowReconnect": True}
CLOSE_WITH_ERROR_MSGPACK = [7, CLOSED_WITH_ERROR, True]
BINDING_FAILED_ADD = "Failed to invoke 'Add' due to an error on the server."
SSE_BINARY_REFUSED = (
    "Cannot use the 'messagepack' protocol on the current transport. "
    "The transport does not support 'Binary' transfer format."
)
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


# --------------------------------------------------------------------------------------
# Wire helpers (independent of the server's own protocol code)
# --------------------------------------------------------------------------------------


def record(message: dict[str, Any]) -> str:
    """One JSON hub message, compact, with its record separator."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False) + RS


def varint(length: int) -> bytes:
    out = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data: bytes | bytearray) -> tuple[int, int] | None:
    value = 0
    for index in range(min(5, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, index + 1
    if len(data) >= 5:
        raise AssertionError(f"server wrote an invalid length prefix: {bytes(data[:5])!r}")
    return None


def framed(message: Any) -> bytes:
    """One MessagePack hub message with its VarInt length prefix."""
    body: bytes = msgpack.packb(message)
    return varint(len(body)) + body


def handshake_request(protocol: str = "json", version: int = 1) -> str:
    return json.dumps({"protocol": protocol, "version": version}, separators=(",", ":")) + RS


def ws_base(base_url: str) -> str:
    return "ws" + base_url.removeprefix("http")


def ws_hub_url(base_url: str, **query: str) -> str:
    url = ws_base(base_url) + HUB_PATH
    return f"{url}?{urlencode(query)}" if query else url


def is_ping(message: Any) -> bool:
    return message in ({"type": 6}, [6])


async def open_ws(url: str, unit: float) -> ClientConnection:
    return await websockets.connect(
        url,
        open_timeout=10 * unit,
        close_timeout=5 * unit,
        ping_interval=None,
        max_size=None,
        compression=None,
        proxy=None,
    )


async def ws_rejection(url: str, unit: float) -> tuple[int, bytes]:
    """Open a WebSocket that the server must refuse; returns (HTTP status, body)."""
    with pytest.raises(InvalidStatus) as info:
        ws = await open_ws(url, unit)
        await ws.close()
    response = info.value.response
    return response.status_code, bytes(response.body or b"")


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.05
) -> float:
    """Re-check an observable condition until it holds; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(timeout):
        # The condition lives in another process (or behind HTTP): nothing to wait on.
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(interval)
    return loop.time() - start


class RawPeer:
    """A hand-driven SignalR client over one WebSocket.

    Frames received are checked the way the JS parsers would (SIGNALR.md 3.2, checklist
    16): each holds only complete messages, JSON records are never empty. Use either the
    parsing readers (`handshake`, `next_message`, `invoke`) or `raw_frame` on one peer.
    """

    def __init__(self, ws: ClientConnection, unit: float) -> None:
        self.ws = ws
        self.unit = unit
        self.protocol = "json"
        self.frame_types: list[type] = []
        self._buffer = bytearray()
        self._awaiting_handshake = True
        self._handshake_reply: dict[str, Any] | None = None
        self._messages: deque[Any] = deque()

    @classmethod
    async def connect(cls, base_url: str, unit: float, **query: str) -> RawPeer:
        return cls(await open_ws(ws_hub_url(base_url, **query), unit), unit)

    # sending ----------------------------------------------------------------------------

    async def send(self, data: str | bytes) -> None:
        """str goes out as a Text frame, bytes as a Binary frame."""
        await self.ws.send(data)

    async def send_json(self, *messages: dict[str, Any], binary: bool = False) -> None:
        """All messages in one frame."""
        text = "".join(record(m) for m in messages)
        await self.send(text.encode() if binary else text)

    async def send_msgpack(self, *messages: Any) -> None:
        """All messages in one Binary frame."""
        await self.send(b"".join(framed(m) for m in messages))

    def invocation(self, target: str, *args: Any, invocation_id: str | None) -> Any:
        if self.protocol == "json":
            message: dict[str, Any] = {"type": 1, "target": target, "arguments": list(args)}
            if invocation_id is not None:
                message["invocationId"] = invocation_id
            return message
        return [1, {}, invocation_id, target, list(args)]

    async def send_invocation(self, target: str, *args: Any, invocation_id: str | None) -> None:
        message = self.invocation(target, *args, invocation_id=invocation_id)
        if self.protocol == "json":
            await self.send_json(message)
        else:
            await self.send_msgpack(message)

    # receiving --------------------------------------------------------------------------

    async def raw_frame(self, timeout: float | None = None) -> str | bytes:
        """The next frame exactly as received (no parsing)."""
        frame = await asyncio.wait_for(self.ws.recv(), timeout or 5 * self.unit)
        self.frame_types.append(type(frame))
        return frame

    async def _receive(self) -> None:
        frame = await self.ws.recv()
        self.frame_types.append(type(frame))
        self._buffer += frame.encode() if isinstance(frame, str) else frame
        if self._awaiting_handshake:
            pos = self._buffer.find(b"\x1e")
            if pos < 0:
                return
            self._handshake_reply = json.loads(bytes(self._buffer[:pos]))
            del self._buffer[: pos + 1]
            self._awaiting_handshake = False
        self._parse_buffer()
        assert not self._buffer, (
            f"the server sent an incomplete message in one frame: {bytes(self._buffer)!r}"
        )

    def _parse_buffer(self) -> None:
        if self.protocol == "json":
            while (pos := self._buffer.find(b"\x1e")) >= 0:
                raw = bytes(self._buffer[:pos])
                del self._buffer[: pos + 1]
                assert raw, "the server sent an empty JSON record"
                self._messages.append(json.loads(raw))
            return
        while self._buffer:
            header = read_varint(self._buffer)
            if header is None:
                return
            length, size = header
            if len(self._buffer) < size + length:
                return
            payload = bytes(self._buffer[size : size + length])
            del self._buffer[: size + length]
            self._messages.append(msgpack.unpackb(payload))

    async def handshake(
        self, protocol: str = "json", version: int = 1, *, binary: bool = False
    ) -> None:
        """Send the handshake request and require the `{}` reply."""
        self.protocol = protocol.lower()
        request = handshake_request(protocol, version)
        await self.send(request.encode() if binary else request)
        reply = await self.handshake_reply()
        assert reply == {}, f"handshake refused: {reply}"

    async def handshake_reply(self, timeout: float | None = None) -> dict[str, Any]:
        async with asyncio.timeout(timeout or 5 * self.unit):
            while self._handshake_reply is None:
                await self._receive()
        return self._handshake_reply

    async def next_message(self, timeout: float | None = None, *, skip_pings: bool = True) -> Any:
        async with asyncio.timeout(timeout or 5 * self.unit):
            while True:
                while self._messages:
                    message = self._messages.popleft()
                    if not (skip_pings and is_ping(message)):
                        return message
                await self._receive()

    async def completion(self, invocation_id: str, timeout: float | None = None) -> Any:
        """The next non-ping message, which must be the Completion for `invocation_id`."""
        message = await self.next_message(timeout)
        if self.protocol == "json":
            assert message.get("type") == 3, f"expected a Completion, got {message}"
            assert message.get("invocationId") == invocation_id, message
        else:
            assert message[0] == 3, f"expected a Completion, got {message}"
            assert message[2] == invocation_id, message
        return message

    async def invoke(self, target: str, *args: Any, invocation_id: str | None = None) -> Any:
        invocation_id = invocation_id or uuid.uuid4().hex
        await self.send_invocation(target, *args, invocation_id=invocation_id)
        return await self.completion(invocation_id)

    async def expect_closed(self, timeout: float | None = None) -> int | None:
        """The server ends the WebSocket: no further data, then a close frame.

        Returns the close code the server sent.
        """
        leftover = [m for m in self._messages if not is_ping(m)]
        assert not leftover, f"unexpected messages before the close: {leftover}"
        try:
            async with asyncio.timeout(timeout or 5 * self.unit):
                while True:
                    frame = await self.ws.recv()
                    self._buffer += frame.encode() if isinstance(frame, str) else frame
                    self._parse_buffer()
                    extra = [m for m in self._messages if not is_ping(m)]
                    if extra or (self._buffer and self.protocol == "json"):
                        pytest.fail(f"expected the server to close, got {frame!r}")
        except ConnectionClosed:
            return self.ws.close_code
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        await self.ws.close()


async def assert_healthy(peer: RawPeer) -> None:
    """The already-connected second connection still invokes Echo successfully."""
    value = f"still-alive-{uuid.uuid4().hex}"
    invocation_id = uuid.uuid4().hex
    completion = await peer.invoke("Echo", value, invocation_id=invocation_id)
    assert completion == {"type": 3, "invocationId": invocation_id, "result": value}


@pytest.fixture
async def healthy(conformance_server: RunningServer, unit: float) -> AsyncIterator[RawPeer]:
    """A JSON WebSocket connection opened (and proven working) before the bad input."""
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    await assert_healthy(peer)
    yield peer
    await peer.close()


@pytest.fixture
async def short_healthy(
    short_timeout_server: InProcessServer, unit: float
) -> AsyncIterator[RawPeer]:
    """Like `healthy`, on the short-timeout server (it never pings, so never times out)."""
    peer = await RawPeer.connect(short_timeout_server.base_url, unit)
    await peer.handshake()
    await assert_healthy(peer)
    yield peer
    await peer.close()


@pytest.fixture
async def http(conformance_server: RunningServer, unit: float) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=conformance_server.base_url, timeout=10 * unit, trust_env=False
    ) as client:
        yield client


@pytest.fixture
async def short_http(
    short_timeout_server: InProcessServer, unit: float
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=short_timeout_server.base_url, timeout=10 * unit, trust_env=False
    ) as client:
        yield client


async def negotiate(http: httpx.AsyncClient, version: int | None = 1) -> dict[str, Any]:
    params = {} if version is None else {"negotiateVersion": str(version)}
    response = await http.post(f"{HUB_PATH}/negotiate", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def token_of(body: dict[str, Any]) -> str:
    token = body.get("connectionToken") or body["connectionId"]
    assert isinstance(token, str)
    return token


async def start_long_polling(http: httpx.AsyncClient, protocol: str = "json") -> str:
    """Negotiate, first poll, handshake by POST, and read the `{}` reply; returns the token."""
    token = token_of(await negotiate(http))
    first = await http.get(HUB_PATH, params={"id": token})
    assert first.status_code == 200
    assert first.content == b""
    sent = await http.post(HUB_PATH, params={"id": token}, content=handshake_request(protocol))
    assert sent.status_code == 200
    reply = await http.get(HUB_PATH, params={"id": token})
    assert reply.status_code == 200
    assert reply.content == b"{}\x1e"
    return token


# --------------------------------------------------------------------------------------
# Handshake (SIGNALR.md 4; checklist 27-31)
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


# --------------------------------------------------------------------------------------
# Protocol errors after the handshake (SIGNALR.md 5.5, 7.4; checklist 47)
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
# Message size limit (SIGNALR.md 9.8; checklist 54)
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
# Invocation-level errors keep the connection open (SIGNALR.md 9.2; checklist 37, 39)
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
# Invocation ids (SIGNALR.md 5.2, 9.2, 9.3; checklist 33, 49, 51)
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


# --------------------------------------------------------------------------------------
# Negotiate (SIGNALR.md 2; checklist 1-5, 8, 9, 11)
# --------------------------------------------------------------------------------------

TRANSPORTS = [
    {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]},
    {"transport": "ServerSentEvents", "transferFormats": ["Text"]},
    {"transport": "LongPolling", "transferFormats": ["Text", "Binary"]},
]


async def test_checklist_1_5_negotiate_version_1(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    response = await http.post(f"{HUB_PATH}/negotiate", params={"negotiateVersion": "1"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {
        "negotiateVersion",
        "connectionId",
        "connectionToken",
        "availableTransports",
    }
    assert body["negotiateVersion"] == 1
    assert body["connectionId"] and body["connectionToken"]
    assert body["connectionId"] != body["connectionToken"]
    assert body["availableTransports"] == TRANSPORTS
    # v1 clients connect with the token.
    peer = RawPeer(
        await open_ws(ws_hub_url(str(http.base_url), id=body["connectionToken"]), unit), unit
    )
    await peer.handshake()
    connection_id = await peer.invoke("ConnectionId", invocation_id="id")
    assert connection_id["result"] == body["connectionId"]
    await peer.close()
    await assert_healthy(healthy)


async def test_checklist_2_negotiate_version_0_has_no_token_and_id_connects(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    response = await http.post(
        f"{HUB_PATH}/negotiate", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"negotiateVersion", "connectionId", "availableTransports"}
    assert body["negotiateVersion"] == 0
    assert body["availableTransports"] == TRANSPORTS
    peer = RawPeer(
        await open_ws(ws_hub_url(str(http.base_url), id=body["connectionId"]), unit), unit
    )
    await peer.handshake()
    connection_id = await peer.invoke("ConnectionId", invocation_id="id")
    assert connection_id["result"] == body["connectionId"]
    await peer.close()
    await assert_healthy(healthy)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({"negotiateVersion": "5"}, 1, id="5-is-answered-with-1"),
        pytest.param({"negotiateVersion": "0"}, 0, id="0"),
        pytest.param({"NegotiateVersion": "1"}, 1, id="key-case-insensitive"),
    ],
)
async def test_checklist_3_negotiate_version_selection(
    http: httpx.AsyncClient, healthy: RawPeer, query: dict[str, str], expected: int
) -> None:
    response = await http.post(f"{HUB_PATH}/negotiate", params=query)
    assert response.status_code == 200
    assert response.json()["negotiateVersion"] == expected
    await assert_healthy(healthy)


async def test_checklist_4_non_integer_negotiate_version_is_an_error_body(
    http: httpx.AsyncClient, healthy: RawPeer
) -> None:
    response = await http.post(f"{HUB_PATH}/negotiate", params={"negotiateVersion": "abc"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.content == b'{"error":"The client requested a non-integer protocol version."}'
    await assert_healthy(healthy)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_checklist_8_negotiate_other_than_post_is_405(
    http: httpx.AsyncClient, healthy: RawPeer, method: str
) -> None:
    response = await http.request(method, f"{HUB_PATH}/negotiate", params={"negotiateVersion": "1"})
    assert response.status_code == 405
    await assert_healthy(healthy)


async def test_unsupported_method_on_the_hub_is_405(
    http: httpx.AsyncClient, healthy: RawPeer
) -> None:
    response = await http.put(HUB_PATH, params={"id": "x"})
    assert response.status_code == 405
    await assert_healthy(healthy)


async def test_checklist_9_ids_and_tokens_are_url_safe_and_distinct(
    http: httpx.AsyncClient, healthy: RawPeer
) -> None:
    seen: set[str] = set()
    for _ in range(20):
        body = await negotiate(http)
        for value in (body["connectionId"], body["connectionToken"]):
            assert URL_SAFE.match(value), value
            assert value not in seen
            seen.add(value)
        v0 = await negotiate(http, version=None)
        assert URL_SAFE.match(v0["connectionId"])
    await assert_healthy(healthy)


async def test_checklist_11_unknown_query_parameters_are_ignored(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    extra = {"_": "1712345678901", "app": "mine", "access_token": "not-checked-here"}
    response = await http.post(f"{HUB_PATH}/negotiate", params={"negotiateVersion": "1", **extra})
    assert response.status_code == 200
    token = response.json()["connectionToken"]
    # WebSocket with the same extra parameters.
    url = ws_hub_url(str(http.base_url), id=token, **extra)
    peer = RawPeer(await open_ws(url, unit), unit)
    await peer.handshake()
    await assert_healthy(peer)
    await peer.close()
    # Long polling with a cache buster and extras on polls and sends.
    lp = token_of(await negotiate(http))
    first = await http.get(HUB_PATH, params={"id": lp, **extra})
    assert first.status_code == 200
    sent = await http.post(HUB_PATH, params={"id": lp, **extra}, content=handshake_request())
    assert sent.status_code == 200
    reply = await http.get(HUB_PATH, params={"id": lp, "_": "2"})
    assert reply.content == b"{}\x1e"
    deleted = await http.delete(HUB_PATH, params={"id": lp, **extra})
    assert deleted.status_code == 202
    await assert_healthy(healthy)


# --------------------------------------------------------------------------------------
# HTTP routing errors (SIGNALR.md 3.1; checklist 12, 13, 20, 26)
# --------------------------------------------------------------------------------------


async def test_checklist_12_websocket_without_id_creates_a_connection(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    first = await peer.invoke("ConnectionId", invocation_id="1")
    other = await healthy.invoke("ConnectionId", invocation_id="2")
    assert first["result"] and URL_SAFE.match(first["result"])
    assert first["result"] != other["result"]
    await peer.close()
    await assert_healthy(healthy)


async def test_checklist_13_websocket_for_unknown_id_is_404(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    url = ws_hub_url(conformance_server.base_url, id="no-such-connection")
    status, body = await ws_rejection(url, unit)
    assert status == 404
    assert body == b"No Connection with that ID"
    await assert_healthy(healthy)


async def test_checklist_13_second_websocket_for_an_active_id_is_409(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    token = token_of(await negotiate(http))
    url = ws_hub_url(str(http.base_url), id=token)
    first = RawPeer(await open_ws(url, unit), unit)
    await first.handshake()
    status, _ = await ws_rejection(url, unit)
    assert status == 409
    # The live connection was not hijacked.
    await assert_healthy(first)
    await first.close()
    await assert_healthy(healthy)


async def test_checklist_20_post_status_codes(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    no_id = await http.post(HUB_PATH, content=b'{"type":6}\x1e')
    assert (no_id.status_code, no_id.text) == (400, "Connection ID required")
    unknown = await http.post(HUB_PATH, params={"id": "nope"}, content=b'{"type":6}\x1e')
    assert (unknown.status_code, unknown.text) == (404, "No Connection with that ID")

    # 200 with an empty body on a long-polling connection.
    token = await start_long_polling(http)
    sent = await http.post(HUB_PATH, params={"id": token}, content=b'{"type":6}\x1e')
    assert (sent.status_code, sent.content) == (200, b"")
    assert (await http.delete(HUB_PATH, params={"id": token})).status_code == 202

    # 405 on a WebSocket connection.
    ws_token = token_of(await negotiate(http))
    peer = RawPeer(await open_ws(ws_hub_url(str(http.base_url), id=ws_token), unit), unit)
    await peer.handshake()
    refused = await http.post(HUB_PATH, params={"id": ws_token}, content=b'{"type":6}\x1e')
    assert refused.status_code == 405
    assert refused.text == "POST requests are not allowed for WebSocket connections."
    await assert_healthy(peer)  # the refused POST did not disturb the WebSocket
    await peer.close()
    await assert_healthy(healthy)


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        pytest.param("GET", {}, id="long-poll"),
        pytest.param("GET", {"Accept": "text/event-stream"}, id="sse"),
        pytest.param("DELETE", {}, id="delete"),
    ],
)
async def test_checklist_20_other_requests_without_or_with_unknown_id(
    http: httpx.AsyncClient, healthy: RawPeer, method: str, headers: dict[str, str]
) -> None:
    no_id = await http.request(method, HUB_PATH, headers=headers)
    assert (no_id.status_code, no_id.text) == (400, "Connection ID required")
    unknown = await http.request(method, HUB_PATH, params={"id": "nope"}, headers=headers)
    assert (unknown.status_code, unknown.text) == (404, "No Connection with that ID")
    await assert_healthy(healthy)


async def test_delete_on_a_websocket_connection_is_400(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    token = token_of(await negotiate(http))
    peer = RawPeer(await open_ws(ws_hub_url(str(http.base_url), id=token), unit), unit)
    await peer.handshake()
    response = await http.delete(HUB_PATH, params={"id": token})
    assert response.status_code == 400
    assert response.text == "Cannot terminate this connection using the DELETE endpoint."
    await assert_healthy(peer)
    await peer.close()
    await assert_healthy(healthy)


async def test_checklist_26_changing_transport_mid_connection_is_400(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    changed = b"Cannot change transports mid-connection"
    # Long polling first, then WebSockets / SSE with the same id.
    token = token_of(await negotiate(http))
    assert (await http.get(HUB_PATH, params={"id": token})).status_code == 200
    status, body = await ws_rejection(ws_hub_url(str(http.base_url), id=token), unit)
    assert (status, body) == (400, changed)
    sse = await http.get(HUB_PATH, params={"id": token}, headers={"Accept": "text/event-stream"})
    assert (sse.status_code, sse.content) == (400, changed)
    assert (await http.delete(HUB_PATH, params={"id": token})).status_code == 202

    # WebSockets first, then a long poll with the same id.
    ws_token = token_of(await negotiate(http))
    peer = RawPeer(await open_ws(ws_hub_url(str(http.base_url), id=ws_token), unit), unit)
    await peer.handshake()
    poll = await http.get(HUB_PATH, params={"id": ws_token})
    assert (poll.status_code, poll.content) == (400, changed)
    await assert_healthy(peer)
    await peer.close()
    await assert_healthy(healthy)


# --------------------------------------------------------------------------------------
# Long polling (SIGNALR.md 3.5; checklist 17, 21, 23)
# --------------------------------------------------------------------------------------


async def test_checklist_21_first_poll_returns_200_empty_at_once(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    token = token_of(await negotiate(http))
    started = time.monotonic()
    first = await http.get(HUB_PATH, params={"id": token, "_": "1"})
    assert time.monotonic() - started < 2 * unit
    assert first.status_code == 200
    assert first.content == b""
    assert first.headers["content-length"] == "0"
    assert (await http.delete(HUB_PATH, params={"id": token})).status_code == 202
    await assert_healthy(healthy)


async def test_checklist_17_long_polling_batched_and_split_posts(
    http: httpx.AsyncClient, healthy: RawPeer
) -> None:
    token = await start_long_polling(http)
    one = record({"type": 1, "target": "Echo", "arguments": ["one"], "invocationId": "1"})
    two = record({"type": 1, "target": "Add", "arguments": [2, 3], "invocationId": "2"})
    # Two messages in one POST, the second cut in half; the rest in the next POST.
    assert (
        await http.post(HUB_PATH, params={"id": token}, content=one + two[:9])
    ).status_code == 200
    assert (await http.post(HUB_PATH, params={"id": token}, content=two[9:])).status_code == 200
    received = b""
    while received.count(b"\x1e") < 2:
        poll = await http.get(HUB_PATH, params={"id": token})
        assert poll.status_code == 200
        received += poll.content
    assert received == (
        b'{"type":3,"invocationId":"1","result":"one"}\x1e'
        b'{"type":3,"invocationId":"2","result":5}\x1e'
    )
    assert (await http.delete(HUB_PATH, params={"id": token})).status_code == 202
    await assert_healthy(healthy)


async def test_checklist_23_poll_after_server_close_gets_close_then_204(
    http: httpx.AsyncClient, healthy: RawPeer
) -> None:
    token = await start_long_polling(http)
    abort = record({"type": 1, "target": "Abort", "arguments": [], "invocationId": "a"})
    assert (await http.post(HUB_PATH, params={"id": token}, content=abort)).status_code == 200
    closing = await http.get(HUB_PATH, params={"id": token})
    assert (closing.status_code, closing.content) == (200, b'{"type":7}\x1e')
    over = await http.get(HUB_PATH, params={"id": token})
    assert over.status_code == 204
    gone = await http.get(HUB_PATH, params={"id": token})
    assert gone.status_code == 404
    await assert_healthy(healthy)


async def test_checklist_47_long_polling_protocol_error_close_message(
    http: httpx.AsyncClient, healthy: RawPeer
) -> None:
    token = await start_long_polling(http)
    sent = await http.post(HUB_PATH, params={"id": token}, content=b"{not json}\x1e")
    assert sent.status_code == 200
    closing = await http.get(HUB_PATH, params={"id": token})
    assert closing.status_code == 200
    assert json.loads(closing.content.rstrip(b"\x1e")) == CLOSE_WITH_ERROR_JSON
    assert (await http.get(HUB_PATH, params={"id": token})).status_code == 204
    await assert_healthy(healthy)


async def test_checklist_24_delete_ends_pending_poll_with_204(
    short_timeout_server: InProcessServer,
    short_http: httpx.AsyncClient,
    short_healthy: RawPeer,
    unit: float,
) -> None:
    """In-process so the test can see when the poll is really pending on the server."""
    token = await start_long_polling(short_http)
    connection = short_timeout_server.hub.endpoint.connections.get(token)
    assert connection is not None
    pending = asyncio.create_task(short_http.get(HUB_PATH, params={"id": token}))

    async def poll_is_pending() -> bool:
        return connection.active_requests == 1

    await eventually(poll_is_pending, 5 * unit, interval=0.005)
    deleted = await short_http.delete(HUB_PATH, params={"id": token})
    assert deleted.status_code == 202
    poll = await asyncio.wait_for(pending, 5 * unit)
    assert poll.status_code == 204
    after = await short_http.get(HUB_PATH, params={"id": token})
    assert (after.status_code, after.text) == (404, "No Connection with that ID")
    await assert_healthy(short_healthy)


# --------------------------------------------------------------------------------------
# Timeouts, on the short-timeout server (checklist 10, 22, 25, 30, 44, 45)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_checklist_44_server_pings_an_idle_websocket(
    short_timeout_server: InProcessServer,
    short_healthy: RawPeer,
    unit: float,
    protocol: str,
) -> None:
    peer = await RawPeer.connect(short_timeout_server.base_url, unit)
    await peer.handshake(protocol)
    started = time.monotonic()
    for _ in range(2):
        frame = await peer.raw_frame(SHORT_KEEP_ALIVE + 3 * unit)
        if protocol == "json":
            assert frame == '{"type":6}\x1e'
        else:
            assert frame == b"\x02\x91\x06"
    assert time.monotonic() - started >= SHORT_KEEP_ALIVE  # not a flood
    await peer.close()
    await assert_healthy(short_healthy)


async def test_checklist_45_silence_after_first_ping_closes_with_allow_reconnect(
    short_timeout_server: InProcessServer, short_healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(short_timeout_server.base_url, unit)
    await peer.handshake()
    await peer.send_json({"type": 6})
    started = time.monotonic()
    close = await peer.next_message(SHORT_CLIENT_TIMEOUT + 5 * unit)  # pings are skipped
    elapsed = time.monotonic() - started
    assert close == CLOSE_WITH_ERROR_JSON
    assert elapsed >= SHORT_CLIENT_TIMEOUT * 0.9
    assert await peer.expect_closed() == 1000
    await assert_healthy(short_healthy)


async def test_checklist_45_client_that_never_pings_is_not_timed_out(
    short_timeout_server: InProcessServer, short_healthy: RawPeer, unit: float
) -> None:
    """The client timeout is armed only by the client's first Ping (SIGNALR.md 7.3)."""
    peer = await RawPeer.connect(short_timeout_server.base_url, unit)
    await peer.handshake()
    await asyncio.sleep(SHORT_CLIENT_TIMEOUT * 1.5)  # silence is the point of this test
    await assert_healthy(peer)
    await peer.close()
    await assert_healthy(short_healthy)


async def test_checklist_45_client_that_keeps_sending_is_not_timed_out(
    short_timeout_server: InProcessServer, short_healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(short_timeout_server.base_url, unit)
    await peer.handshake()
    loop = asyncio.get_running_loop()
    until = loop.time() + SHORT_CLIENT_TIMEOUT * 1.5
    while loop.time() < until:  # the client's own keep-alive cadence
        await peer.send_json({"type": 6})
        await asyncio.sleep(SHORT_CLIENT_TIMEOUT / 3)
    await assert_healthy(peer)
    await peer.close()
    await assert_healthy(short_healthy)


@pytest.mark.parametrize("partial", ["", '{"protocol":"json",'], ids=["nothing", "partial"])
async def test_checklist_30_no_handshake_in_time_is_canceled(
    short_timeout_server: InProcessServer, short_healthy: RawPeer, unit: float, partial: str
) -> None:
    peer = await RawPeer.connect(short_timeout_server.base_url, unit)
    started = time.monotonic()
    if partial:
        await peer.send(partial)
    reply = await peer.raw_frame(SHORT_HANDSHAKE_TIMEOUT + 5 * unit)
    assert reply == '{"error":"Handshake was canceled."}\x1e'
    assert time.monotonic() - started >= SHORT_HANDSHAKE_TIMEOUT * 0.9
    assert await peer.expect_closed() == 1000
    await assert_healthy(short_healthy)


async def test_checklist_10_negotiated_but_unused_id_expires(
    short_timeout_server: InProcessServer,
    short_http: httpx.AsyncClient,
    short_healthy: RawPeer,
    unit: float,
) -> None:
    token = token_of(await negotiate(short_http))
    started = time.monotonic()

    # DELETE on a connection without a transport is refused with 400 and changes nothing;
    # once the connection was discarded it is 404.
    async def discarded() -> bool:
        response = await short_http.delete(HUB_PATH, params={"id": token})
        assert response.status_code in (400, 404), response
        return response.status_code == 404

    assert not await discarded()
    await eventually(discarded, SHORT_DISCONNECT_TIMEOUT + 5 * unit)
    assert time.monotonic() - started >= SHORT_DISCONNECT_TIMEOUT * 0.9
    status, body = await ws_rejection(ws_hub_url(short_timeout_server.base_url, id=token), unit)
    assert (status, body) == (404, b"No Connection with that ID")
    await assert_healthy(short_healthy)


async def _sse_probe_status(http: httpx.AsyncClient, token: str) -> int:
    """An SSE GET for a long-polling id: 400 (wrong transport) while it exists, then 404.

    Unlike a poll, POST or DELETE it does not touch the connection.
    """
    response = await http.get(
        HUB_PATH, params={"id": token}, headers={"Accept": "text/event-stream"}
    )
    assert response.status_code in (400, 404), response
    return response.status_code


async def test_checklist_25_long_polling_connection_without_polls_is_disposed(
    short_http: httpx.AsyncClient, short_healthy: RawPeer, unit: float
) -> None:
    token = await start_long_polling(short_http)
    started = time.monotonic()
    assert await _sse_probe_status(short_http, token) == 400

    async def disposed() -> bool:
        return await _sse_probe_status(short_http, token) == 404

    await eventually(disposed, SHORT_DISCONNECT_TIMEOUT + 5 * unit)
    assert time.monotonic() - started >= SHORT_DISCONNECT_TIMEOUT * 0.9
    poll = await short_http.get(HUB_PATH, params={"id": token})
    assert (poll.status_code, poll.text) == (404, "No Connection with that ID")
    await assert_healthy(short_healthy)


async def test_checklist_25_long_polling_connection_that_only_posts_is_disposed(
    short_http: httpx.AsyncClient, short_healthy: RawPeer, unit: float
) -> None:
    token = await start_long_polling(short_http)

    async def disposed() -> bool:
        sent = await short_http.post(HUB_PATH, params={"id": token}, content=b'{"type":6}\x1e')
        assert sent.status_code in (200, 404), sent
        return sent.status_code == 404

    await eventually(disposed, SHORT_DISCONNECT_TIMEOUT + 3 * unit, interval=0.2)
    await assert_healthy(short_healthy)


async def test_checklist_22_44_idle_poll_returns_empty_200_after_poll_timeout(
    short_http: httpx.AsyncClient, short_healthy: RawPeer, unit: float
) -> None:
    """The keep-alive interval is shorter than the poll timeout: no Ping on long polling."""
    token = await start_long_polling(short_http)
    started = time.monotonic()
    idle = await short_http.get(HUB_PATH, params={"id": token})
    elapsed = time.monotonic() - started
    assert idle.status_code == 200
    assert idle.content == b""
    assert SHORT_LONG_POLL_TIMEOUT * 0.9 <= elapsed <= SHORT_LONG_POLL_TIMEOUT + 3 * unit
    # Still the same live connection.
    echo = record({"type": 1, "target": "Echo", "arguments": ["lp"], "invocationId": "1"})
    assert (await short_http.post(HUB_PATH, params={"id": token}, content=echo)).status_code == 200
    data = await short_http.get(HUB_PATH, params={"id": token})
    assert data.content == b'{"type":3,"invocationId":"1","result":"lp"}\x1e'
    assert (await short_http.delete(HUB_PATH, params={"id": token})).status_code == 202
    await assert_healthy(short_healthy)
