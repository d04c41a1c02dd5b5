"""The opening handshake on a raw socket against `hero conformance-server`.

hero answers a plain RFC 6455 handshake itself (hero.platform.ws_upgrade) and leaves every
other one to `websockets`: both must open a working hub connection or refuse precisely,
and frames a client sends right behind its request must not be lost. The server's log must
hold no ERROR line and no traceback afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Iterator

import httpx
import pytest
from websockets.frames import Frame, Opcode

from tests.integration.raw_peer import negotiate, token_of
from tests.support.servers import RunningServer, run_hero

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HANDSHAKE = b'{"protocol":"json","version":1}\x1e'


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_hero(["conformance-server"]) as running:
        yield running
        log = running.log()
        for line in log.splitlines():
            assert not line.startswith("ERROR"), line
        assert "Traceback" not in log


async def _path(server: RunningServer, unit: float) -> str:
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=10 * unit, trust_env=False
    ) as http:
        return "/conformance?id=" + token_of(await negotiate(http))


def _request(path: str, key: bytes, *extra: bytes) -> bytes:
    return (
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n" + b"".join(line + b"\r\n" for line in extra) + b"\r\n"
    )


def _masked_text(data: bytes) -> bytes:
    return Frame(Opcode.TEXT, data).serialize(mask=True, extensions=[])


async def _head(reader: asyncio.StreamReader, unit: float) -> bytes:
    async with asyncio.timeout(10 * unit):
        return await reader.readuntil(b"\r\n\r\n")


async def _text_frame(reader: asyncio.StreamReader, unit: float) -> bytes:
    async with asyncio.timeout(10 * unit):
        first, second = await reader.readexactly(2)
        assert first == 0x81 and second < 126, (first, second)
        return await reader.readexactly(second)


@pytest.mark.parametrize("early", [False, True], ids=["after-101", "with-the-request"])
async def test_a_plain_handshake_opens_a_working_connection(
    server: RunningServer, unit: float, early: bool
) -> None:
    key = base64.b64encode(os.urandom(16))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    request = _request(await _path(server, unit), key)
    # `early`: the hub handshake in the same write as the upgrade request, before the 101.
    writer.write(request + _masked_text(HANDSHAKE) if early else request)
    head = await _head(reader, unit)
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
    expected = base64.b64encode(hashlib.sha1(key + GUID).digest())
    assert b"Sec-WebSocket-Accept: " + expected in lines
    if not early:
        writer.write(_masked_text(HANDSHAKE))
    assert await _text_frame(reader, unit) == b"{}\x1e"
    writer.write(_masked_text(b'{"type":1,"invocationId":"1","target":"Echo","arguments":[7]}\x1e'))
    assert b'"result":7' in await _text_frame(reader, unit)
    writer.close()


@pytest.mark.parametrize(
    "extra",
    [
        (b"Sec-WebSocket-Version: 13",),  # repeated
        (b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)),),  # repeated
    ],
    ids=["two-versions", "two-keys"],
)
async def test_an_unusual_handshake_is_judged_by_websockets(
    server: RunningServer, unit: float, extra: tuple[bytes, ...]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(_request(await _path(server, unit), base64.b64encode(os.urandom(16)), *extra))
    head = await _head(reader, unit)
    assert head.startswith(b"HTTP/1.1 400 "), head[:60]
    writer.close()


async def test_a_bad_key_is_refused_with_400(server: RunningServer, unit: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(_request(await _path(server, unit), base64.b64encode(b"short")))
    assert (await _head(reader, unit)).startswith(b"HTTP/1.1 400 ")
    writer.close()


async def test_a_refused_connection_gets_no_101(server: RunningServer, unit: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(_request("/conformance?id=unknown", base64.b64encode(os.urandom(16))))
    head = await _head(reader, unit)
    assert head.startswith(b"HTTP/1.1 404 "), head[:60]
    writer.close()
