"""Raw SignalR peers and wire helpers for the test_bad_input_* modules.

Independent of the server's own protocol code: the `websockets` library for WebSocket
frames, httpx for negotiate, long polling, Server-Sent Events and POST sends. `RawPeer`
checks every frame it receives (checklist 16); `assert_healthy` is the check every test
ends with, on a second connection opened before the bad input. The fixtures `healthy`,
`short_healthy`, `http` and `short_http` are in tests/integration/conftest.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import msgpack
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

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

    Frames received are checked the way the JS parsers would (docs/protocol.md §3.2, checklist
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
