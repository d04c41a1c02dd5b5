"""The HTTP server's limits on reading a request (hero.platform.http_server).

Each test crosses one limit on a raw socket against `hero conformance-server` (the same
uvicorn configuration as `hero serve`), checks the answer, and checks that a well-behaved
client, connected meanwhile, keeps working. The server's log must hold no ERROR line and no
traceback afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.integration.raw_peer import RawPeer, assert_healthy, eventually
from tests.support.servers import UNIT, RunningServer, run_hero

HEADERS_TIMEOUT = 1.0 * UNIT
BODY_GRACE = 1.0 * UNIT


@pytest.fixture(scope="module")
def limited_server() -> Iterator[RunningServer]:
    env = {
        "Http__RequestHeadersTimeoutSeconds": str(HEADERS_TIMEOUT),
        "Http__MinRequestBodyDataRateGraceSeconds": str(BODY_GRACE),
        "Http__KeepAliveTimeoutSeconds": str(HEADERS_TIMEOUT),
    }
    with run_hero(["conformance-server"], env=env) as server:
        yield server
        log = server.log()
        for line in log.splitlines():
            assert not line.startswith("ERROR"), line
        assert "Traceback" not in log


@pytest.fixture
async def good(limited_server: RunningServer, unit: float) -> AsyncIterator[RawPeer]:
    peer = await RawPeer.connect(limited_server.base_url, unit)
    await peer.handshake()
    await assert_healthy(peer)
    yield peer
    await peer.close()


async def _open(server: RunningServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def _answer(reader: asyncio.StreamReader, unit: float) -> bytes:
    """Everything the server sends until it closes the connection."""
    async with asyncio.timeout(15 * unit):
        return await reader.read()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer else 0


async def _negotiate_works(server: RunningServer, unit: float) -> None:
    async with httpx.AsyncClient(timeout=10 * unit, trust_env=False) as client:
        response = await client.post(f"{server.base_url}/conformance/negotiate?negotiateVersion=1")
    assert response.status_code == 200


def _upgrade(path: str) -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )


async def test_a_connection_that_says_nothing_is_closed(
    limited_server: RunningServer, good: RawPeer, unit: float
) -> None:
    reader, writer = await _open(limited_server)
    assert await _answer(reader, unit) == b""  # closed, nothing to answer
    writer.close()
    await assert_healthy(good)


async def test_dripping_header_lines_get_408_and_the_others_keep_working(
    limited_server: RunningServer, good: RawPeer, unit: float
) -> None:
    drips = [await _open(limited_server) for _ in range(50)]
    for _, writer in drips:
        writer.write(b"GET /conformance/negotiate HTTP/1.1\r\nHost: localhost\r\n")

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        answer = asyncio.ensure_future(_answer(reader, unit))
        while not answer.done():
            # One header line at a time, slower than any real client and forever.
            writer.write(b"X-Drip: 1\r\n")
            await asyncio.wait({answer}, timeout=0.2 * unit)
        return answer.result()

    dripping = asyncio.gather(*(drip(r, w) for r, w in drips))
    await _negotiate_works(limited_server, unit)
    await assert_healthy(good)
    answers = await dripping
    assert {_status(a) for a in answers} == {408}
    for _, writer in drips:
        writer.close()
    await assert_healthy(good)


async def test_a_request_line_over_8_kib_gets_414(
    limited_server: RunningServer, good: RawPeer, unit: float
) -> None:
    reader, writer = await _open(limited_server)
    writer.write(b"GET /conformance?x=" + b"a" * 8200 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert _status(await _answer(reader, unit)) == 414
    writer.close()
    await assert_healthy(good)


async def test_a_websocket_upgrade_with_a_request_line_over_8_kib_gets_414(
    limited_server: RunningServer, good: RawPeer, unit: float
) -> None:
    reader, writer = await _open(limited_server)
    writer.write(_upgrade("/conformance?x=" + "a" * 9000))
    assert _status(await _answer(reader, unit)) == 414
    writer.close()
    await assert_healthy(good)


async def test_a_header_block_over_32_kib_gets_431(
    limited_server: RunningServer, good: RawPeer, unit: float
) -> None:
    reader, writer = await _open(limited_server)
    headers = b"".join(b"X-Big-%d: %s\r\n" % (i, b"b" * 1000) for i in range(45))
    writer.write(b"GET /conformance HTTP/1.1\r\nHost: localhost\r\n" + headers + b"\r\n")
    assert _status(await _answer(reader, unit)) == 431
    writer.close()
    await assert_healthy(good)


async def test_a_body_slower_than_the_minimum_rate_gets_408(
    limited_server: RunningServer, good: RawPeer, unit: float
) -> None:
    async with httpx.AsyncClient(timeout=10 * unit, trust_env=False) as client:
        negotiated = await client.post(
            f"{limited_server.base_url}/conformance/negotiate?negotiateVersion=1"
        )
    token = negotiated.json()["connectionToken"]
    reader, writer = await _open(limited_server)
    # A long-polling send: the endpoint reads the whole body before it answers.
    writer.write(
        b"POST /conformance?id=" + token.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    answer = asyncio.ensure_future(_answer(reader, unit))
    while not answer.done():
        writer.write(b"x")  # a byte now and then: far below 240 bytes/s
        await asyncio.wait({answer}, timeout=0.3 * unit)
    assert _status(answer.result()) == 408
    writer.close()
    await _negotiate_works(limited_server, unit)
    await assert_healthy(good)


async def test_a_text_frame_that_is_not_utf8_closes_with_1007(
    limited_server: RunningServer, good: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(limited_server.base_url, unit)
    await peer.handshake()
    # websockets refuses to send invalid text itself: hand it a raw Text frame.
    from websockets.frames import Frame, Opcode

    peer.ws.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe\x1e"))
    peer.ws.send_data()
    assert await peer.expect_closed() == 1007
    await assert_healthy(good)

    async def logged() -> bool:
        return "not UTF-8" in limited_server.log()

    # The server's log is read by a thread of this process: the INFO line may lag the close.
    await eventually(logged, timeout=10 * unit)


async def test_refused_websocket_upgrades_log_no_error(
    limited_server: RunningServer, good: RawPeer, unit: float
) -> None:
    for path in ("/nosuch", "/conformance?id=unknown", "/conformance/negotiate"):
        reader, writer = await _open(limited_server)
        writer.write(_upgrade(path))
        answer = await _answer(reader, unit)
        assert _status(answer) in {403, 404, 405}, (path, answer[:80])
        writer.close()
    await assert_healthy(good)
